// llm-fuzz: the fuzz harnesses (LLM's FuzzHarness, LLMServer's ServerFuzzHarnesses) as one program.
//
// Built normally it replays files: `llm-fuzz TARGET FILE|FOLDER...` runs the target's parser on each file and
// prints what it made of it (a crash reproduces as a crash); `llm-fuzz --list` prints each target and its
// largest input; `llm-fuzz --write-seeds DIR` writes the binary seed files. Built for libFuzzer
// (scripts/fuzz.sh: `-sanitize=fuzzer,address -D LLM_FUZZING`), libFuzzer's main drives the target that
// LLM_FUZZ_TARGET names, and also replays files given as arguments.
import Foundation
import LLM
import LLMServer

let harnesses = FuzzHarness.all + ServerFuzzHarnesses.all

func harness(named name: String?) -> FuzzHarness? { harnesses.first { $0.name == name } }

func targetList() -> String { harnesses.map { "\($0.name) \($0.maxLength)" }.joined(separator: "\n") }

#if LLM_FUZZING
nonisolated(unsafe) var selected: FuzzHarness?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    let name = ProcessInfo.processInfo.environment["LLM_FUZZ_TARGET"]
    if name == "list" {
        print(targetList())
        exit(0)
    }
    guard let found = harness(named: name) else {
        FileHandle.standardError.write(Data("llm-fuzz: set LLM_FUZZ_TARGET to one of: \(harnesses.map(\.name).joined(separator: ", ")) (or list)\n".utf8))
        exit(2)
    }
    selected = found
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    selected!.run(data)
    return 0
}

public typealias CArguments = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?

@_silgen_name("LLVMFuzzerRunDriver")
func fuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<CArguments>,
                     _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

/// SwiftPM links an executable's entry point as `<module>_main` and defines `main` as that (so that tests can
/// link the module), which leaves libFuzzer's own `main` out: this one starts libFuzzer's driver as it would.
@_cdecl("llm_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: CArguments) -> Int32 {
    var (argc, argv) = (argc, argv)
    return fuzzerRunDriver(&argc, &argv) { fuzzerTestOneInput($0, $1) }
}
#else
@main
struct LLMFuzz {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        if args == ["--list"] {
            print(targetList())
            return
        }
        if args.count == 2, args[0] == "--write-seeds" {
            try FuzzHarness.writeSeeds(to: args[1])
            return
        }
        guard args.count >= 2, let target = harness(named: args[0]) else {
            let usage = """
                usage: llm-fuzz TARGET FILE|FOLDER...   run TARGET's parser on each file
                       llm-fuzz --list                  the targets and their largest inputs
                       llm-fuzz --write-seeds DIR       write the binary seed files under DIR/TARGET/
                targets: \(harnesses.map(\.name).joined(separator: ", "))

                """
            FileHandle.standardError.write(Data(usage.utf8))
            exit(2)
        }
        for path in args.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("llm-fuzz: \(path): no such file\n".utf8))
                exit(1)
            }
            let files = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { (path as NSString).appendingPathComponent($0) }
                : [path]
            for file in files {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                if let error = target.run(data) { print("\(file): refused: \(error)") } else { print("\(file): accepted") }
            }
        }
    }
}
#endif
