// NCCL as far as a machine without GPUs goes: the library resolves (when it is installed: `pip install
// nvidia-nccl-cu12`), makes ids, and rank 0's id reaches the other ranks through the bootstrap communicator or a
// file. Connecting ranks and the collectives need one GPU per rank.

import CNCCL
import Foundation
import Testing
@testable import LLM

private let nccl: NCCL? = try? NCCL.load()

@Suite struct NCCLTests {
    @Test(.enabled(if: nccl != nil, "libnccl.so.2 not found (pip install nvidia-nccl-cu12, or set LLM_NCCL_PATH)"))
    func libraryResolvesAndMakesIDs() throws {
        let nccl = try #require(nccl)
        #expect(nccl.version >= 2_00_00)
        let a = try nccl.uniqueID(), b = try nccl.uniqueID()
        #expect(a.bytes.count == 128 && a.bytes.contains { $0 != 0 })
        #expect(a != b)
    }

    @Test func theIDIsTheCStructNCCLTakes() {
        #expect(MemoryLayout<LLMNCCLUniqueID>.size == NCCLUniqueID.byteCount)
    }

    @Test func theIDTravelsThroughTheBootstrapCommunicator() throws {
        var made = NCCLUniqueID()
        made.bytes = (0..<128).map { UInt8($0) }
        let id = try NCCLUniqueID.exchange(through: SingleProcess()) { () throws(DistributedError) in made }
        #expect(id == made)
    }

    @Test func theIDTravelsThroughAFile() throws {
        try withTemporaryDirectory { dir in
            let file = dir + "/nccl-id"
            var made = NCCLUniqueID()
            made.bytes = (0..<128).map { UInt8(255 - $0) }
            // Rank 1 starts waiting before rank 0 writes.
            let received = LockedBox<NCCLUniqueID?>(nil)
            let waiter = Thread {
                received.value = try? NCCLUniqueID.exchange(file: file, rank: 1, timeout: 20) { () throws(DistributedError) in
                    NCCLUniqueID()
                }
            }
            waiter.start()
            Thread.sleep(forTimeInterval: 0.2)
            let sent = try NCCLUniqueID.exchange(file: file, rank: 0) { () throws(DistributedError) in made }
            let deadline = Date().addingTimeInterval(20)
            while received.value == nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            #expect(sent == made && received.value == made)
            // Only the id is left: it was written to a temporary file and renamed.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["nccl-id"])

            #expect {
                _ = try NCCLUniqueID.exchange(file: dir + "/never", rank: 3, timeout: 0.2) { () throws(DistributedError) in
                    NCCLUniqueID()
                }
            } throws: { error in
                String(describing: error).hasPrefix("rank 3: no NCCL id appeared in \(dir)/never within 0.2 s (is rank 0 running, and is the folder shared?)")
            }
        }
    }
}

/// A value shared between threads.
private final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
