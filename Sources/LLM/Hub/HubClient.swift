// The Hugging Face hub's HTTP API, the requests huggingface_hub makes to download a snapshot:
//
//   GET  {endpoint}/api/models/{repo}/revision/{revision}?blobs=true   the commit and its files (model_info with
//                                                                       files_metadata=True)
//   HEAD {endpoint}/{repo}/resolve/{commit}/{file}                      X-Repo-Commit, X-Linked-Etag or ETag,
//                                                                       X-Linked-Size or Content-Length, and for
//                                                                       LFS files a redirect to the CDN
//   GET  {location}  (Range: bytes=N- to resume)                        the bytes
//
// Transient failures (no response, a dropped connection, 408, 429, 5xx) are retried with exponential backoff;
// other 4xx are not. The token goes only to the endpoint's own host, never to the CDN a redirect points to.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A model's files at one commit.
public struct HubModelInfo: Sendable, Decodable {
    /// The commit the revision resolved to.
    public let sha: String
    public let siblings: [File]

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sha = try container.decode(String.self, forKey: .sha)
        siblings = try container.decodeIfPresent([File].self, forKey: .siblings) ?? []
    }

    private enum CodingKeys: String, CodingKey { case sha, siblings }

    public struct File: Sendable, Decodable {
        /// The path in the repository, `/`-separated.
        public let rfilename: String
        public let size: Int64?
        public let lfs: LFS?
    }

    public struct LFS: Sendable, Decodable {
        public let sha256: String
        public let size: Int64
    }
}

/// What the hub says about one file before its bytes are fetched.
public struct HubFileMetadata: Sendable {
    public let commit: String
    /// The blob's name in the cache: the SHA-256 of an LFS file, the git blob SHA-1 of a small one.
    public let etag: String
    public let size: Int64?
    /// Where the bytes are: the resolve URL itself, or the CDN an LFS file redirects to.
    public let location: URL

    /// An LFS file's ETag is the SHA-256 of its bytes, which the download is checked against.
    public var sha256: String? { isSHA256(etag) ? etag : nil }
}

/// A client for one hub endpoint.
public struct HubClient: Sendable {
    /// The hub's base URL, `https://huggingface.co` unless `HF_ENDPOINT` says otherwise.
    public let endpoint: String
    let token: String?
    /// Seconds without a byte before a request counts as failed.
    public var idleTimeout: TimeInterval = 30
    /// Tries per request (for a download: tries in a row that receive nothing) before giving up.
    public var maxAttempts = 5
    /// The wait before the first retry; it doubles with each retry, up to 30 s.
    public var retryDelay: TimeInterval = 1

