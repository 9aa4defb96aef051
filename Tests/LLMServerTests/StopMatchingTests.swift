// Stop sequences matched in linear time (one KMP automaton per sequence over UTF-8 bytes): the reply is cut where
// a plain search of the whole text says, whatever the overlaps, and sequences past the length limit are refused.
import Foundation
import Hummingbird
import HummingbirdTesting
import LLM
import Testing
@testable import LLMServer

@Suite struct StopMatchingTests {
    /// Where a plain search cuts `text`: before the stop sequence that is complete first (the earliest end), the
    /// earliest-starting one among those ending there; nil when none occurs.
    static func reference(_ text: [UInt8], _ stops: [[UInt8]]) -> Int? {
        for end in 0...text.count {
            let starts = stops.compactMap { s in end >= s.count && Array(text[end - s.count..<end]) == s ? end - s.count : nil }
            if let start = starts.min() { return start }
        }
        return nil
    }

    @Test func cutsWhereAPlainSearchDoes() {
        let tokenizer = TinyModel.tokenizer
        var rng = SplitMix64(seed: 11)
        for _ in 0..<300 {
            // Texts and stop sequences over a two-letter alphabet overlap in every way KMP must handle.
            let text = String((0..<Int(rng.next() % 40)).map { _ in rng.next() % 2 == 0 ? "a" : "b" })
            let stops = (0..<1 + Int(rng.next() % 3)).map { _ in
                String((0..<1 + Int(rng.next() % 4)).map { _ in rng.next() % 2 == 0 ? "a" : "b" })
            }
            var reply = ReplyText(tokenizer: tokenizer, stopSequences: stops)
            var sent = "", stopped = false
            for id in tokenizer.encode(text) {
                let (piece, stop) = reply.push(id)
                sent += piece
                if stop { stopped = true; break }
            }
            if !stopped { sent += reply.finish() }
            let cut = Self.reference(Array(text.utf8), stops.map { Array($0.utf8) })
            #expect(stopped == (cut != nil), "\(text) \(stops)")
            #expect(sent == (cut.map { String(text.prefix($0)) } ?? text), "\(text) \(stops): sent \(sent)")
        }
    }

    @Test func matchesAcrossMultibyteCharacters() {
        let tokenizer = TinyModel.tokenizer
        var reply = ReplyText(tokenizer: tokenizer, stopSequences: ["✓✓", "猫"])
        var sent = ""
        for id in tokenizer.encode("a ✓ b ✓✓ c 猫") {
            let (piece, stop) = reply.push(id)
            sent += piece
            if stop { break }
        }
        #expect(sent == "a ✓ b ")
    }

    @Test func refusesOverlongStopSequences() async throws {
        try await testApp(ScriptedBackend(replying: "Hi.")).test(.router) { client in
            let long = String(repeating: "x", count: ServerLimits().maxStopSequenceBytes + 1)
            let response = try await client.post("/v1/chat/completions", json: """
                {"messages": [{"role": "user", "content": "Hi"}], "stop": ["\(long)"]}
                """)
            #expect(response.status == .badRequest)
            #expect(response.text.contains("stop"))
            let fine = try await client.post("/v1/chat/completions", json: """
                {"messages": [{"role": "user", "content": "Hi"}], "stop": ["\(String(long.dropFirst()))"]}
                """)
            #expect(fine.status == .ok)
        }
    }
}
