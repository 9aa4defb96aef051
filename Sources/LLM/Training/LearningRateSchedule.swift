// The learning rate at each training step: llm.c's linear warmup followed by one of four decay shapes
// (cosine as in llm.c and nanoGPT, linear, constant, or nanochat's warmup-stable-decay). A small validated
// value, so a run can store it beside its checkpoints and resume on exactly the same curve.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a schedule was rejected; each is one line.
public enum ScheduleError: Error, Equatable, CustomStringConvertible {
    case nonPositiveLearningRate(Double)
    case tooFewSteps(total: Int)
    case negativeWarmup(Int)
    case warmupExceedsTotal(warmup: Int, total: Int)
    case fractionOutOfRange(name: String, value: Double)

    public var description: String {
        switch self {
        case let .nonPositiveLearningRate(lr): "learning rate schedule: the maximum learning rate \(lr) must be positive"
        case let .tooFewSteps(total): "learning rate schedule: \(total) total steps; there must be at least 1"
        case let .negativeWarmup(warmup): "learning rate schedule: \(warmup) warmup steps; it cannot be negative"
        case let .warmupExceedsTotal(warmup, total):
            "learning rate schedule: \(warmup) warmup steps exceed the \(total) total steps"
        case let .fractionOutOfRange(name, value): "learning rate schedule: the \(name) \(value) is not in [0, 1]"
        }
    }
}

/// The learning rate for every update of a run of `totalSteps` updates, numbered from 0.
///
/// Steps `0..<warmupSteps` ramp up linearly as in llm.c: `maxLR · (step + 1) / warmupSteps`, so the first
/// update already has a small non-zero rate and the last warmup step reaches `maxLR`. The remaining steps
/// follow `kind`, from `maxLR` at step `warmupSteps` down to `maxLR · finalFraction` at the last step,
/// `totalSteps − 1`:
///
/// - `cosine`: llm.c's `min + 0.5·(1 + cos(π·r))·(max − min)`, where r goes from 0 to 1 over the decay.
///   (llm.c divides by `totalSteps − warmupSteps`, so its last update stays just above the minimum; here r
///   reaches 1 on the last update, which therefore runs at exactly the final rate.)
/// - `linear`: `max − r·(max − min)`.
/// - `constant`: `maxLR` throughout; `finalFraction` is ignored.
/// - `wsd` (warmup-stable-decay, as in nanochat): `maxLR` until the last `decayFraction` of the run, then
///   linear to the final rate. The decay starts at `decayStart`, which still runs at `maxLR`.
///
/// Steps after the last one keep the final rate; negative steps are treated as step 0.
public struct LearningRateSchedule: Codable, Sendable, Equatable {
    /// The shape after warmup.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case cosine, linear, constant, wsd
    }

    public let kind: Kind
    /// The peak rate, reached at the end of warmup.
    public let maxLR: Double
    /// Updates that ramp up linearly to `maxLR`; 0 starts at `maxLR`.
    public let warmupSteps: Int
    /// Updates in the whole run, warmup included.
    public let totalSteps: Int
    /// The last update's rate as a fraction of `maxLR` (unused by `constant`).
    public let finalFraction: Double
    /// For `wsd`: the fraction of `totalSteps`, at the end of the run, that decays (unused by the others).
    public let decayFraction: Double

    public init(kind: Kind = .cosine, maxLR: Double, warmupSteps: Int = 0, totalSteps: Int,
                finalFraction: Double = 0, decayFraction: Double = 0.2) throws(ScheduleError) {
        guard maxLR > 0, maxLR.isFinite else { throw .nonPositiveLearningRate(maxLR) }
        guard totalSteps >= 1 else { throw .tooFewSteps(total: totalSteps) }
        guard warmupSteps >= 0 else { throw .negativeWarmup(warmupSteps) }
        guard warmupSteps <= totalSteps else { throw .warmupExceedsTotal(warmup: warmupSteps, total: totalSteps) }
        guard (0...1).contains(finalFraction) else { throw .fractionOutOfRange(name: "final fraction", value: finalFraction) }
        guard (0...1).contains(decayFraction) else { throw .fractionOutOfRange(name: "decay fraction", value: decayFraction) }
        self.kind = kind
        self.maxLR = maxLR
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.finalFraction = finalFraction
        self.decayFraction = decayFraction
    }

    /// Decodes and validates, so a stored schedule cannot bypass the checks; `decayFraction` may be absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(kind: c.decode(Kind.self, forKey: .kind), maxLR: c.decode(Double.self, forKey: .maxLR),
                          warmupSteps: c.decode(Int.self, forKey: .warmupSteps),
                          totalSteps: c.decode(Int.self, forKey: .totalSteps),
                          finalFraction: c.decode(Double.self, forKey: .finalFraction),
                          decayFraction: c.decodeIfPresent(Double.self, forKey: .decayFraction) ?? 0.2)
        } catch let error as ScheduleError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    /// The final rate, `maxLR · finalFraction` (or `maxLR` for `constant`).
    public var minLR: Double { kind == .constant ? maxLR : maxLR * finalFraction }

    /// For `wsd`: the first step of the decay, `totalSteps − round(decayFraction · totalSteps)`, but not before
    /// the warmup ends. For the other shapes, the end of warmup.
    public var decayStart: Int {
        guard kind == .wsd else { return warmupSteps }
        // As a Double, Int.max steps round up to 2^63, which no Int holds: a decay that long is the whole run.
        let decay = (decayFraction * Double(totalSteps)).rounded()
        let decaySteps = decay >= Double(totalSteps) ? totalSteps : Int(decay)
        return max(warmupSteps, totalSteps - decaySteps)
    }

    /// The rate for update `step` (0 is the first update).
    public func learningRate(at step: Int) -> Double {
        let step = max(step, 0)
        if step < warmupSteps { return maxLR * Double(step + 1) / Double(warmupSteps) }
        let start = decayStart
        if kind == .constant || step < start { return maxLR }
        // r: 0 at the decay's first step, 1 at the last update (and after it).
        let span = totalSteps - 1 - start
        let r = span > 0 ? min(Double(step - start) / Double(span), 1) : 1
        let lo = minLR
        switch kind {
        case .cosine: return lo + 0.5 * (1 + cos(Double.pi * r)) * (maxLR - lo)
        case .linear, .wsd: return maxLR - r * (maxLR - lo)
        case .constant: return maxLR
        }
    }
}