    public init(endpoint: String = "https://huggingface.co", token: String? = nil) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.token = token.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The endpoint and token huggingface_hub would use: `HF_ENDPOINT`; `HF_TOKEN`, else the token file
    /// `hf auth login` writes (`$HF_TOKEN_PATH`, else `$HF_HOME/token`).
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> HubClient {
        let endpoint = env["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co"
        var token = env["HF_TOKEN"] ?? env["HUGGING_FACE_HUB_TOKEN"]
        if token?.isEmpty ?? true {
            let path = env["HF_TOKEN_PATH"] ?? HubCache.huggingFaceHome(environment: env) + "/token"
            token = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return HubClient(endpoint: endpoint, token: token)
    }

    public var hasToken: Bool { token != nil }

    /// The commit `revision` points to and the files in it.
    public func modelInfo(_ repo: HubRepoID, revision: String, notice: (String) -> Void = { _ in }) throws -> HubModelInfo {
        let url = try makeURL("\(endpoint)/api/models/\(repo.id)/revision/\(percentEncoded(revision, keepSlashes: false))?blobs=true")
        let (head, body) = try retrying(url, notice: notice) { () throws(HTTPFailure) in
            try follow(request(url, method: "GET"), collectBody: true)
        }
        guard head.status == 200 else { throw hubError(for: head, body: body, repo: repo, revision: revision, file: nil) }
        do {
            return try JSONDecoder().decode(HubModelInfo.self, from: body)
        } catch {
            throw HubError.badResponse(url: url.absoluteString, reason: "not a model's info (\(error))")
        }
    }

    /// The commit, ETag, size and location of `file` at `revision` (a commit hash, for a reproducible pull).
    public func fileMetadata(_ repo: HubRepoID, revision: String, file: String,
                             notice: (String) -> Void = { _ in }) throws -> HubFileMetadata {
        let url = try resolveURL(repo, revision: revision, file: file)
        let (head, body) = try retrying(url, notice: notice) { () throws(HTTPFailure) in
            try follow(request(url, method: "HEAD"), collectBody: false)
        }
        guard (200..<300).contains(head.status) || head.isRedirect else {
            throw hubError(for: head, body: body, repo: repo, revision: revision, file: file)
        }
        guard let commit = head["X-Repo-Commit"] else {
            throw HubError.badResponse(url: url.absoluteString,
                                       reason: "no X-Repo-Commit header: \(endpoint) does not look like a Hugging Face hub (check HF_ENDPOINT)")
        }
        guard let etag = (head["X-Linked-Etag"] ?? head["ETag"]).map(normalizedETag), isSafeBlobName(etag) else {
            throw HubError.badResponse(url: url.absoluteString, reason: "no usable ETag header to name the file in the cache")
        }
        let size = (head["X-Linked-Size"] ?? (head.isRedirect ? nil : head["Content-Length"])).flatMap { Int64($0) }
        guard let location = head.isRedirect ? head.location : head.url else {
            throw HubError.badResponse(url: url.absoluteString, reason: "a redirect to an invalid URL")
        }
        return HubFileMetadata(commit: commit, etag: etag, size: size, location: location)
    }

    /// Downloads `metadata.location` into `path`, continuing from the bytes already there (`Range: bytes=N-`),
    /// until it holds `metadata.size` bytes (or, if the size is unknown, the whole response), then fsyncs it.
    /// `progress` gets the file's length after every piece. A file larger than promised is deleted.
    func download(_ metadata: HubFileMetadata, repo: HubRepoID, file: String, to path: String,
                  progress: (Int64) -> Void, notice: (String) -> Void) throws {
        let exists = FileManager.default.fileExists(atPath: path)
        guard exists || FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw HubError.cacheWriteFailed(path: path, reason: "cannot open it for writing")
        }
        defer { try? handle.close() }
        func writeFailed(_ error: any Error) -> HubError { .cacheWriteFailed(path: path, reason: "\(error)") }
        var expected = metadata.size
        var have: Int64
        do { have = Int64(try handle.seekToEnd()) } catch { throw writeFailed(error) }
        func restart() throws {
            do { try handle.truncate(atOffset: 0) } catch { throw writeFailed(error) }
            have = 0
        }
        if let expected, have > expected { try restart() }
        progress(have)

        var url = metadata.location, redirects = 0, failures = 0
        while expected.map({ have < $0 }) ?? true {
            var request = request(url, method: "GET")
            if have > 0 { request.setValue("bytes=\(have)-", forHTTPHeaderField: "Range") }
            let start = have
            let reason: String
            do {
                let (head, body) = try sendHTTP(request, idleTimeout: idleTimeout, head: { head in
                    guard (200..<300).contains(head.status) else { return }
                    if head.status == 200 && have > 0 {
                        notice("\(file): the server ignored the range request; downloading it again from the start")
                        try restart()
                    } else if head.status == 206, contentRangeStart(head) != have {
                        throw HubError.badResponse(url: head.url.absoluteString,
                                                   reason: "asked for bytes from \(have), got Content-Range \(head["Content-Range"] ?? "none")")
                    }
                    if expected == nil { expected = totalLength(head) }
                }, body: { data in
                    if let expected, have + Int64(data.count) > expected {
                        throw HubError.sizeMismatch(file: file, expected: expected, actual: have + Int64(data.count))
                    }
                    do { try handle.write(contentsOf: data) } catch { throw writeFailed(error) }
                    have += Int64(data.count)
                    progress(have)
                })
                if head.isRedirect, let location = head.location {
                    redirects += 1
                    guard redirects <= 10 else { throw HubError.badResponse(url: url.absoluteString, reason: "too many redirects") }
                    url = location
                    continue
                }
                if (200..<300).contains(head.status) {
                    if expected == nil { expected = have }  // no length given: the response was the whole file
                    if have == expected { break }
                    reason = "the connection closed after \(have) of \(expected!) bytes"
                } else if head.status == 416 {  // the range starts past the end: the partial file is not this file's
                    try restart()
                    reason = "HTTP 416 for the range request"
                } else if isTransient(status: head.status) {
                    reason = "HTTP \(head.status)"
                } else if sameOrigin(url, endpoint) {
                    throw hubError(for: head, body: body, repo: repo, revision: metadata.commit, file: file)
                } else {
                    throw HubError.httpStatus(url: url.absoluteString, status: head.status, message: errorMessage(head, body))
                }
            } catch HTTPFailure.handler(let error) {
                if case .sizeMismatch = error as? HubError { try? handle.close(); unlink(path) }
                throw error
            } catch HTTPFailure.transport(let error) {
                guard isTransient(error) else { throw HubError.unreachable(endpoint: url.host ?? url.absoluteString, reason: describe(error)) }
                reason = describe(error)
            }
            failures = have > start ? 1 : failures + 1
            guard failures < maxAttempts else { throw HubError.downloadFailed(file: file, attempts: failures, reason: reason) }
            let delay = backoff(failures)
            notice("\(file): \(reason); retrying in \(formatSeconds(delay)) from byte \(have)")
            Thread.sleep(forTimeInterval: delay)
        }
        do { try handle.synchronize() } catch { throw writeFailed(error) }
    }

    // MARK: requests

    func resolveURL(_ repo: HubRepoID, revision: String, file: String) throws -> URL {
        try makeURL("\(endpoint)/\(repo.id)/resolve/\(percentEncoded(revision, keepSlashes: false))/\(percentEncoded(file, keepSlashes: true))")
    }

    private func makeURL(_ string: String) throws -> URL {
        guard let url = URL(string: string), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw HubError.unreachable(endpoint: endpoint, reason: "not an http(s) URL")
        }
        return url
    }

