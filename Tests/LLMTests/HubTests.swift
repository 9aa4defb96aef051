// `llm pull` against a fake hub: a blocking HTTP server on its own thread that serves the hub's URL layout (the
// model API, resolve URLs, a CDN the LFS file redirects to), with Range requests, and on demand a connection cut
// mid-file, corrupted bytes, a server that ignores Range, or a gated model.
import Foundation
import Testing
@testable import LLM
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite(.serialized) struct HubTests {
    // MARK: SHA-256

    @Test func sha256MatchesKnownVectors() throws {
        #expect(SHA256Hasher.hex([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256Hasher.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256Hasher.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million 'a's fed in uneven pieces, so that pieces straddle the 64-byte blocks.
        var hash = SHA256Hasher()
        var fed = 0, piece = 1
        while fed < 1_000_000 {
            let n = min(piece, 1_000_000 - fed)
            hash.update([UInt8](repeating: 0x61, count: n))
            fed += n
            piece = piece * 7 % 1000 + 1
        }
        #expect(SHA256Hasher.hexString(hash.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Every padding length (55, 56, 63, 64 bytes are the edges), one piece versus byte by byte, and the file path.
        try withTemporaryDirectory { dir in
            for length in 0...130 {
                let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
                var bytewise = SHA256Hasher()
                for b in bytes { bytewise.update([b]) }
                #expect(SHA256Hasher.hexString(bytewise.finalize()) == SHA256Hasher.hex(bytes))
                try writeBytes(bytes, dir + "/f")
                #expect(try SHA256Hasher.hex(ofFile: dir + "/f") == SHA256Hasher.hex(bytes))
            }
        }
        #expect(SHA256Hasher.hex(Array(repeating: 0x61, count: 64)) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    // MARK: names, globs, cache folder

    @Test func repoIDsAreCheckedAsTheHubChecksThem() throws {
        #expect(try HubRepoID("HuggingFaceTB/SmolLM2-135M").folderName == "models--HuggingFaceTB--SmolLM2-135M")
        #expect(try HubRepoID("gpt2").folderName == "models--gpt2")
        for bad in ["", "a/b/c", "/name", "org/", "org/-name", "org/name.", "org--x/name", "org/na..me", "org/na me", "../x"] {
            #expect(throws: HubError.invalidRepoID(bad)) { try HubRepoID(bad) }
        }
    }

    @Test func globsMatchAsFnmatchDoes() {
        #expect(globMatches("model.safetensors", "*.safetensors"))
        #expect(globMatches("onnx/model.onnx", "*.onnx"))  // '*' crosses '/'
        #expect(globMatches("onnx/model.onnx", "onnx/"))  // a folder
        #expect(!globMatches("config.json", "*.safetensors"))
        #expect(globMatches("model-00001-of-00002.safetensors", "model-0000[0-9]-of-*"))
        #expect(globMatches("a.bin", "?.bin") && !globMatches("ab.bin", "?.bin"))
        #expect(isSafeRelativePath("sub/dir/file.json"))
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\..\\..\\x"] { #expect(!isSafeRelativePath(bad)) }
    }

    @Test func cacheFolderFollowsHuggingFaceHubsEnvironment() {
        #expect(HubCache.defaultRoot(environment: ["HF_HUB_CACHE": "/c", "HF_HOME": "/h"]) == "/c")
        #expect(HubCache.defaultRoot(environment: ["HF_HOME": "/h", "XDG_CACHE_HOME": "/x"]) == "/h/hub")
        #expect(HubCache.defaultRoot(environment: ["XDG_CACHE_HOME": "/x"]) == "/x/huggingface/hub")
        #expect(HubCache.defaultRoot(environment: [:]) == NSHomeDirectory() + "/.cache/huggingface/hub")
        #expect(HubClient.fromEnvironment(["HF_ENDPOINT": "http://mirror:8080/", "HF_HOME": "/nonexistent"]).endpoint
            == "http://mirror:8080")
        #expect(HubClient.fromEnvironment(["HF_HOME": "/nonexistent"]).endpoint == "https://huggingface.co")
        #expect(HubClient.fromEnvironment(["HF_TOKEN": "t", "HF_HOME": "/nonexistent"]).hasToken)
        #expect(!HubClient.fromEnvironment(["HF_HOME": "/nonexistent"]).hasToken)
    }

    // MARK: pulls

    @Test func pullWritesHuggingFaceHubsCacheLayout() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let result = try hub.pull(cache: cache)
            let repoFolder = cache + "/models--test-org--tiny-model"
            #expect(result.commit == hub.commit)
            #expect(result.snapshotFolder == repoFolder + "/snapshots/" + hub.commit)
            #expect(Set(result.downloaded) == Set(hub.files.map(\.name)) && result.cached.isEmpty)
            #expect(try String(contentsOfFile: repoFolder + "/refs/main", encoding: .utf8) == hub.commit)
            for file in hub.files {
                let pointer = result.snapshotFolder + "/" + file.name
                let depth = file.name.split(separator: "/").count - 1
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: pointer)
                    == String(repeating: "../", count: depth + 2) + "blobs/" + file.etag)
                #expect(try readBytes(pointer) == file.bytes)
                #expect(try readBytes(repoFolder + "/blobs/" + file.etag) == file.bytes)
            }
            let blobs = try FileManager.default.contentsOfDirectory(atPath: repoFolder + "/blobs")
            #expect(Set(blobs) == Set(hub.files.map(\.etag)))  // nothing .incomplete left behind
            // The LFS file came from the CDN after a redirect; the small ones straight from resolve.
            #expect(hub.requests.contains { $0.method == "GET" && $0.path == "/cdn/" + hub.lfsFile.etag })
            #expect(hub.requests.first?.path == "/api/models/test-org/tiny-model/revision/main?blobs=true")
        }
    }

    @Test func secondPullDownloadsNothing() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            _ = try hub.pull(cache: cache)
            hub.clearRequests()
            let again = try hub.pull(cache: cache)
            #expect(again.downloaded.isEmpty && Set(again.cached) == Set(hub.files.map(\.name)))
            #expect(hub.requests.map(\.path) == ["/api/models/test-org/tiny-model/revision/main?blobs=true"])
        }
    }

    @Test func blobsAlreadyInTheCacheAreLinkedNotFetched() throws {
        // As when transformers fetched the files for another snapshot: the blobs are there, this snapshot is not.
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let first = try hub.pull(cache: cache)
            try FileManager.default.removeItem(atPath: first.snapshotFolder)
            hub.clearRequests()
            let again = try hub.pull(cache: cache)
            #expect(again.downloaded.isEmpty && Set(again.cached) == Set(hub.files.map(\.name)))
            #expect(hub.requests.allSatisfy { $0.method == "HEAD" || $0.path.hasPrefix("/api/") })
            #expect(try readBytes(again.snapshotFolder + "/" + hub.lfsFile.name) == hub.lfsFile.bytes)
        }
    }

    @Test func aCommitNeedsNoRef() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let result = try hub.pull(cache: cache, revision: hub.commit, include: ["config.json"])
            #expect(result.downloaded == ["config.json"])
            #expect(!FileManager.default.fileExists(atPath: cache + "/models--test-org--tiny-model/refs"))
            #expect(hub.requests.first?.path == "/api/models/test-org/tiny-model/revision/\(hub.commit)?blobs=true")
        }
    }

    @Test func includeGlobsPickTheFiles() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let json = try hub.pull(cache: cache, include: ["*.json"])
            #expect(Set(json.downloaded) == ["config.json", "sub/tokenizer_config.json"])
            #expect(!FileManager.default.fileExists(atPath: json.snapshotFolder + "/model.safetensors"))
            #expect(!hub.requests.contains { $0.path.hasPrefix("/cdn/") })
            let folder = try hub.pull(cache: cache, include: ["sub/", "README.md"])
            #expect(folder.downloaded == ["README.md"] && folder.cached == ["sub/tokenizer_config.json"])
            #expect(throws: HubError.noMatchingFiles(repo: hub.repo, patterns: ["*.gguf"])) {
                try hub.pull(cache: cache, include: ["*.gguf"])
            }
        }
    }

    @Test func interruptedDownloadIsKeptAndResumedWithRange() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let lfs = hub.lfsFile
            let blob = cache + "/models--test-org--tiny-model/blobs/" + lfs.etag
            hub.cutAfter = 100_000
            #expect(throws: HubError.self) { try hub.pull(cache: cache, attempts: 1) }
            #expect(!FileManager.default.fileExists(atPath: blob))
            #expect(try readBytes(blob + ".incomplete") == Array(lfs.bytes.prefix(100_000)))

            hub.clearRequests()
            let result = try hub.pull(cache: cache)
            #expect(result.downloaded.contains(lfs.name))
            #expect(hub.requests.contains { $0.path == "/cdn/" + lfs.etag && $0.range == "bytes=100000-" })
            #expect(try SHA256Hasher.hex(ofFile: blob) == lfs.etag)
            #expect(!FileManager.default.fileExists(atPath: blob + ".incomplete"))
        }
    }

    @Test func aDroppedConnectionIsRetriedFromWhereItStopped() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            hub.cutAfter = 123_457
            var notices: [String] = []
            let result = try hub.pull(cache: cache) { if case .notice(let text) = $0 { notices.append(text) } }
            #expect(try readBytes(result.snapshotFolder + "/" + hub.lfsFile.name) == hub.lfsFile.bytes)
            #expect(hub.requests.contains { $0.path.hasPrefix("/cdn/") && $0.range == "bytes=123457-" })
            #expect(notices.contains { $0.contains("model.safetensors") && $0.contains("retrying") })
        }
    }

    @Test func aServerIgnoringRangeRestartsTheFile() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let lfs = hub.lfsFile
            let blobs = cache + "/models--test-org--tiny-model/blobs/"
            try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
            try writeBytes([UInt8](repeating: 0xEE, count: 5000), blobs + lfs.etag + ".incomplete")  // not even its bytes
            hub.ignoreRange = true
            let result = try hub.pull(cache: cache)
            #expect(hub.requests.contains { $0.path.hasPrefix("/cdn/") && $0.range == "bytes=5000-" })
            #expect(try readBytes(result.snapshotFolder + "/" + lfs.name) == lfs.bytes)
        }
    }

    @Test func aCorruptedFileIsRefusedAndDeleted() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            hub.corrupt = true
            let lfs = hub.lfsFile
            do {
                _ = try hub.pull(cache: cache, include: [lfs.name])
                Issue.record("a corrupted file was accepted")
            } catch let error as HubError {
                guard case .checksumMismatch(let file, let expected, _) = error else { throw error }
                #expect(file == lfs.name && expected == lfs.etag)
                #expect(error.description.contains("model.safetensors") && error.description.contains("SHA-256"))
            }
            let repoFolder = cache + "/models--test-org--tiny-model"
            #expect(try FileManager.default.contentsOfDirectory(atPath: repoFolder + "/blobs").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: repoFolder + "/snapshots/\(hub.commit)/" + lfs.name))
        }
    }

    @Test func missingModelRevisionOrFileIsA404Error() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        try withTemporaryDirectory { cache in
            let client = HubClient(endpoint: hub.endpoint)
            var pull = HubPull(repo: try HubRepoID("test-org/no-such-model"), client: client, cache: HubCache(root: cache))
            #expect(throws: HubError.repoNotFound(repo: "test-org/no-such-model", endpoint: hub.endpoint)) { try pull.run() }
            pull = HubPull(repo: try HubRepoID(hub.repo), client: client, cache: HubCache(root: cache))
            pull.revision = "v9"
            #expect(throws: HubError.revisionNotFound(repo: hub.repo, revision: "v9")) { try pull.run() }
            #expect(throws: HubError.fileNotFound(repo: hub.repo, revision: hub.commit, file: "nope.bin")) {
                try client.fileMetadata(try HubRepoID(hub.repo), revision: hub.commit, file: "nope.bin")
            }
            #expect(hub.requests.map(\.status) == [404, 404, 404])  // one request each: a 404 is not retried
        }
    }

    @Test func aGatedModelNeedsTheToken() throws {
        let hub = try FakeHub()
        defer { hub.stop() }
        hub.requiredToken = "hf_secret"
        try withTemporaryDirectory { cache in
            #expect(throws: HubError.accessDenied(repo: hub.repo, status: 401, tokenSet: false)) { try hub.pull(cache: cache) }
            #expect(throws: HubError.accessDenied(repo: hub.repo, status: 403, tokenSet: true)) {
                try hub.pull(cache: cache, token: "hf_wrong")
            }
            let message = HubError.accessDenied(repo: hub.repo, status: 401, tokenSet: false).description
            #expect(message.contains("gated") && message.contains("HF_TOKEN") && !message.contains("hf_secret"))

            hub.clearRequests()
            let result = try hub.pull(cache: cache, token: "hf_secret")
            #expect(Set(result.downloaded) == Set(hub.files.map(\.name)))
            // The token goes to the hub, never to the CDN (another host) its redirect points to.
            #expect(hub.requests.filter { !$0.path.hasPrefix("/cdn/") }.allSatisfy { $0.authorization == "Bearer hf_secret" })
            #expect(hub.requests.filter { $0.path.hasPrefix("/cdn/") }.allSatisfy { $0.authorization == nil })
        }
    }

    @Test func anUnreachableHubSaysSo() throws {
        try withTemporaryDirectory { cache in
            var client = HubClient(endpoint: "http://127.0.0.1:1")
            client.maxAttempts = 1
            let pull = HubPull(repo: try HubRepoID("test-org/tiny-model"), client: client, cache: HubCache(root: cache))
            do {
                _ = try pull.run()
                Issue.record("a pull from a closed port succeeded")
            } catch let error as HubError {
                guard case .unreachable(let endpoint, _) = error else { throw error }
                #expect(endpoint == "http://127.0.0.1:1")
                #expect(error.description.contains("cannot reach http://127.0.0.1:1") && error.description.contains("HF_ENDPOINT"))
            }
        }
    }
}

