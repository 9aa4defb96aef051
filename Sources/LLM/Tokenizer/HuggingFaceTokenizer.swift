// Reading a Hugging Face tokenizer: tokenizer.json (the BPE model, added tokens, normalizer, pre-tokenizer,
// post-processor, decoder), with tokenizer_config.json (add_bos_token, the BOS and EOS names) and
// generation_config.json (every end id) from the same folder. Each part is mapped to what `Tokenizer`
// implements; anything else is an `unsupported` error that names it.
//
//   model          BPE (byte-level or with byte_fallback; ignore_merges; merges as "a b" or ["a", "b"])
//   normalizer     null, Replace (string pattern), Prepend, NFC, Sequence of these
//   pre_tokenizer  ByteLevel (GPT-2's regex or none); Sequence[Split(regex), ByteLevel] with GPT-2's, GPT-4's,
//                  Llama 3's or Qwen2's regex; Sequence[Digits(individual_digits), ByteLevel] (SmolLM);
//                  Metaspace (split: false); Split on " " after a normalizer that replaces " "; null
//   decoder        ByteLevel; Replace, ByteFallback, Fuse, Strip, alone or in a Sequence
//   post_processor TemplateProcessing (one special token before and/or after), Roberta/BertProcessing,
//                  ByteLevel, Sequence of these
import Foundation

extension Tokenizer {
    /// The tokenizer of a Hugging Face model folder: its tokenizer.json, with tokenizer_config.json and
    /// generation_config.json if present.
    public static func loadHuggingFace(folder: String) throws -> Tokenizer {
        func file(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        func optional(_ name: String) -> String? { FileManager.default.fileExists(atPath: file(name)) ? file(name) : nil }
        return try loadHuggingFace(tokenizerJSON: file("tokenizer.json"), config: optional("tokenizer_config.json"),
                                   generationConfig: optional("generation_config.json"))
    }

    /// A tokenizer.json, with the folder's tokenizer_config.json and generation_config.json if given.
    public static func loadHuggingFace(tokenizerJSON path: String, config: String? = nil,
                                       generationConfig: String? = nil) throws -> Tokenizer {
        let root = try JSONObject.read(path)
        let reader = HuggingFaceTokenizerReader(root: root, path: path)
        return Tokenizer(try reader.parts(config: try config.map(JSONObject.read),
                                          generationConfig: try generationConfig.map(JSONObject.read)))
    }
}

/// Which loader a tokenizer path needs.
public enum TokenizerSource: String, Sendable, Equatable {
    /// "gpt2": the bundled GPT-2 vocabulary.
    case gpt2
    /// The project's own file (`llm-tokenizer 1`).
    case projectFile
    /// llm.c's gpt2_tokenizer.bin (decode only).
    case llmcDecoder
    /// A folder holding tokenizer.json.
    case huggingFaceFolder
    /// A tokenizer.json file.
    case huggingFaceJSON
    /// A GGUF model file (its metadata holds the tokenizer).
    case gguf

    /// Decides from the name and the file's first bytes; throws if the path is neither readable nor one of these.
    public static func of(_ path: String) throws -> TokenizerSource {
        if path == "gpt2" { return .gpt2 }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.unreadable(path: path, reason: "no such file or folder")
        }
        if isDirectory.boolValue {
            guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("tokenizer.json")) else {
                throw TokenizerError.unreadable(path: path, reason: "a folder without tokenizer.json")
            }
            return .huggingFaceFolder
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw TokenizerError.unreadable(path: path, reason: "not readable")
        }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 16)) ?? Data())
        if head.starts(with: Array("GGUF".utf8)) { return .gguf }
        if head.starts(with: Array("llm-tokenizer".utf8)) { return .projectFile }
        if head.starts(with: [0xC8, 0xD7, 0x34, 0x01]) { return .llmcDecoder }  // 20240328, little-endian
        if path.hasSuffix(".json") || head.first(where: { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }) == 0x7B {
            return .huggingFaceJSON
        }
        throw TokenizerError.malformed(path: path, reason: "not a tokenizer file (GGUF, tokenizer.json, llm-tokenizer or llm.c's gpt2_tokenizer.bin)")
    }
}

/// Maps one tokenizer.json to `TokenizerParts`.
struct HuggingFaceTokenizerReader {
    let root: JSONObject
    let path: String

