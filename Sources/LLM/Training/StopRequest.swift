// A graceful stop for long jobs: the first SIGINT, SIGTERM or SIGHUP asks the job to finish what it is doing
// (a training step and its checkpoint) and exit cleanly; a second one exits at once.
import Dispatch
import Foundation

/// Turns the first interrupt signal into a request the job polls (`isRequested`), and the second into an
/// immediate exit (status 128 + the signal). Handlers run on a Dispatch queue, never in signal context.
public final class StopRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var sources = [DispatchSourceSignal]()

    /// What the first signal prints, after the signal's name (on standard error).
    private let message: String

    public init(message: String) { self.message = message }

    /// Whether a stop was asked for.
    public var isRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }

    /// Catches SIGINT, SIGTERM and SIGHUP from now on (their default action, dying, is switched off).
    public func install() {
        for (signo, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { [self] in
                lock.lock()
                let second = requested
                requested = true
                lock.unlock()
                if second {
                    FileHandle.standardError.write(Data("\n\(name) again: exiting now\n".utf8))
                    exit(128 + signo)
                }
                FileHandle.standardError.write(Data("\n\(name): \(message) (send it again to exit at once)\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
