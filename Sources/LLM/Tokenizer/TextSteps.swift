// The text rewriting a tokenizer does before BPE: Hugging Face's normalizers (Replace, Prepend, NFC) and the
// rewriting half of its pre-tokenizers (Metaspace's "▁" for spaces and prefix, ByteLevel's prefix space), as
// steps over UTF-8 bytes.
import Foundation

enum TextStep: Sendable, Equatable {
    /// Every occurrence of `from` becomes `to` (Replace with a string pattern; Metaspace's spaces).
    case replace(from: [UInt8], to: [UInt8])
    /// Non-empty text gets `prefix` in front (the Prepend normalizer).
    case prepend([UInt8])
    /// Text that does not start with `prefix` gets it, when `firstOnly` only at the start of the input
    /// (Metaspace's prepend_scheme always/first, ByteLevel's add_prefix_space).
    case prefixUnlessPresent([UInt8], firstOnly: Bool)
    /// Unicode canonical composition.
    case nfc
}

extension [TextStep] {
    /// `text` after every step in order. `atStart`: the text begins at offset 0 of the input.
    func apply(to text: UnsafeBufferPointer<UInt8>, atStart: Bool) -> [UInt8] {
        var bytes = [UInt8](text)
        for step in self {
            switch step {
            case let .replace(from, to): bytes = replacingAll(from, with: to, in: bytes)
            case let .prepend(prefix): if !bytes.isEmpty { bytes.insert(contentsOf: prefix, at: 0) }
            case let .prefixUnlessPresent(prefix, firstOnly):
                if !bytes.starts(with: prefix) && (atStart || !firstOnly) { bytes.insert(contentsOf: prefix, at: 0) }
            case .nfc:
                // Scalars below U+0300 (lead bytes below 0xCC) are in NFC and never combine with what precedes.
                if bytes.contains(where: { $0 >= 0xCC }) {
                    bytes = [UInt8](String(decoding: bytes, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
                }
            }
        }
        return bytes
    }
}

func replacingAll(_ from: [UInt8], with to: [UInt8], in bytes: [UInt8]) -> [UInt8] {
    guard !from.isEmpty, bytes.count >= from.count else { return bytes }
    var out = [UInt8]()
    out.reserveCapacity(bytes.count + bytes.count / 2)
    var i = 0
    let first = from[0]
    while i < bytes.count {
        if bytes[i] == first && i + from.count <= bytes.count && bytes[i..<i + from.count].elementsEqual(from) {
            out.append(contentsOf: to)
            i += from.count
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return out
}