    func unsupported(_ what: String) -> TokenizerError { .unsupported(path: path, feature: what) }

    func parts(config: JSONObject?, generationConfig: JSONObject?) throws(TokenizerError) -> TokenizerParts {
        let model = try root.object("model")
        let type = try model.optionalString("type") ?? "BPE"
        guard type == "BPE" else { throw unsupported("model type \(type) (supported: BPE)") }
        try checkPlainBPE(model)

        // Ids: the model's vocabulary, then the added tokens (whose content replaces the vocabulary's string).
        guard case .object(let vocabMembers)? = model["vocab"] else { throw model.fail("vocab", "missing or not an object") }
        var idOf = [(name: String, id: Int)]()
        idOf.reserveCapacity(vocabMembers.count)
        var size = 0
        for (name, value) in vocabMembers {
            let id = try JSONObject.int(value, in: 0...maxVocabularySize - 1) { model.fail("vocab[\(name.debugDescription)]", $0) }
            idOf.append((name, id))
            size = max(size, id + 1)
        }
        let added = try addedTokens()
        for t in added { size = max(size, Int(t.id) + 1) }
        // Ids are dense in real files; a few holes are fine, a claim of millions of ids in a small file is not.
        guard size <= idOf.count + added.count + 65536 else {
            throw model.fail("vocab", "ids reach \(size - 1) with only \(idOf.count + added.count) tokens")
        }
        var names = [String](repeating: "", count: size)
        for (name, id) in idOf {
            guard names[id].isEmpty else {
                throw model.fail("vocab", "id \(id) is given to both \(names[id].debugDescription) and \(name.debugDescription)")
            }
            names[id] = name
        }
        let vocabulary = MergeVocabulary(names: names)

        let (normalizer, replacesSpace) = try normalizerSteps(try root.optionalObject("normalizer"))
        let pre = try preTokenizer(try root.optionalObject("pre_tokenizer"), normalizerReplacesSpace: replacesSpace)
        let decoder = try tokenDecoder(try root.optionalObject("decoder"))
        if pre.byteLevel != (decoder.perToken.first == .byteLevel) {
            throw unsupported(pre.byteLevel ? "a ByteLevel pre-tokenizer without the ByteLevel decoder"
                                            : "the ByteLevel decoder without the ByteLevel pre-tokenizer")
        }

        let merges = try vocabulary.mergeTable(try mergePairs(model)) { k, why in model.fail("merges[\(k)]", why) }
        let ignoreMerges = try model.bool("ignore_merges", default: false)
        let unknown = try model.optionalString("unk_token").flatMap { vocabulary.id($0) }
        let fuseUnknown = try model.bool("fuse_unk", default: false)
        let bpe = pre.byteLevel
            ? vocabulary.byteLevelModel(merges: merges, unknown: unknown, fuseUnknown: fuseUnknown, ignoreMerges: ignoreMerges)
            : vocabulary.characterModel(merges: merges, byteFallback: try model.bool("byte_fallback", default: false),
                                        unknown: unknown, fuseUnknown: fuseUnknown, ignoreMerges: ignoreMerges)

        for t in added { names[Int(t.id)] = String(decoding: t.content, as: UTF8.self) }
        var parts = TokenizerParts(model: .merges(bpe), split: pre.split, normalizer: normalizer,
                                   preTokenizerSteps: pre.steps, added: added,
                                   tokenBytes: names.map { $0.isEmpty ? [] : decoder.bytes(of: $0) }, names: names)
        parts.leadingStrip = decoder.leadingStrip
        try specialIds(into: &parts, vocabulary: vocabulary, added: added, config: config, generationConfig: generationConfig)
        return parts
    }

    // MARK: - Model

    /// Rejects the BPE options that change how a word is cut (dropout, subword prefixes and suffixes).
    private func checkPlainBPE(_ model: JSONObject) throws(TokenizerError) {
        switch model["dropout"] {
        case nil, .int(0)?: break
        case .double(let d)? where d == 0: break
        case _?: throw unsupported("BPE dropout other than 0")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = try model.optionalString(key), !s.isEmpty { throw unsupported("BPE \(key) \(s.debugDescription)") }
        }
    }

