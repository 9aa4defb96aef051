// Range checks shared by the commands' `validate()`: each turns a value that would crash or exhaust memory
// into a one-line usage error naming the flag and the accepted range. Rules a library user would also hit
// live in the library (`TrainingConfig.validate()`, `ConversationLoader`, `SyntheticConversations`); these
// call them and convert their errors.
import ArgumentParser
import LLM

/// The most worker threads a command accepts. Each thread gets its own stack and scratch buffers, so a
/// mistyped count (100000) would exhaust memory before doing any work; 1024 is well above any machine's cores.
let maxThreads = 1024

/// `--threads N` (nil: all cores) must be in 1...maxThreads.
func checkThreads(_ threads: Int?) throws {
    if let threads, !(1...maxThreads).contains(threads) {
        throw ValidationError("--threads \(threads) must be between 1 and \(maxThreads) (each thread takes its own memory; more than the cores only slows things down)")
    }
}

/// An integer flag must lie in `range`; the message names the flag and the range.
func checkRange(_ value: Int, _ flag: String, _ range: ClosedRange<Int>, _ why: String = "") throws {
    guard range.contains(value) else {
        let bounds = range.upperBound == Int.max ? "at least \(range.lowerBound)" : "between \(range.lowerBound) and \(range.upperBound)"
        throw ValidationError("\(flag) \(value) must be \(bounds)\(why.isEmpty ? "" : " (\(why))")")
    }
}

/// Runs a library check, turning its error into a usage error (one line, the library's message without its
/// "invalid training configuration" prefix: in a usage error the flag it names says enough).
func asValidation(_ check: () throws -> Void) throws {
    do { try check() } catch TrainingError.invalidConfig(let why) {
        throw ValidationError(why)
    } catch DataError.invalidArgument(let why) {
        throw ValidationError(why)
    } catch let e as TrainingError {
        throw ValidationError(e.description)
    } catch let e as DataError {
        throw ValidationError(e.description)
    }
}
