// What can go wrong pulling a model from the hub, each with a one-line message that says what to do about it.

public enum HubError: Error, Equatable, CustomStringConvertible {
    case invalidRepoID(String)
    case invalidRevision(String)
    /// No response at all: DNS, refused connections, timeouts, after the retries.
    case unreachable(endpoint: String, reason: String)
    case repoNotFound(repo: String, endpoint: String)
    case revisionNotFound(repo: String, revision: String)
    case fileNotFound(repo: String, revision: String, file: String)
    /// HTTP 401 or 403: private or gated, and no token or one without access.
    case accessDenied(repo: String, status: Int, tokenSet: Bool)
    case httpStatus(url: String, status: Int, message: String)
    /// A response the hub would not send: a missing header, JSON of the wrong shape.
    case badResponse(url: String, reason: String)
    /// A file name that would land outside the snapshot folder (`..`, an absolute path).
    case unsafeFilename(repo: String, file: String)
    case noMatchingFiles(repo: String, patterns: [String])
    case sizeMismatch(file: String, expected: Int64, actual: Int64)
    case checksumMismatch(file: String, expected: String, actual: String)
    /// The connection kept failing mid-file; the partial download is kept for the next pull.
    case downloadFailed(file: String, attempts: Int, reason: String)
    case cacheWriteFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidRepoID(let id):
            "invalid model id \"\(id)\": expected ORG/NAME (letters, digits, '-', '_', '.')"
        case .invalidRevision(let revision):
            "invalid revision \"\(revision)\""
        case .unreachable(let endpoint, let reason):
            "cannot reach \(endpoint): \(reason); set HF_ENDPOINT or check the network"
        case .repoNotFound(let repo, let endpoint):
            "model \(repo) not found on \(endpoint) (if it is private, set HF_TOKEN)"
        case .revisionNotFound(let repo, let revision):
            "revision \(revision) not found in model \(repo)"
        case .fileNotFound(let repo, let revision, let file):
            "file \(file) not found in model \(repo) at revision \(revision)"
        case .accessDenied(let repo, let status, let tokenSet):
            tokenSet
                ? "access to model \(repo) denied (HTTP \(status)) with the token in HF_TOKEN: it may be gated or private; check that the token is valid and has access (for a gated model, accept its terms on the model's page)"
                : "access to model \(repo) denied (HTTP \(status)): it may be gated or private; set HF_TOKEN to a token that has access (for a gated model, accept its terms on the model's page)"
        case .httpStatus(let url, let status, let message):
            "\(url): HTTP \(status)" + (message.isEmpty ? "" : ": \(message)")
        case .badResponse(let url, let reason):
            "\(url): \(reason)"
        case .unsafeFilename(let repo, let file):
            "model \(repo) lists a file \"\(file)\" whose path would leave the snapshot folder; refusing it"
        case .noMatchingFiles(let repo, let patterns):
            "no file of model \(repo) matches --include \(patterns.joined(separator: " "))"
        case .sizeMismatch(let file, let expected, let actual):
            "\(file): received \(actual) bytes where the hub promised \(expected); the download was deleted, pull again"
        case .checksumMismatch(let file, let expected, let actual):
            "\(file): SHA-256 \(actual) does not match the hub's \(expected); the download was deleted, pull again"
        case .downloadFailed(let file, let attempts, let reason):
            "\(file): download failed \(attempts) times, last: \(reason); pull again to resume where it stopped"
        case .cacheWriteFailed(let path, let reason):
            "cannot write \(path): \(reason)"
        }
    }
}