// MARK: - The fake hub

/// One model, `test-org/tiny-model` at one commit, served on 127.0.0.1 as the hub serves it: the API's JSON, resolve
/// URLs (small files directly, with their git blob id as ETag; the LFS file as a redirect to the CDN with its
/// SHA-256 as X-Linked-Etag), and the CDN, which honours `Range`. The CDN is addressed as `localhost`, another origin
/// than the endpoint's `127.0.0.1`, as the real CDN is another host. One connection at a time, each closed after
/// its response, on a thread of its own (not the Swift concurrency pool the tests block).
private final class FakeHub: @unchecked Sendable {
    struct File {
        let name: String
        let bytes: [UInt8]
        let lfs: Bool
        /// The LFS file's SHA-256; for the small files a stand-in for their git blob SHA-1 (40 hex digits).
        let etag: String

        init(name: String, bytes: [UInt8], lfs: Bool) {
            (self.name, self.bytes, self.lfs) = (name, bytes, lfs)
            etag = lfs ? SHA256Hasher.hex(bytes) : String(SHA256Hasher.hex(Array("blob \(bytes.count)\0".utf8) + bytes).prefix(40))
        }
    }

    struct Request {
        let method: String, path: String, range: String?, authorization: String?, status: Int
    }

    let repo = "test-org/tiny-model"
    let commit = "0123456789abcdef0123456789abcdef01234567"
    let files: [File]
    var lfsFile: File { files.first { $0.lfs }! }
    private(set) var port: UInt16 = 0
    var endpoint: String { "http://127.0.0.1:\(port)" }

