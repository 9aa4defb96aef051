// Every fuzz harness over its committed seed corpus (Tests/Fuzz/corpus/<target>/), so that the harnesses and
// the seeds keep up with the parsers: no seed crashes its harness, and every harness accepts at least one of its
// seeds (a corpus of only refused files would fuzz little beyond the first check). scripts/fuzz.sh does the
// fuzzing itself.
import Foundation
import LLM
import Testing
import LLMServer

@Suite struct FuzzCorpusTests {
    static let harnesses = FuzzHarness.all + ServerFuzzHarnesses.all
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus").path

    @Test func everyTargetHasACorpusAndEveryCorpusATarget() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus).sorted()
        #expect(folders == Self.harnesses.map(\.name).sorted())
    }

    @Test(arguments: harnesses.map(\.name))
    func harnessRunsOverItsSeeds(_ name: String) throws {
        let harness = try #require(Self.harnesses.first { $0.name == name })
        let folder = (Self.corpus as NSString).appendingPathComponent(name)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(!files.isEmpty)
        var accepted = 0
        for file in files {
            let data = try Data(contentsOf: URL(fileURLWithPath: (folder as NSString).appendingPathComponent(file)))
            #expect(data.count <= harness.maxLength, "\(name)/\(file) is longer than the target's max length")
            if harness.run(data) == nil { accepted += 1 }
        }
        #expect(accepted > 0, "\(name): the harness refuses every seed")
    }
}
