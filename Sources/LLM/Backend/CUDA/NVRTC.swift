// NVRTC, CUDA's run-time compiler, loaded at run time: the kernels ship as CUDA C source and are compiled for
// the exact GPU found (`--gpu-architecture=sm_XX`), so nothing CUDA is needed to build the package.
import Foundation

/// A loaded libnvrtc and the compiler calls the backend makes.
public final class NVRTC: @unchecked Sendable {
    public let library: DynamicLibrary
    public let version: (major: Int, minor: Int)
    private let api: API

    /// "12.9", for messages and the kernel cache key.
    public var versionString: String { "\(version.major).\(version.minor)" }

    private struct API {
        typealias Program = OpaquePointer
        typealias Strings = UnsafePointer<UnsafePointer<CChar>?>?
        let nvrtcVersion: @convention(c) (UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<Int32>?) -> Int32
        let nvrtcGetErrorString: @convention(c) (Int32) -> UnsafePointer<CChar>?
        let nvrtcCreateProgram: @convention(c) (UnsafeMutablePointer<Program?>?, UnsafePointer<CChar>?,
                                                UnsafePointer<CChar>?, Int32, Strings, Strings) -> Int32
        let nvrtcDestroyProgram: @convention(c) (UnsafeMutablePointer<Program?>?) -> Int32
        let nvrtcCompileProgram: @convention(c) (Program?, Int32, Strings) -> Int32
        let nvrtcGetProgramLogSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
        let nvrtcGetProgramLog: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
        let nvrtcGetPTXSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
        let nvrtcGetPTX: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
        let nvrtcGetCUBINSize: @convention(c) (Program?, UnsafeMutablePointer<Int>?) -> Int32
        let nvrtcGetCUBIN: @convention(c) (Program?, UnsafeMutablePointer<CChar>?) -> Int32
        let nvrtcGetNumSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32
        let nvrtcGetSupportedArchs: @convention(c) (UnsafeMutablePointer<Int32>?) -> Int32

        init(_ lib: DynamicLibrary) throws(CUDAError) {
            nvrtcVersion = try lib.function("nvrtcVersion")
            nvrtcGetErrorString = try lib.function("nvrtcGetErrorString")
            nvrtcCreateProgram = try lib.function("nvrtcCreateProgram")
            nvrtcDestroyProgram = try lib.function("nvrtcDestroyProgram")
            nvrtcCompileProgram = try lib.function("nvrtcCompileProgram")
            nvrtcGetProgramLogSize = try lib.function("nvrtcGetProgramLogSize")
            nvrtcGetProgramLog = try lib.function("nvrtcGetProgramLog")
            nvrtcGetPTXSize = try lib.function("nvrtcGetPTXSize")
            nvrtcGetPTX = try lib.function("nvrtcGetPTX")
            nvrtcGetCUBINSize = try lib.function("nvrtcGetCUBINSize")
            nvrtcGetCUBIN = try lib.function("nvrtcGetCUBIN")
            nvrtcGetNumSupportedArchs = try lib.function("nvrtcGetNumSupportedArchs")
            nvrtcGetSupportedArchs = try lib.function("nvrtcGetSupportedArchs")
        }
    }

    /// The file names tried (`LibrarySearch.versionedNames`).
    static func fileNames(preferredMajor: Int?) -> [String] {
        LibrarySearch.versionedNames("nvrtc", preferredMajor: preferredMajor)
    }

    /// Every path `load` tries: $LLM_NVRTC_PATH (a file or a folder), LD_LIBRARY_PATH, the CUDA toolkit and
    /// system folders, pip's nvidia/cuda_nvrtc/lib (CUDA 12 wheels) and nvidia/cu13/lib (CUDA 13 wheels).
    public static func searchPaths(preferredMajor: Int? = nil) -> [String] {
        LibrarySearch.candidates(names: fileNames(preferredMajor: preferredMajor), override: "LLM_NVRTC_PATH",
                                 wheelFolders: ["nvidia/cuda_nvrtc/lib", "nvidia/cu13/lib", "nvidia/cu12/lib"])
    }

