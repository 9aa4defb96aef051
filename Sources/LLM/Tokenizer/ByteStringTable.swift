// A hash table from short byte strings to Int32 values, stored in flat arrays so that lookups by a
// (pointer, length) slice never allocate. Holds the BPE ranks and the encoder's piece cache.

struct ByteStringTable {
    private var bytes: [UInt8] = []        // all keys, back to back
    private var keyStart: [Int32] = []     // per entry: offset of its key in `bytes`
    private var keyLength: [Int32] = []
    private(set) var values: [Int32] = []
    private var slots: [Int32]             // entry index + 1, 0 = empty; power-of-two size
    private var mask: Int

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: 0, count: size)
        mask = size - 1
    }

    var count: Int { values.count }
    var byteCount: Int { bytes.count }

    @inline(__always)
    static func hash(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a
        for i in 0..<n { h = (h ^ UInt64(p[i])) &* 0x100_0000_01B3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    /// The value stored for the key `p[0..<n]`, or nil.
    @inline(__always)
    func lookup(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32? {
        var i = ByteStringTable.hash(p, n) & mask
        return slots.withUnsafeBufferPointer { slots in
            bytes.withUnsafeBufferPointer { bytes in
                while true {
                    let s = Int(slots[i])
                    if s == 0 { return nil }
                    let e = s - 1
                    if Int(keyLength[e]) == n {
                        let k = bytes.baseAddress! + Int(keyStart[e])
                        var same = true
                        for j in 0..<n where k[j] != p[j] { same = false; break }
                        if same { return values[e] }
                    }
                    i = (i + 1) & mask
                }
            }
        }
    }

    func lookup(_ key: [UInt8]) -> Int32? {
        key.withUnsafeBufferPointer { lookup($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
    }

    /// Inserts or replaces the value for `p[0..<n]`.
    mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, value: Int32) {
        if (values.count + 1) * 2 > slots.count { grow() }
        var i = ByteStringTable.hash(p, n) & mask
        while slots[i] != 0 {
            let e = Int(slots[i]) - 1
            if Int(keyLength[e]) == n && bytes[Int(keyStart[e])..<Int(keyStart[e]) + n].elementsEqual(UnsafeBufferPointer(start: p, count: n)) {
                values[e] = value
                return
            }
            i = (i + 1) & mask
        }
        keyStart.append(Int32(bytes.count))
        keyLength.append(Int32(n))
        bytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        values.append(value)
        slots[i] = Int32(values.count)
    }

    mutating func insert(_ key: [UInt8], value: Int32) {
        key.withUnsafeBufferPointer { insert($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count, value: value) }
    }

    /// The key of entry `e` (entries are numbered in insertion order).
    func key(at e: Int) -> ArraySlice<UInt8> { bytes[Int(keyStart[e])..<Int(keyStart[e] + keyLength[e])] }

    mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        keyStart.removeAll(keepingCapacity: true)
        keyLength.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i] = 0 }
    }

    private mutating func grow() {
        slots = [Int32](repeating: 0, count: slots.count * 2)
        mask = slots.count - 1
        bytes.withUnsafeBufferPointer { b in
            for e in 0..<values.count {
                var i = ByteStringTable.hash(b.baseAddress! + Int(keyStart[e]), Int(keyLength[e])) & mask
                while slots[i] != 0 { i = (i + 1) & mask }
                slots[i] = Int32(e + 1)
            }
        }
    }
}
