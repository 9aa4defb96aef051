// The Hugging Face hub cache, laid out exactly as huggingface_hub lays it out, so that transformers and
// huggingface_hub find what `llm pull` downloaded and `llm pull` finds what they downloaded:
//
//   <root>/models--ORG--NAME/blobs/<etag>                     one file's bytes, named by its ETag (the SHA-256 of an
//                                                              LFS file, the git blob SHA-1 of a small one)
//   <root>/models--ORG--NAME/blobs/<etag>.incomplete          a download in progress, resumed from its length
//   <root>/models--ORG--NAME/snapshots/<commit>/<path>        a relative symlink to its blob
//   <root>/models--ORG--NAME/refs/<revision>                  the commit a branch or tag pointed to
//   <root>/.locks/models--ORG--NAME/<etag>.lock               held (flock) while a blob is downloaded
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A model's id on the hub, `ORG/NAME` (or a bare legacy `NAME`), checked as the hub checks it.
public struct HubRepoID: Sendable, Equatable, CustomStringConvertible {
    public let id: String

    public init(_ id: String) throws {
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        let valid = (1...2).contains(parts.count)
            && parts.allSatisfy { part in
                (1...96).contains(part.count) && part.allSatisfy(allowed.contains)
                    && !"-.".contains(part.first!) && !"-.".contains(part.last!)
            }
            && !id.contains("--") && !id.contains("..")
        guard valid else { throw HubError.invalidRepoID(id) }
        self.id = id
    }

    public var description: String { id }

    /// The cache folder's name: `models--ORG--NAME`.
    public var folderName: String { (["models"] + id.split(separator: "/").map(String.init)).joined(separator: "--") }
}

/// A hub cache folder (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
public struct HubCache: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    /// The folder huggingface_hub would use with this environment.
    public static func defaultRoot(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let cache = env["HF_HUB_CACHE"] ?? env["HUGGINGFACE_HUB_CACHE"], !cache.isEmpty { return expandTilde(cache) }
        return huggingFaceHome(environment: env) + "/hub"
    }

    /// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    static func huggingFaceHome(environment env: [String: String]) -> String {
        if let home = env["HF_HOME"], !home.isEmpty { return expandTilde(home) }
        let xdg = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : expandTilde($0) }
        return (xdg ?? NSHomeDirectory() + "/.cache") + "/huggingface"
    }

    private static func expandTilde(_ path: String) -> String { (path as NSString).expandingTildeInPath }

    public func repoFolder(_ repo: HubRepoID) -> String { root + "/" + repo.folderName }
    public func snapshotFolder(_ repo: HubRepoID, commit: String) -> String { repoFolder(repo) + "/snapshots/" + commit }
    public func blobPath(_ repo: HubRepoID, etag: String) -> String { repoFolder(repo) + "/blobs/" + etag }
    public func incompletePath(_ repo: HubRepoID, etag: String) -> String { blobPath(repo, etag: etag) + ".incomplete" }
    func pointerPath(_ repo: HubRepoID, commit: String, file: String) -> String { snapshotFolder(repo, commit: commit) + "/" + file }
    func refPath(_ repo: HubRepoID, revision: String) -> String { repoFolder(repo) + "/refs/" + revision }

    /// The commit `revision` pointed to when it was last pulled, if the cache remembers it.
    public func commit(_ repo: HubRepoID, revision: String) -> String? {
        if isCommitHash(revision) { return revision }
        guard let data = FileManager.default.contents(atPath: refPath(repo, revision: revision)) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Remembers that `revision` (a branch or tag) points to `commit`; a commit hash needs no ref.
    func writeRef(_ repo: HubRepoID, revision: String, commit: String) throws {
        guard revision != commit, self.commit(repo, revision: revision) != commit else { return }
        let path = refPath(repo, revision: revision)
        try makeFolder((path as NSString).deletingLastPathComponent)
        do {
            try writeFileAtomically(path) { try $0.write(Array(commit.utf8)) }
        } catch {
            throw HubError.cacheWriteFailed(path: path, reason: "\(error)")
        }
    }

    /// Whether the snapshot already has `file` (a symlink that resolves to a blob).
    func hasFile(_ repo: HubRepoID, commit: String, file: String) -> Bool {
        FileManager.default.fileExists(atPath: pointerPath(repo, commit: commit, file: file))
    }

    /// Points `snapshots/<commit>/<file>` at `blobs/<etag>` with a relative symlink, replacing whatever was there.
    func link(_ repo: HubRepoID, commit: String, file: String, etag: String) throws {
        let pointer = pointerPath(repo, commit: commit, file: file)
        try makeFolder((pointer as NSString).deletingLastPathComponent)
        let depth = file.split(separator: "/").count - 1  // folders between the snapshot and the file
        let target = String(repeating: "../", count: depth + 2) + "blobs/" + etag
        unlink(pointer)
        guard symlink(target, pointer) == 0 else {
            throw HubError.cacheWriteFailed(path: pointer, reason: String(cString: strerror(errno)))
        }
    }

    /// Runs `body` holding `.locks/models--ORG--NAME/<etag>.lock`, the lock huggingface_hub takes around the same
    /// blob, so that two downloads of one file (ours or theirs) never write it at once. `waiting` is told when
    /// another process holds it.
    func withBlobLock<R>(_ repo: HubRepoID, etag: String, waiting: (String) -> Void, _ body: () throws -> R) throws -> R {
        let folder = root + "/.locks/" + repo.folderName
        try makeFolder(folder)
        let path = folder + "/" + etag + ".lock"
        let fd = open(path, O_RDWR | O_CREAT, 0o664)
        guard fd >= 0 else { throw HubError.cacheWriteFailed(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }  // closing releases the lock
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waiting(path)
            while flock(fd, LOCK_EX) != 0 {
                guard errno == EINTR else { throw HubError.cacheWriteFailed(path: path, reason: String(cString: strerror(errno))) }
            }
        }
        return try body()
    }

    func makeFolder(_ path: String) throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw HubError.cacheWriteFailed(path: path, reason: "cannot create the folder")
        }
    }
}

/// A full 40-hex-digit commit hash, which names a snapshot on its own.
func isCommitHash(_ revision: String) -> Bool {
    revision.utf8.count == 40 && revision.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}
