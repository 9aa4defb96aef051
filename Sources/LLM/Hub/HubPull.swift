// `llm pull`: a model's files from the hub into the hub cache, as huggingface_hub's snapshot_download puts them.
// The revision is resolved to a commit once, and every file is fetched at that commit, so a pull is one consistent
// snapshot even if the branch moves meanwhile. Files already in the snapshot cost no request; blobs already in the
// cache (another revision's, or transformers') are linked, not fetched again.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a pull reports as it goes.
public enum HubPullEvent: Sendable {
    /// The revision is `commit`; `files` files (`bytes` in all) are to be fetched, `cached` are in the snapshot already.
    case resolved(commit: String, files: Int, cached: Int, bytes: Int64)
    case progress(HubPullProgress)
    /// A retry, a restarted download, a long checksum: worth a line.
    case notice(String)
}

public struct HubPullProgress: Sendable {
    /// The file being fetched.
    public let file: String
    /// Bytes of the files to fetch that are on disk, including a resumed download's first part.
    public let completedBytes: Int64
    public let totalBytes: Int64
    /// Bytes received over the network by this pull (for a speed).
    public let receivedBytes: Int64
}

public struct HubPullResult: Sendable {
    public let commit: String
    /// `snapshots/<commit>`: a model folder, as `llm chat --model` and transformers take it.
    public let snapshotFolder: String
    /// Files fetched over the network, and files found in the cache.
    public let downloaded: [String]
    public let cached: [String]
}

/// Pulls `repo` at `revision` (a branch, tag or commit), the files matching `include` (fnmatch globs, as
/// huggingface_hub's `allow_patterns`; none means every file).
public struct HubPull {
    public let repo: HubRepoID
    public var revision = "main"
    public var include: [String] = []
    public var client: HubClient
    public var cache: HubCache

    public init(repo: HubRepoID, client: HubClient, cache: HubCache) {
        self.repo = repo
        self.client = client
        self.cache = cache
    }

    public func run(events: (HubPullEvent) -> Void = { _ in }) throws -> HubPullResult {
        func notice(_ text: String) { events(.notice(text)) }
        guard isSafeRelativePath(revision) else { throw HubError.invalidRevision(revision) }  // it names refs/<revision>
        let info = try client.modelInfo(repo, revision: revision, notice: notice)
        let commit = info.sha
        guard isCommitHash(commit) else {
            throw HubError.badResponse(url: client.endpoint + "/api/models/\(repo.id)", reason: "\"\(commit)\" is not a commit hash")
        }
        let files = info.siblings.filter { file in include.isEmpty || include.contains { globMatches(file.rfilename, $0) } }
        if files.isEmpty && !include.isEmpty { throw HubError.noMatchingFiles(repo: repo.id, patterns: include) }
        for file in files where !isSafeRelativePath(file.rfilename) {
            throw HubError.unsafeFilename(repo: repo.id, file: file.rfilename)
        }

        let snapshot = cache.snapshotFolder(repo, commit: commit)
        try cache.makeFolder(snapshot)
        try cache.writeRef(repo, revision: revision, commit: commit)
        let inSnapshot = Set(files.map(\.rfilename).filter { cache.hasFile(repo, commit: commit, file: $0) })
        var cached = files.map(\.rfilename).filter(inSnapshot.contains)
        let toFetch = files.filter { !inSnapshot.contains($0.rfilename) }
        let total = toFetch.reduce(Int64(0)) { $0 + ($1.size ?? $1.lfs?.size ?? 0) }
        events(.resolved(commit: commit, files: toFetch.count, cached: cached.count, bytes: total))

        var downloaded: [String] = []
        var completed: Int64 = 0, received: Int64 = 0
        for file in toFetch {
            let name = file.rfilename
            let metadata = try client.fileMetadata(repo, revision: commit, file: name, notice: notice)
            let blob = cache.blobPath(repo, etag: metadata.etag)
            func waiting(_ lock: String) { notice("\(name): waiting for another download of it to finish (\(lock))") }
            try cache.withBlobLock(repo, etag: metadata.etag, waiting: waiting) {
                if FileManager.default.fileExists(atPath: blob) {
                    cached.append(name)
                } else {
                    var last: Int64?  // the partial file's length at the previous report
                    try fetch(metadata, file: name, notice: notice) { have in
                        if let last, have > last { received += have - last }
                        last = have
                        events(.progress(HubPullProgress(file: name, completedBytes: completed + have, totalBytes: total,
                                                         receivedBytes: received)))
                    }
                    downloaded.append(name)
                }
                try cache.link(repo, commit: commit, file: name, etag: metadata.etag)
            }
            completed += metadata.size ?? file.size ?? 0
        }
        return HubPullResult(commit: commit, snapshotFolder: snapshot, downloaded: downloaded, cached: cached)
    }

    /// Downloads one blob to `blobs/<etag>.incomplete` (resuming it if it exists), checks its SHA-256 if it is an LFS
    /// file, and only then renames it to `blobs/<etag>`. A file that fails the check is deleted.
    private func fetch(_ metadata: HubFileMetadata, file: String, notice: (String) -> Void,
                       progress: (Int64) -> Void) throws {
        let blob = cache.blobPath(repo, etag: metadata.etag), partial = cache.incompletePath(repo, etag: metadata.etag)
        try cache.makeFolder((blob as NSString).deletingLastPathComponent)
        try client.download(metadata, repo: repo, file: file, to: partial, progress: progress, notice: notice)
        if let expected = metadata.sha256 {
            if let size = metadata.size, size >= 1 << 28 { notice("\(file): checking its SHA-256") }
            let actual = try SHA256Hasher.hex(ofFile: partial)
            guard actual == expected else {
                unlink(partial)
                throw HubError.checksumMismatch(file: file, expected: expected, actual: actual)
            }
        }
        guard rename(partial, blob) == 0 else { throw HubError.cacheWriteFailed(path: blob, reason: String(cString: strerror(errno))) }
    }
}

/// Python's `fnmatch` as huggingface_hub's `allow_patterns` uses it: `*` also matches `/`, and a pattern ending in
/// `/` means everything under that folder.
func globMatches(_ path: String, _ pattern: String) -> Bool {
    fnmatch(pattern.hasSuffix("/") ? pattern + "*" : pattern, path, FNM_NOESCAPE) == 0
}

/// A `/`-separated path that stays inside the folder it is joined to (no `..`, even `\\`-separated, as
/// huggingface_hub checks, so that a snapshot copied to Windows cannot escape either).
func isSafeRelativePath(_ path: String) -> Bool {
    !path.isEmpty && !path.hasPrefix("/") && !path.contains("\0")
        && path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." }
        && !path.split(whereSeparator: { $0 == "/" || $0 == "\\" }).contains("..")
}