    /// The merges as pairs of strings: ["a", "b"] or "a b" (lines starting "#version" skipped, as Hugging Face does).
    private func mergePairs(_ model: JSONObject) throws(TokenizerError) -> [(String, String)] {
        var pairs = [(String, String)]()
        let merges = try model.array("merges")
        pairs.reserveCapacity(merges.count)
        for (k, m) in merges.enumerated() {
            switch m {
            case .string(let line):
                if line.hasPrefix("#version") { continue }
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw model.fail("merges[\(k)]", "\(line.debugDescription) is not two tokens separated by a space") }
                pairs.append((String(parts[0]), String(parts[1])))
            case .array(let a):
                guard a.count == 2, case .string(let left) = a[0], case .string(let right) = a[1] else {
                    throw model.fail("merges[\(k)]", "expected two strings")
                }
                pairs.append((left, right))
            default:
                throw model.fail("merges[\(k)]", "expected a string or a pair of strings, found \(m.typeName)")
            }
        }
        return pairs
    }

    private func addedTokens() throws(TokenizerError) -> [AddedToken] {
        guard root["added_tokens"] != nil else { return [] }
        var out = [AddedToken]()
        for t in try root.objects("added_tokens") {
            let special = try t.bool("special", default: false)
            var token = AddedToken(content: Array(try t.string("content").utf8),
                                   id: Int32(try t.int("id", in: 0...maxVocabularySize - 1)), special: special)
            token.singleWord = try t.bool("single_word", default: false)
            token.lstrip = try t.bool("lstrip", default: false)
            token.rstrip = try t.bool("rstrip", default: false)
            token.normalized = try t.bool("normalized", default: !special)
            out.append(token)
        }
        return out
    }

    // MARK: - Normalizer, pre-tokenizer, decoder

    /// The elements of a Sequence (`listKey`), flattened; a single non-Sequence component is a list of one.
    private func flatten(_ o: JSONObject, listKey: String) throws(TokenizerError) -> [JSONObject] {
        guard try o.string("type") == "Sequence" else { return [o] }
        var out = [JSONObject]()
        for element in try o.objects(listKey) { out += try flatten(element, listKey: listKey) }
        return out
    }

    /// The normalizer's steps, and whether one of them replaces every " " (so no space is left).
    private func normalizerSteps(_ o: JSONObject?) throws(TokenizerError) -> ([TextStep], Bool) {
        guard let o else { return ([], false) }
        var steps = [TextStep](), replacesSpace = false
        for n in try flatten(o, listKey: "normalizers") {
            switch try n.string("type") {
            case "Replace":
                let (from, to) = try literalReplace(n, what: "normalizer")
                steps.append(.replace(from: Array(from.utf8), to: Array(to.utf8)))
                if from == " " && !to.contains(" ") { replacesSpace = true }
            case "Prepend": steps.append(.prepend(Array(try n.string("prepend").utf8)))
            case "NFC": steps.append(.nfc)
            case let other: throw unsupported("normalizer \(other) (supported: Replace, Prepend, NFC, Sequence)")
            }
        }
        return (steps, replacesSpace)
    }

    /// A Replace with a string pattern: (pattern, content).
    private func literalReplace(_ o: JSONObject, what: String) throws(TokenizerError) -> (String, String) {
        let pattern = try o.object("pattern")
        guard let from = try pattern.optionalString("String") else {
            throw unsupported("\(what) Replace with a regex pattern (only string patterns)")
        }
        return (from, try o.string("content"))
    }

    struct PreTokenizerSpec {
        var split = SplitRule.whole
        var byteLevel = false
        var steps: [TextStep] = []
    }

    private func preTokenizer(_ o: JSONObject?, normalizerReplacesSpace: Bool) throws(TokenizerError) -> PreTokenizerSpec {
        guard let o else { return PreTokenizerSpec() }
        let parts = try flatten(o, listKey: "pretokenizers")
        var types = [String]()
        for p in parts { types.append(try p.string("type")) }
        let supported = "supported: ByteLevel; Split(GPT-2, GPT-4, Llama 3 or Qwen2 regex) then ByteLevel; Digits(individual_digits) then ByteLevel; Metaspace; Split on \" \" after a normalizer replacing \" \""
        func byteLevel(_ p: JSONObject, regex: Bool) throws(TokenizerError) -> PreTokenizerSpec {
            guard try p.bool("use_regex", default: true) == regex else {
                throw unsupported("pre_tokenizer ByteLevel with use_regex \(!regex) here (\(supported))")
            }
            let prefix = try p.bool("add_prefix_space", default: true)
            return PreTokenizerSpec(split: regex ? .gpt2 : .whole, byteLevel: true,
                                    steps: prefix ? [.prefixUnlessPresent([0x20], firstOnly: false)] : [])
        }
        switch types {
        case []: return PreTokenizerSpec()
        case ["ByteLevel"]:
            return try byteLevel(parts[0], regex: try parts[0].bool("use_regex", default: true))
        case ["Split", "ByteLevel"]:
            let split = parts[0]
            guard let regex = try split.object("pattern").optionalString("Regex") else {
                throw unsupported("pre_tokenizer Split on a string before ByteLevel (\(supported))")
            }
            guard let rule = SplitRule(huggingFaceRegex: regex) else {
                throw unsupported("pre_tokenizer Split regex \(regex.debugDescription) (\(supported))")
            }
            guard try split.string("behavior") == "Isolated", !(try split.bool("invert", default: false)) else {
                throw unsupported("pre_tokenizer Split other than Isolated (\(supported))")
            }
            var spec = try byteLevel(parts[1], regex: false)
            guard spec.steps.isEmpty else { throw unsupported("pre_tokenizer ByteLevel add_prefix_space after Split") }
            spec.split = rule
            return spec
        case ["Digits", "ByteLevel"]:
            guard try parts[0].bool("individual_digits", default: false) else {
                throw unsupported("pre_tokenizer Digits without individual_digits (\(supported))")
            }
            var spec = try byteLevel(parts[1], regex: true)
            guard spec.steps.isEmpty else { throw unsupported("pre_tokenizer ByteLevel add_prefix_space after Digits") }
            spec.split = .smollm
            return spec
        case ["Metaspace"]:
            let m = parts[0]
            guard !(try m.bool("split", default: true)) else { throw unsupported("pre_tokenizer Metaspace with split: true") }
            let replacement = Array(try m.string("replacement").utf8)
            // Older files say add_prefix_space instead of prepend_scheme.
            let legacyScheme = try m.bool("add_prefix_space", default: true) ? "always" : "never"
            let scheme = try m.optionalString("prepend_scheme") ?? legacyScheme
            var steps: [TextStep] = [.replace(from: [0x20], to: replacement)]
            switch scheme {
            case "always": steps.append(.prefixUnlessPresent(replacement, firstOnly: false))
            case "first": steps.append(.prefixUnlessPresent(replacement, firstOnly: true))
            case "never": break
            default: throw m.fail("prepend_scheme", "expected always, first or never")
            }
            return PreTokenizerSpec(split: .whole, byteLevel: false, steps: steps)
        case ["Split"]:
            // Gemma's: Split(" ", MergedWithPrevious) after a normalizer that has replaced every " ": it never splits.
            guard try parts[0].object("pattern").optionalString("String") == " ", normalizerReplacesSpace,
                  !(try parts[0].bool("invert", default: false)) else {
                throw unsupported("pre_tokenizer Split (\(supported))")
            }
            return PreTokenizerSpec()
        default:
            throw unsupported("pre_tokenizer \(types.joined(separator: " + ")) (\(supported))")
        }
    }

    private func tokenDecoder(_ o: JSONObject?) throws(TokenizerError) -> TokenDecoder {
        guard let o else { throw unsupported("a tokenizer without a decoder") }
        var decoder = TokenDecoder(), fused = false
        for d in try flatten(o, listKey: "decoders") {
            let type = try d.string("type")
            if fused && type != "Strip" { throw unsupported("decoder \(type) after Fuse") }
            switch type {
            case "ByteLevel": decoder.perToken.append(.byteLevel)
            case "Replace":
                let (from, to) = try literalReplace(d, what: "decoder")
                decoder.perToken.append(.replace(from: Array(from.utf8), to: Array(to.utf8)))
            case "ByteFallback": decoder.perToken.append(.byteFallback)
            case "Fuse": fused = true
            case "Strip":
                let content = Array(try d.string("content").utf8)
                let start = try d.int("start", in: 0...1024), stop = try d.int("stop", in: 0...1024)
                if !fused {
                    decoder.perToken.append(.strip(content: content, start: start, stop: stop))
                } else if stop == 0 && decoder.leadingStrip == nil {
                    decoder.leadingStrip = (content, start)
                } else {
                    throw unsupported("decoder Strip from the end of the text")
                }
            case let other: throw unsupported("decoder \(other) (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip)")
            }
        }
        if decoder.perToken.dropFirst().contains(.byteLevel) { throw unsupported("decoder ByteLevel after other decoders") }
        return decoder
    }

    // MARK: - BOS and EOS

    /// BOS, EOS and whether encoding adds them: tokenizer_config.json's names and add_bos_token/add_eos_token,
    /// else the post-processor's template; generation_config.json's eos_token_id adds end ids.
    private func specialIds(into parts: inout TokenizerParts, vocabulary: MergeVocabulary, added: [AddedToken],
                            config: JSONObject?, generationConfig: JSONObject?) throws(TokenizerError) {
        let (before, after) = try template(try root.optionalObject("post_processor"))
        func named(_ key: String) throws(TokenizerError) -> Int32? {
            guard let config, let value = config[key] else { return nil }
            let name: String
            switch value {
            case .string(let s): name = s
            case .object(let m): name = try JSONObject(file: config.file, keyPath: key, members: m).string("content")
            default: throw config.fail(key, "expected a token name, found \(value.typeName)")
            }
            guard let id = added.last(where: { $0.content.elementsEqual(name.utf8) })?.id ?? vocabulary.id(name) else {
                throw config.fail(key, "\(name.debugDescription) is not a token")
            }
            return id
        }
        parts.bos = try named("bos_token") ?? before
        parts.addBOS = try config?.bool("add_bos_token", default: before != nil) ?? (before != nil)
        var eos = [Int32]()
        if let id = try named("eos_token") { eos.append(id) }
        if let after { eos.append(after) }
        if let generationConfig, let value = generationConfig["eos_token_id"] {
            let values: [JSONValue]
            if case .array(let a) = value { values = a } else { values = [value] }
            for v in values {
                eos.append(Int32(try JSONObject.int(v, in: 0...maxVocabularySize - 1) { generationConfig.fail("eos_token_id", $0) }))
            }
        }
        parts.eos = eos
        parts.addEOS = try config?.bool("add_eos_token", default: after != nil) ?? (after != nil)
        for id in [parts.bos].compactMap({ $0 }) + eos where Int(id) >= parts.tokenBytes.count {
            throw .malformed(path: path, reason: "special token id \(id) is outside the vocabulary (\(parts.tokenBytes.count) ids)")
        }
    }

    /// The special token a post-processor puts before and after a single sequence.
    private func template(_ o: JSONObject?) throws(TokenizerError) -> (Int32?, Int32?) {
        guard let o else { return (nil, nil) }
        var before: Int32?, after: Int32?
        for p in try flatten(o, listKey: "processors") {
            switch try p.string("type") {
            case "ByteLevel": continue
            case "TemplateProcessing":
                let ids = try p.optionalObject("special_tokens")
                var seenSequence = false
                for (k, item) in try p.objects("single").enumerated() {
                    if item["Sequence"] != nil { seenSequence = true; continue }
                    let name = try item.object("SpecialToken").string("id")
                    guard let entry = try ids?.optionalObject(name) else {
                        throw p.fail("single[\(k)]", "\(name.debugDescription) is not in special_tokens")
                    }
                    let tokenIds = try entry.array("ids")
                    guard tokenIds.count == 1 else { throw unsupported("post_processor template token with \(tokenIds.count) ids") }
                    let id = Int32(try JSONObject.int(tokenIds[0], in: 0...maxVocabularySize - 1) { entry.fail("ids[0]", $0) })
                    if seenSequence {
                        guard after == nil else { throw unsupported("post_processor template with two tokens after the text") }
                        after = id
                    } else {
                        guard before == nil else { throw unsupported("post_processor template with two tokens before the text") }
                        before = id
                    }
                }
            case "RobertaProcessing", "BertProcessing":
                func id(_ key: String) throws(TokenizerError) -> Int32 {
                    let pair = try p.array(key)
                    guard pair.count == 2 else { throw p.fail(key, "expected [name, id]") }
                    return Int32(try JSONObject.int(pair[1], in: 0...maxVocabularySize - 1) { p.fail(key, $0) })
                }
                before = try id("cls")
                after = try id("sep")
            case let other: throw unsupported("post_processor \(other) (supported: TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel)")
            }
        }
        return (before, after)
    }
}