    /// A request with the hub's headers; the token only when `url` is on the endpoint's own host.
    private func request(_ url: URL, method: String) -> URLRequest {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("llm-swift; hf_hub-compatible", forHTTPHeaderField: "User-Agent")
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")  // sizes and ranges count the file's bytes
        if let token, sameOrigin(url, endpoint) { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    /// Sends `request`, following redirects that stay on the endpoint's host (a renamed repository); a redirect
    /// elsewhere (the CDN) is returned as it is, since the hub's headers are on it.
    private func follow(_ request: URLRequest, collectBody: Bool) throws(HTTPFailure) -> (HTTPHead, Data) {
        var request = request
        for _ in 0..<10 {
            var body = Data()
            let (head, errorBody) = try sendHTTP(request, idleTimeout: idleTimeout, body: { if collectBody { body.append($0) } })
            guard head.isRedirect, let location = head.location, sameOrigin(location, endpoint) else {
                return (head, (200..<300).contains(head.status) ? body : errorBody)
            }
            request.url = location
        }
        throw .transport(URLError(.httpTooManyRedirects))
    }

    /// Runs one exchange, again after a backoff while it fails transiently, up to `maxAttempts` times.
    private func retrying(_ url: URL, notice: (String) -> Void,
                          _ exchange: () throws(HTTPFailure) -> (HTTPHead, Data)) throws -> (HTTPHead, Data) {
        var attempt = 0
        while true {
            attempt += 1
            let reason: String
            do {
                let (head, body) = try exchange()
                guard isTransient(status: head.status), attempt < maxAttempts else { return (head, body) }
                reason = "HTTP \(head.status)"
            } catch .transport(let error) {
                guard isTransient(error), attempt < maxAttempts else {
                    throw HubError.unreachable(endpoint: endpoint, reason: describe(error))
                }
                reason = describe(error)
            } catch .handler(let error) {
                throw error
            }
            let delay = backoff(attempt)
            notice("\(url.path): \(reason); retrying in \(formatSeconds(delay))")
            Thread.sleep(forTimeInterval: delay)
        }
    }

    private func backoff(_ failures: Int) -> TimeInterval { min(retryDelay * pow(2, Double(failures - 1)), 30) }

    private func isTransient(status: Int) -> Bool { status == 408 || status == 429 || status >= 500 }

    /// Failures worth another try: timeouts, refused or dropped connections. A name that does not resolve, no
    /// network at all, a bad URL or a TLS failure will not mend in a few seconds.
    private func isTransient(_ error: URLError) -> Bool {
        let permanent: [URLError.Code] = [.cannotFindHost, .notConnectedToInternet, .badURL, .unsupportedURL,
                                          .secureConnectionFailed, .serverCertificateUntrusted,
                                          .serverCertificateHasBadDate, .serverCertificateNotYetValid,
                                          .serverCertificateHasUnknownRoot, .clientCertificateRejected]
        return !permanent.contains(error.code)
    }

    private func describe(_ error: URLError) -> String {
        if error.code == .timedOut { return "no response for \(formatSeconds(idleTimeout))" }
        let text = error.localizedDescription
        return text.hasPrefix("The operation could not be completed") ? "URL error \(error.code.rawValue)" : text
    }

    /// The error a non-2xx hub response stands for; the hub names it in `X-Error-Code`.
    private func hubError(for head: HTTPHead, body: Data, repo: HubRepoID, revision: String, file: String?) -> HubError {
        switch (head.status, head["X-Error-Code"]) {
        case (401, _), (403, _):
            return .accessDenied(repo: repo.id, status: head.status, tokenSet: token != nil)
        case (_, "RevisionNotFound"):
            return .revisionNotFound(repo: repo.id, revision: revision)
        case (_, "EntryNotFound"):
            return .fileNotFound(repo: repo.id, revision: revision, file: file ?? "?")
        case (_, "RepoNotFound"):
            return .repoNotFound(repo: repo.id, endpoint: endpoint)
        case (404, _):
            return file.map { .fileNotFound(repo: repo.id, revision: revision, file: $0) }
                ?? .repoNotFound(repo: repo.id, endpoint: endpoint)
        default:
            return .httpStatus(url: head.url.absoluteString, status: head.status, message: errorMessage(head, body))
        }
    }

    /// The hub's own words for an error: `X-Error-Message`, or the `error` field of a JSON body.
    private func errorMessage(_ head: HTTPHead, _ body: Data) -> String {
        if let message = head["X-Error-Message"] { return message }
        struct Body: Decodable { let error: String }
        return (try? JSONDecoder().decode(Body.self, from: body))?.error ?? ""
    }
}

/// `"abc"` or `W/"abc"` → `abc`.
private func normalizedETag(_ etag: String) -> String {
    var etag = Substring(etag)
    if etag.hasPrefix("W/") { etag = etag.dropFirst(2) }
    return String(etag.trimmingCharacters(in: CharacterSet(charactersIn: "\"")))
}

/// An ETag fit to be a file name in `blobs/`.
private func isSafeBlobName(_ name: String) -> Bool {
    !name.isEmpty && name != "." && name != ".."
        && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.".unicodeScalars.contains($0) }
}

private func isSHA256(_ string: String) -> Bool {
    string.utf8.count == 64 && string.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

/// Percent-encodes as Python's `urllib.parse.quote` does (huggingface_hub builds its URLs with it): everything but
/// ASCII letters, digits and `_.-~`, and `/` when `keepSlashes`.
private func percentEncoded(_ string: String, keepSlashes: Bool) -> String {
    var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-~")
    if keepSlashes { allowed.insert("/") }
    return string.addingPercentEncoding(withAllowedCharacters: allowed) ?? string
}

private func sameOrigin(_ url: URL, _ endpoint: String) -> Bool {
    guard let other = URL(string: endpoint) else { return false }
    func port(_ u: URL) -> Int? { u.port ?? (u.scheme == "https" ? 443 : u.scheme == "http" ? 80 : nil) }
    return url.scheme == other.scheme && url.host?.lowercased() == other.host?.lowercased() && port(url) == port(other)
}

/// Where a 206 response's bytes start: `Content-Range: bytes START-END/TOTAL`.
private func contentRangeStart(_ head: HTTPHead) -> Int64? {
    guard let range = head["Content-Range"], range.hasPrefix("bytes ") else { return nil }
    return Int64(range.dropFirst(6).prefix { $0 != "-" })
}

/// The whole file's length: the total of a Content-Range, else a 200's Content-Length.
private func totalLength(_ head: HTTPHead) -> Int64? {
    if let range = head["Content-Range"], let slash = range.lastIndex(of: "/") { return Int64(range[range.index(after: slash)...]) }
    return head.status == 200 ? head["Content-Length"].flatMap { Int64($0) } : nil
}

private func formatSeconds(_ seconds: TimeInterval) -> String {
    seconds < 10 ? String(format: "%.1f s", seconds) : String(format: "%.0f s", seconds)
}
