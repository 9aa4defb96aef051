// Finding invalid UTF-8 in input files, so errors can name the byte offset.

/// The byte offset of the first invalid UTF-8 sequence, or nil if `bytes` is valid UTF-8.
public func firstInvalidUTF8Offset(_ bytes: some Collection<UInt8>) -> Int? {
    var decoder = UTF8()
    var iterator = bytes.makeIterator()
    var offset = 0
    while true {
        // Track the offset by re-encoding each scalar's length; an error is reported at the scalar's start.
        switch decoder.decode(&iterator) {
        case .scalarValue(let s): offset += UTF8.width(s)
        case .emptyInput: return nil
        case .error: return offset
        }
    }
}
