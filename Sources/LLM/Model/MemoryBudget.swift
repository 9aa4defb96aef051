// The one memory check: before any big allocation (weights, a training model's arenas, generation caches), the
// bytes it needs are computed with overflow checks and compared with the machine's memory, so an absurd shape
// from a file or a flag is a one-line error instead of an allocation abort or the OOM killer.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public enum MemoryBudget {
    /// The memory this process may use: the machine's physical memory (sysconf(_SC_PHYS_PAGES) × page size), or
    /// the cgroup's limit (cgroup v2 memory.max) when that is smaller. Read once.
    public static let availableBytes: Int = {
        var bytes = Int(ProcessInfo.processInfo.physicalMemory)
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        if pages > 0, pageSize > 0 {
            let (p, overflow) = Int(pages).multipliedReportingOverflow(by: Int(pageSize))
            if !overflow { bytes = p }
        }
        if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
           let limit = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), limit > 0 {
            bytes = min(bytes, limit)
        }
        return bytes > 0 ? bytes : Int.max
    }()

    /// Throws `ModelError.tooLarge` when `bytes` (nil: the computation overflowed) exceeds `available`.
    public static func check(_ bytes: Int?, for what: String, available: Int = availableBytes) throws(ModelError) {
        guard let bytes, bytes <= available else {
            throw .tooLarge(what: what, bytes: bytes ?? Int.max, available: available)
        }
    }

    /// Bytes for `count` Floats (nil on overflow).
    static func floatBytes(_ count: Int?) -> Int? { multiply(count, 4) }

    /// Overflow-checked arithmetic on optional sizes: nil stands for "overflowed" and stays nil.
    static func multiply(_ values: Int?...) -> Int? {
        var out = 1
        for v in values {
            guard let v, v >= 0 else { return nil }
            let (p, overflow) = out.multipliedReportingOverflow(by: v)
            if overflow { return nil }
            out = p
        }
        return out
    }

    static func add(_ values: Int?...) -> Int? {
        var out = 0
        for v in values {
            guard let v, v >= 0 else { return nil }
            let (s, overflow) = out.addingReportingOverflow(v)
            if overflow { return nil }
            out = s
        }
        return out
    }

    /// A byte count for people: "38.7 GB" (decimal units), "512 MB".
    static func format(_ bytes: Int) -> String {
        if bytes == Int.max { return "more than 9.2 EB" }
        let b = Double(bytes)
        if b >= 1e12 { return String(format: "%.1f TB", b / 1e12) }
        if b >= 1e9 { return String(format: "%.1f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.0f MB", b / 1e6) }
        return String(format: "%.0f KB", b / 1e3)
    }

    // MARK: - What each part of the engine needs

    /// Floats in a model's parameter arena; nil when the shape is not a valid config (the layout's own
    /// arithmetic is only safe on a validated config, whose sizes are bounded).
    static func parameterCount(_ config: ModelConfig) -> Int? {
        guard (try? config.validate()) != nil else { return nil }
        return ParameterLayout(config: config).totalCount
    }

    /// Bytes of a model's weights.
    public static func weightBytes(config: ModelConfig) -> Int? { floatBytes(parameterCount(config)) }

    /// Throws when training `config` at (batch, seq) cannot fit: the weights, gradients, both AdamW moments and
    /// the activations (`Transformer.requiredBytes`). Call it before creating the weights of a new model too.
    public static func checkTraining(config c: ModelConfig, batch: Int, seq: Int,
                                     parallel: ParallelFor = .allCores, parameters: Int? = nil,
                                     trainable: Int? = nil) throws(ModelError) {
        let bytes = if let parameters {
            Transformer.requiredBytes(config: c, parameters: parameters, trainable: trainable ?? parameters,
                                      batch: batch, seq: seq, parallel: parallel)
        } else {
            Transformer.requiredBytes(config: c, batch: batch, seq: seq, parallel: parallel)
        }
        try check(bytes,
                  for: "training a \(c.numLayers)-layer, \(c.channels)-channel model at batch \(batch) × seq \(seq)")
    }

    /// Throws when the weights of `config` cannot fit, before they are allocated.
    public static func checkWeights(config: ModelConfig, extraBytes: Int = 0, what: String = "the model's weights") throws(ModelError) {
        try check(add(weightBytes(config: config), extraBytes), for: what)
    }
}