    /// Loads the first libnvrtc found on `searchPaths`.
    public static func load(preferredMajor: Int? = nil) throws(CUDAError) -> NVRTC {
        let names = fileNames(preferredMajor: preferredMajor).joined(separator: " or ")
        let lib = try DynamicLibrary.open(
            searchPaths(preferredMajor: preferredMajor), what: "NVRTC", files: names,
            hint: "install the CUDA toolkit or `pip install nvidia-cuda-nvrtc-cu12`, or set LLM_NVRTC_PATH to libnvrtc")
        return try NVRTC(library: lib)
    }

    /// Loads the NVRTC that suits `device`'s driver: the same CUDA major version first.
    public static func load(for device: CUDADevice) throws(CUDAError) -> NVRTC {
        try load(preferredMajor: device.driver.version / 1000)
    }

    init(library: DynamicLibrary) throws(CUDAError) {
        self.library = library
        api = try API(library)
        var major: Int32 = 0, minor: Int32 = 0
        _ = api.nvrtcVersion(&major, &minor)
        version = (Int(major), Int(minor))
    }

    /// The GPU architectures this NVRTC compiles for, as numbers (80 for sm_80).
    public var supportedArchitectures: [Int] {
        var n: Int32 = 0
        guard api.nvrtcGetNumSupportedArchs(&n) == 0, n > 0 else { return [] }
        var archs = [Int32](repeating: 0, count: Int(n))
        guard api.nvrtcGetSupportedArchs(&archs) == 0 else { return [] }
        return archs.map(Int.init)
    }

    /// What a compilation produced: PTX text always; a CUBIN when the architecture was a real one (sm_XX).
    public struct Output: Sendable {
        public let ptx: String
        public let cubin: [UInt8]?
        /// Warnings, if any.
        public let log: String
    }

    /// Compiles `source` (named `name` in messages) with `headers` available to `#include "name"`.
    /// Throws `CUDAError.compilation` with NVRTC's log when the source does not compile.
    public func compile(source: String, name: String, headers: [(name: String, source: String)] = [],
                        options: [String]) throws(CUDAError) -> Output {
        var program: OpaquePointer?
        let created = withCStrings(headers.map(\.source)) { sources in
            withCStrings(headers.map(\.name)) { names in
                api.nvrtcCreateProgram(&program, source, name, Int32(headers.count), sources, names)
            }
        }
        try check(created, "nvrtcCreateProgram(\(name))")
        defer { _ = api.nvrtcDestroyProgram(&program) }
        let compiled = withCStrings(options) { api.nvrtcCompileProgram(program, Int32(options.count), $0) }
        let log = read(program, size: api.nvrtcGetProgramLogSize, get: api.nvrtcGetProgramLog)
            .map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } ?? ""
        if compiled != 0 {
            throw .compilation(file: name, options: options, log: log.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        guard let ptx = read(program, size: api.nvrtcGetPTXSize, get: api.nvrtcGetPTX) else {
            throw .nvrtc(call: "nvrtcGetPTX(\(name))", code: -1, message: "no PTX")
        }
        let cubin = read(program, size: api.nvrtcGetCUBINSize, get: api.nvrtcGetCUBIN).flatMap { $0.isEmpty ? nil : $0 }
        return Output(ptx: String(decoding: ptx.prefix { $0 != 0 }, as: UTF8.self), cubin: cubin, log: log)
    }

    private func check(_ result: Int32, _ call: String) throws(CUDAError) {
        guard result != 0 else { return }
        let message = api.nvrtcGetErrorString(result).map { String(cString: $0) } ?? "unknown error"
        throw .nvrtc(call: call, code: result, message: message)
    }

    /// One of the program's outputs (size call, then copy call), or nil if NVRTC has none.
    private func read(_ program: OpaquePointer?, size: (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32,
                      get: (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32) -> [UInt8]? {
        var n = 0
        guard size(program, &n) == 0 else { return nil }
        if n == 0 { return [] }
        var bytes = [CChar](repeating: 0, count: n)
        guard get(program, &bytes) == 0 else { return nil }
        return bytes.map { UInt8(bitPattern: $0) }
    }
}

/// Calls `body` with a C array of C strings copied from `strings`, valid only during the call.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    let copies = strings.map { UnsafePointer(strdup($0)) }
    defer { copies.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
    return copies.withUnsafeBufferPointer { body($0.baseAddress) }
}
