// Listening: `buildApplication`'s `onServerRunning` fires once the server listens, with the port it got, and a
// second server on a port in use fails with the system's EADDRINUSE and never calls it. `llm serve` prints its
// banner from that callback and turns that failure into "llm: error: cannot listen on HOST:PORT: the address is
// already in use …" (it reads the errno from the error, as "(errno: 98)" here).
import Foundation
import Hummingbird
import HummingbirdTesting
import LLMServer
import Testing

@Suite struct ServerListenTests {
    /// Set from the server's callback, read by the test.
    final class Box: @unchecked Sendable {
        private let lock = NSLock()
        private var ports = [Int]()
        func add(_ port: Int) { lock.withLock { ports.append(port) } }
        var values: [Int] { lock.withLock { ports } }
    }

    /// Runs `body`, or gives nil after `seconds`: a server that should have failed but listens never ends.
    static func within<T: Sendable>(_ seconds: Int, _ body: @escaping @Sendable () async -> T) async -> T? {
        await withTaskGroup(of: T?.self) { group in
            group.addTask { await body() }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test func aSecondServerOnTheSamePortFailsBeforeRunning() async throws {
        let firstRunning = Box(), secondRunning = Box()
        let first = buildApplication(backend: ScriptedBackend(replying: ""), model: TinyModel.served,
                                     configuration: ServerConfiguration(host: "127.0.0.1", port: 0)) { firstRunning.add($0) }
        let server = Task { try await first.run() }
        defer { server.cancel() }
        // Up to 30 s for the first one to listen.
        var waited = 0
        while firstRunning.values.isEmpty && waited < 3000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let ports = firstRunning.values
        try #require(ports.count == 1, "the first server's onServerRunning ran \(ports.count) times")
        let port = ports[0]
        #expect(port > 0, "onServerRunning gets the port the system picked for port 0")

        let second = buildApplication(backend: ScriptedBackend(replying: ""), model: TinyModel.served,
                                      configuration: ServerConfiguration(host: "127.0.0.1", port: port)) { secondRunning.add($0) }
        let outcome = await Self.within(30) {
            do {
                try await second.run()
                return "returned without an error"
            } catch {
                return String(describing: error)
            }
        }
        let error = try #require(outcome, "a second server on port \(port) was still running after 30 s")
        #expect(error.contains("(errno: \(EADDRINUSE))"), "\(error)")
        #expect(secondRunning.values.isEmpty, "the second server's onServerRunning ran")

        server.cancel()
        let stopped = await Self.within(30) { () -> Bool in
            _ = try? await server.value
            return true
        }
        #expect(stopped != nil, "the first server did not stop when its task was cancelled")
    }
}