    private let lock = NSLock()
    private let listener: Int32
    private var stopped = false
    private var _requests: [Request] = []
    private var _cutAfter: Int?, _corrupt = false, _ignoreRange = false, _requiredToken: String?

    /// The next CDN response closes the connection after this many bytes of its body (once).
    var cutAfter: Int? { get { locked { _cutAfter } } set { locked { _cutAfter = newValue } } }
    /// The CDN serves the LFS file with one byte changed.
    var corrupt: Bool { get { locked { _corrupt } } set { locked { _corrupt = newValue } } }
    /// The CDN answers a Range request with 200 and the whole file, as some proxies do.
    var ignoreRange: Bool { get { locked { _ignoreRange } } set { locked { _ignoreRange = newValue } } }
    /// The model is gated: the API and resolve URLs answer 401 without `Bearer <token>`, 403 with another token.
    var requiredToken: String? { get { locked { _requiredToken } } set { locked { _requiredToken = newValue } } }
    var requests: [Request] { locked { _requests } }
    func clearRequests() { locked { _requests.removeAll() } }

    init() throws {
        var seed: UInt32 = 12345
        let weights = (0..<300_000).map { _ -> UInt8 in
            seed = seed &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: seed >> 24)
        }
        files = [
            File(name: ".gitattributes", bytes: Array("*.safetensors filter=lfs diff=lfs merge=lfs -text\n".utf8), lfs: false),
            File(name: "README.md", bytes: Array("# tiny model\n".utf8), lfs: false),
            File(name: "config.json", bytes: Array(#"{"model_type": "llama", "hidden_size": 8}"#.utf8), lfs: false),
            File(name: "model.safetensors", bytes: weights, lfs: true),
            File(name: "sub/tokenizer_config.json", bytes: Array(#"{"bos_token": "<s>"}"#.utf8), lfs: false),
        ]
        #if os(Linux)
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        listener = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard listener >= 0, bound else { throw POSIXError(.EADDRNOTAVAIL) }
        port = UInt16(bigEndian: address.sin_port)
        Thread { [self] in serve() }.start()
    }

    func stop() {
        locked { stopped = true }
    }

    /// Pulls the fake model into `cache` with quick retries.
    func pull(cache: String, revision: String = "main", include: [String] = [], token: String? = nil, attempts: Int = 5,
              events: (HubPullEvent) -> Void = { _ in }) throws -> HubPullResult {
        var client = HubClient(endpoint: endpoint, token: token)
        client.maxAttempts = attempts
        client.retryDelay = 0.01
        client.idleTimeout = 10
        var pull = HubPull(repo: try HubRepoID(repo), client: client, cache: HubCache(root: cache))
        pull.revision = revision
        pull.include = include
        return try pull.run(events: events)
    }

    private func locked<R>(_ body: () -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    private func serve() {
        defer { close(listener) }
        while !locked({ stopped }) {
            var waiting = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, 50) > 0 else { continue }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            #if canImport(Darwin)
            var one: Int32 = 1
            setsockopt(connection, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(4))
            #endif
            respond(on: connection)
            closeGracefully(connection)
        }
    }

    /// Reads one request's head and answers it.
    private func respond(on connection: Int32) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.containsHeadEnd {
            let n = recv(connection, &buffer, buffer.count, 0)
            guard n > 0 else { return }
            received += buffer[0..<n]
        }
        let lines = String(decoding: received, as: UTF8.self).components(separatedBy: "\r\n")
        let requestLine = lines[0].split(separator: " ").map(String.init)
        guard requestLine.count == 3 else { return }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let (method, path) = (requestLine[0], requestLine[1])
        let response = route(method: method, path: path, headers: headers)
        locked {
            _requests.append(Request(method: method, path: path, range: headers["range"],
                                     authorization: headers["authorization"], status: response.status))
        }
        var head = "HTTP/1.1 \(response.status) \(response.status < 300 ? "OK" : response.status < 400 ? "Found" : "Error")\r\n"
        var fields = response.headers
        fields["Content-Length"] = fields["Content-Length"] ?? "\(response.body.count)"
        fields["Connection"] = "close"
        for (name, value) in fields { head += "\(name): \(value)\r\n" }
        send(Array((head + "\r\n").utf8), on: connection)
        guard method != "HEAD" else { return }
        send(response.cutAfter.map { Array(response.body.prefix($0)) } ?? response.body, on: connection)
    }

    /// Ends the response (a cut one included) with a FIN after every byte sent, and waits up to a second for the
    /// client to close its side, so that no byte is lost to a reset.
    private func closeGracefully(_ connection: Int32) {
        shutdown(connection, Int32(SHUT_WR))
        var buffer = [UInt8](repeating: 0, count: 4096)
        var waiting = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
        while poll(&waiting, 1, 1000) > 0, recv(connection, &buffer, buffer.count, 0) > 0 {}
        close(connection)
    }

    private struct Response {
        var status: Int
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        var cutAfter: Int?
    }

    private func route(method: String, path: String, headers: [String: String]) -> Response {
        let apiPrefix = "/api/models/", resolvePrefix = "/\(repo)/resolve/", cdnPrefix = "/cdn/"
        let gated = locked { _requiredToken }
        if !path.hasPrefix(cdnPrefix), let gated, headers["authorization"] != "Bearer \(gated)" {
            return Response(status: headers["authorization"] == nil ? 401 : 403, headers: ["X-Error-Code": "GatedRepo"])
        }
        if path.hasPrefix(apiPrefix) {
            let rest = path.dropFirst(apiPrefix.count).split(separator: "?")[0]
            guard rest.hasPrefix(repo + "/revision/") else { return Response(status: 404, headers: ["X-Error-Code": "RepoNotFound"]) }
            let revision = rest.dropFirst((repo + "/revision/").count)
            guard revision == "main" || revision == commit else {
                return Response(status: 404, headers: ["X-Error-Code": "RevisionNotFound"])
            }
            return Response(status: 200, headers: ["Content-Type": "application/json"], body: Array(modelInfoJSON().utf8))
        }
        if path.hasPrefix(resolvePrefix) {
            let rest = path.dropFirst(resolvePrefix.count)
            guard rest.hasPrefix(commit + "/") else { return Response(status: 404, headers: ["X-Error-Code": "RevisionNotFound"]) }
            let name = String(rest.dropFirst(commit.count + 1)).removingPercentEncoding ?? ""
            guard let file = files.first(where: { $0.name == name }) else {
                return Response(status: 404, headers: ["X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit])
            }
            if file.lfs {
                return Response(status: 302, headers: [
                    "Location": "http://localhost:\(port)\(cdnPrefix)\(file.etag)", "X-Repo-Commit": commit,
                    "X-Linked-Etag": "\"\(file.etag)\"", "X-Linked-Size": "\(file.bytes.count)", "ETag": "\"pointer\"",
                ])
            }
            return Response(status: 200, headers: ["X-Repo-Commit": commit, "ETag": "\"\(file.etag)\""], body: file.bytes)
        }
        if path.hasPrefix(cdnPrefix), let file = files.first(where: { cdnPrefix + $0.etag == path }) {
            return cdn(file, range: headers["range"])
        }
        return Response(status: 404)
    }

    private func cdn(_ file: File, range: String?) -> Response {
        var bytes = file.bytes
        let (corrupt, ignoreRange, cut) = locked { () -> (Bool, Bool, Int?) in
            defer { _cutAfter = nil }
            return (_corrupt, _ignoreRange, _cutAfter)
        }
        if corrupt { bytes[bytes.count / 2] ^= 0xFF }
        var response = Response(status: 200, headers: ["ETag": "\"\(file.etag)\""], body: bytes, cutAfter: cut)
        if let range, !ignoreRange, range.hasPrefix("bytes="), range.hasSuffix("-"),
           let start = Int(range.dropFirst(6).dropLast()) {
            guard start < bytes.count else {
                return Response(status: 416, headers: ["Content-Range": "bytes */\(bytes.count)"])
            }
            response.status = 206
            response.body = Array(bytes[start...])
            response.headers["Content-Range"] = "bytes \(start)-\(bytes.count - 1)/\(bytes.count)"
        }
        return response
    }

    private func modelInfoJSON() -> String {
        let siblings = files.map { file in
            file.lfs
                ? #"{"rfilename": "\#(file.name)", "size": \#(file.bytes.count), "blobId": "ab12", "lfs": {"sha256": "\#(file.etag)", "size": \#(file.bytes.count), "pointerSize": 134}}"#
                : #"{"rfilename": "\#(file.name)", "size": \#(file.bytes.count), "blobId": "\#(file.etag)"}"#
        }
        return #"{"_id": "x", "id": "\#(repo)", "sha": "\#(commit)", "private": false, "siblings": [\#(siblings.joined(separator: ", "))]}"#
    }

    private func send(_ bytes: [UInt8], on connection: Int32) {
        #if os(Linux)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc_send(connection, $0.baseAddress!, $0.count, flags) }
            guard n > 0 else { return }
            done += n
        }
    }
}

private func Glibc_send(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int, _ flags: Int32) -> Int {
    #if canImport(Glibc)
    return Glibc.send(fd, buffer, count, flags)
    #else
    return Darwin.send(fd, buffer, count, flags)
    #endif
}

private extension [UInt8] {
    var containsHeadEnd: Bool {
        count >= 4 && (0...(count - 4)).contains { self[$0] == 13 && self[$0 + 1] == 10 && self[$0 + 2] == 13 && self[$0 + 3] == 10 }
    }
}
