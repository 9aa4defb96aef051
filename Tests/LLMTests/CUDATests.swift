// The CUDA backend as far as it can be checked without a GPU: every kernel compiles with NVRTC for the
// architectures we target, in both precisions, and defines the entry points the backend looks up (when
// libnvrtc can be found); without a driver, opening a device fails with a message that names the paths
// searched; the library search order; the kernel cache; and the cuBLASLt bindings resolve (when the library
// is there). Running the kernels needs a GPU.

import Foundation
import Testing
@testable import LLM

private enum Available {
    static let nvrtc: NVRTC? = try? NVRTC.load()
    static let cublasLt: CUBLASLt? = try? CUBLASLt.load()
    static let driver: Bool = (try? DynamicLibrary.open(
        LibrarySearch.candidates(names: ["libcuda.so.1"], override: "LLM_CUDA_DRIVER_PATH", wheelFolders: []),
        what: "CUDA driver", files: "libcuda.so.1", hint: "")) != nil
}

@Suite struct CUDATests {
    @Test(.enabled(if: Available.nvrtc != nil, "libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12, or set LLM_NVRTC_PATH)"),
          arguments: ["sm_80", "sm_90"], CUDAPrecision.allCases)
    func everyKernelCompiles(architecture: String, precision: CUDAPrecision) throws {
        let nvrtc = try #require(Available.nvrtc)
        let outputs = try CUDAKernels.compileAll(nvrtc: nvrtc, architecture: architecture, precision: precision)
        for source in CUDAKernels.sources {
            let output = try #require(outputs[source.file])
            #expect(CUDAKernels.entryPoints(inPTX: output.ptx).sorted() == source.entryPoints.sorted(),
                    "\(source.file) with NVRTC \(nvrtc.versionString)")
            #expect((output.cubin?.count ?? 0) > 0, "\(source.file): no CUBIN for \(architecture)")
        }
    }

    @Test func everySourceFileIsListed() throws {
        let folder = try CUDAKernels.folder()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".cu") }
        #expect(files.sorted() == CUDAKernels.sources.map(\.file).sorted())
        let names = CUDAKernels.sources.flatMap(\.entryPoints)
        #expect(Set(names).count == names.count, "entry point names are unique across files")
    }

    @Test(.enabled(if: Available.nvrtc != nil, "libnvrtc not found"))
    func compileErrorCarriesTheLog() throws {
        let nvrtc = try #require(Available.nvrtc)
        #expect {
            _ = try nvrtc.compile(source: "extern \"C\" __global__ void k() { undeclared(); }", name: "broken.cu",
                                  options: ["--gpu-architecture=sm_80"])
        } throws: { error in
            guard let error = error as? CUDAError, case .compilation(let file, _, let log) = error else { return false }
            return file == "broken.cu" && log.contains("undeclared") && error.description.hasPrefix("NVRTC could not compile broken.cu")
        }
    }

    @Test(.enabled(if: !Available.driver, "a CUDA driver is installed"))
    func openWithoutDriverSaysSo() {
        #expect {
            _ = try CUDADevice.open()
        } throws: { error in
            guard let error = error as? CUDAError, case .libraryNotFound(let what, _, let searched, _) = error else {
                return false
            }
            let message = error.description
            return what == "CUDA driver" && searched.contains("/usr/local/cuda/lib64/libcuda.so.1")
                && message.hasPrefix("no CUDA driver: libcuda.so.1 not found (searched: ")
                && message.hasSuffix("; install the NVIDIA driver or use --device cpu")
                && !message.contains("\n")
        }
    }

    @Test func missingLibraryListsEveryPathTried() throws {
        try withTemporaryDirectory { dir in
            let notALibrary = dir + "/junk/libmissing.so.7"
            try FileManager.default.createDirectory(atPath: dir + "/junk", withIntermediateDirectories: true)
            try writeBytes(Array("not an ELF file".utf8), notALibrary)
            let candidates = [dir + "/a/libmissing.so.7", notALibrary, "libmissing.so.7"]
            #expect {
                _ = try DynamicLibrary.open(candidates, what: "test library", files: "libmissing.so.7", hint: "install it")
            } throws: { error in
                guard let error = error as? CUDAError, case .libraryNotFound(_, _, let searched, _) = error else {
                    return false
                }
                let message = error.description
                return searched.count == 3 && message.hasPrefix("no test library: libmissing.so.7 not found (searched: ")
                    && message.contains(dir + "/a/libmissing.so.7, ")
                    && message.contains(notALibrary + " (")  // it exists, so dlopen's reason follows
                    && message.contains("libmissing.so.7 via the system loader")
                    && message.hasSuffix("; install it")
            }
        }
    }

    @Test func searchOrder() throws {
        try withTemporaryDirectory { dir in
            let site = dir + "/venv/lib/python3.11/site-packages"
            try FileManager.default.createDirectory(atPath: site, withIntermediateDirectories: true)
            let env = ["LLM_NVRTC_PATH": "/opt/mine/libnvrtc.so.12", "LD_LIBRARY_PATH": "/ld/one:/ld/two",
                       "VIRTUAL_ENV": dir + "/venv", "HOME": dir + "/home"]
            let paths = LibrarySearch.candidates(names: ["libnvrtc.so.12"], override: "LLM_NVRTC_PATH",
                                                 wheelFolders: ["nvidia/cuda_nvrtc/lib"], environment: env)
            #expect(paths.first == "/opt/mine/libnvrtc.so.12")
            #expect(paths.last == "libnvrtc.so.12")
            let ld = try #require(paths.firstIndex(of: "/ld/one/libnvrtc.so.12"))
            let system = try #require(paths.firstIndex(of: "/usr/local/cuda/lib64/libnvrtc.so.12"))
            let wheel = try #require(paths.firstIndex(of: site + "/nvidia/cuda_nvrtc/lib/libnvrtc.so.12"))
            #expect(ld < system && system < wheel)
            #expect(Set(paths).count == paths.count)
        }
        #expect(NVRTC.fileNames(preferredMajor: nil) == ["libnvrtc.so.13", "libnvrtc.so.12"])
        #expect(NVRTC.fileNames(preferredMajor: 12) == ["libnvrtc.so.12", "libnvrtc.so.13"])
    }

    @Test func kernelCacheWritesWholeEntriesAndReturnsThem() throws {
        try withTemporaryDirectory { dir in
            let cache = KernelCache(directory: dir + "/cache")
            let key = KernelCache.key(["source", "--gpu-architecture=sm_90", "nvrtc 12.9"])
            #expect(key.count == 64)
            #expect(key != KernelCache.key(["source", "--gpu-architecture=sm_80", "nvrtc 12.9"]))
            #expect(KernelCache.key(["ab", "c"]) != KernelCache.key(["a", "bc"]))
            #expect(cache.load(key: key) == nil)

            var produced = 0
            let image: [UInt8] = (0..<1000).map { UInt8($0 % 251) }
            let first = try cache.bytes(key: key) { () throws(CUDAError) -> [UInt8] in
                produced += 1
                return image
            }
            let second = try cache.bytes(key: key) { () throws(CUDAError) -> [UInt8] in
                produced += 1
                return []
            }
            #expect(first == image && second == image && produced == 1)
            // Only the entry itself is left: the temporary file was renamed into place.
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache") == [key + ".bin"])

            try cache.store([1, 2, 3], key: key)  // replacing an entry is atomic too
            #expect(cache.load(key: key) == [1, 2, 3])
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/cache").count == 1)
        }
    }

    @Test func cublasLtHeuristicResultMatchesTheCLayout() {
        #expect(MemoryLayout<CUBLASLt.HeuristicResult>.size == 96)
        #expect(MemoryLayout<CUBLASLt.HeuristicResult>.offset(of: \.workspaceSize) == 64)
        #expect(MemoryLayout<CUBLASLt.HeuristicResult>.offset(of: \.state) == 72)
        #expect(MemoryLayout<CUBLASLt.HeuristicResult>.offset(of: \.wavesCount) == 76)
    }

    @Test(.enabled(if: Available.cublasLt != nil, "libcublasLt not found"))
    func cublasLtBindingsResolve() throws {
        let cublas = try #require(Available.cublasLt)
        #expect(cublas.version >= 120000)
    }
}

@Suite struct GPUPeakTests {
    @Test(arguments: [
        ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756), ("NVIDIA H100 NVL", 835), ("NVIDIA H200", 989),
        ("NVIDIA GH200 480GB", 989), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA A100-PCIE-40GB", 312),
        ("NVIDIA A10", 125), ("NVIDIA L4", 121), ("NVIDIA L40S", 362),
    ])
    func knownGPUs(name: String, teraflops: Double) {
        #expect(GPUPeak.bf16FlopsPerSecond(gpuName: name) == teraflops * 1e12)
    }

    @Test func unknownGPUsHaveNoPeak() {
        for name in ["NVIDIA L40", "NVIDIA GeForce RTX 4090", "Tesla T4", ""] {
            #expect(GPUPeak.bf16FlopsPerSecond(gpuName: name) == nil, "\(name)")
            #expect(GPUPeak.describeUtilization(flopsPerSecond: 1e14, gpuName: name) == "unknown peak")
        }
        #expect(GPUPeak.describeUtilization(flopsPerSecond: 494.5e12, gpuName: "NVIDIA H100 80GB HBM3") == "50.0% MFU")
    }
}
