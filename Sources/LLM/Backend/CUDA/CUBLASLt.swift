// cuBLASLt (libcublasLt.so.13 or .12) loaded at run time, for the model's matmuls on the GPU: bfloat16 or
// float inputs with float accumulation, the bias folded into the epilogue, and accumulation into the output
// (beta = 1) for the backward products, which add into gradients as the CPU kernels do.
//
// cuBLASLt is column-major; the model's tensors are row-major with weights stored (out, in). A row-major
// (R,C) matrix is a column-major C×R one, so each product below is written for the transposes.
import Foundation

/// A loaded libcublasLt and its matmul API.
public final class CUBLASLt: @unchecked Sendable {
    public let library: DynamicLibrary
    let api: API

    struct API {
        typealias Handle = OpaquePointer
        let cublasLtCreate: @convention(c) (UnsafeMutablePointer<Handle?>?) -> Int32
        let cublasLtDestroy: @convention(c) (Handle?) -> Int32
        let cublasLtGetVersion: @convention(c) () -> Int
        let cublasLtGetStatusString: @convention(c) (Int32) -> UnsafePointer<CChar>?
        let cublasLtMatmulDescCreate: @convention(c) (UnsafeMutablePointer<Handle?>?, Int32, Int32) -> Int32
        let cublasLtMatmulDescDestroy: @convention(c) (Handle?) -> Int32
        let cublasLtMatmulDescSetAttribute: @convention(c) (Handle?, Int32, UnsafeRawPointer?, Int) -> Int32
        let cublasLtMatrixLayoutCreate: @convention(c) (UnsafeMutablePointer<Handle?>?, Int32, UInt64, UInt64, Int64)
            -> Int32
        let cublasLtMatrixLayoutDestroy: @convention(c) (Handle?) -> Int32
        let cublasLtMatmulPreferenceCreate: @convention(c) (UnsafeMutablePointer<Handle?>?) -> Int32
        let cublasLtMatmulPreferenceDestroy: @convention(c) (Handle?) -> Int32
        let cublasLtMatmulPreferenceSetAttribute: @convention(c) (Handle?, Int32, UnsafeRawPointer?, Int) -> Int32
        let cublasLtMatmulAlgoGetHeuristic: @convention(c) (Handle?, Handle?, Handle?, Handle?, Handle?, Handle?,
                                                            Handle?, Int32, UnsafeMutableRawPointer?,
                                                            UnsafeMutablePointer<Int32>?) -> Int32
        let cublasLtMatmul: @convention(c) (Handle?, Handle?, UnsafeRawPointer?, UnsafeRawPointer?, Handle?,
                                            UnsafeRawPointer?, Handle?, UnsafeRawPointer?, UnsafeRawPointer?, Handle?,
                                            UnsafeMutableRawPointer?, Handle?, UnsafeRawPointer?,
                                            UnsafeMutableRawPointer?, Int, OpaquePointer?) -> Int32

        init(_ lib: DynamicLibrary) throws(CUDAError) {
            cublasLtCreate = try lib.function("cublasLtCreate")
            cublasLtDestroy = try lib.function("cublasLtDestroy")
            cublasLtGetVersion = try lib.function("cublasLtGetVersion")
            cublasLtGetStatusString = try lib.function("cublasLtGetStatusString")
            cublasLtMatmulDescCreate = try lib.function("cublasLtMatmulDescCreate")
            cublasLtMatmulDescDestroy = try lib.function("cublasLtMatmulDescDestroy")
            cublasLtMatmulDescSetAttribute = try lib.function("cublasLtMatmulDescSetAttribute")
            cublasLtMatrixLayoutCreate = try lib.function("cublasLtMatrixLayoutCreate")
            cublasLtMatrixLayoutDestroy = try lib.function("cublasLtMatrixLayoutDestroy")
            cublasLtMatmulPreferenceCreate = try lib.function("cublasLtMatmulPreferenceCreate")
            cublasLtMatmulPreferenceDestroy = try lib.function("cublasLtMatmulPreferenceDestroy")
            cublasLtMatmulPreferenceSetAttribute = try lib.function("cublasLtMatmulPreferenceSetAttribute")
            cublasLtMatmulAlgoGetHeuristic = try lib.function("cublasLtMatmulAlgoGetHeuristic")
            cublasLtMatmul = try lib.function("cublasLtMatmul")
        }
    }

    /// cublasLtMatmulHeuristicResult_t: an algorithm (64 opaque bytes), its workspace size, status, waves and
    /// four reserved ints; 96 bytes, laid out as the C struct.
    struct HeuristicResult {
        var algo: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        var workspaceSize: Int = 0
        var state: Int32 = 0
        var wavesCount: Float = 0
        var reserved: (Int32, Int32, Int32, Int32) = (0, 0, 0, 0)
    }

    /// The constants of cublasLt.h, cublas_api.h and library_types.h the bindings use.
    enum Constant {
        static let computeFloat: Int32 = 68          // CUBLAS_COMPUTE_32F
        static let computeFloatFastTF32: Int32 = 77  // CUBLAS_COMPUTE_32F_FAST_TF32
        static let float: Int32 = 0                  // CUDA_R_32F
        static let bfloat16: Int32 = 14              // CUDA_R_16BF
        static let opN: Int32 = 0, opT: Int32 = 1    // CUBLAS_OP_N, CUBLAS_OP_T
        static let descTransA: Int32 = 3, descTransB: Int32 = 4, descEpilogue: Int32 = 7
        static let descBiasPointer: Int32 = 8, descBiasDataType: Int32 = 26
        static let epilogueDefault: UInt32 = 1, epilogueBias: UInt32 = 4
        static let prefMaxWorkspaceBytes: Int32 = 1
    }

    /// The file names tried (`LibrarySearch.versionedNames`).
    static func fileNames(preferredMajor: Int?) -> [String] {
        LibrarySearch.versionedNames("cublasLt", preferredMajor: preferredMajor)
    }

    /// Every path `load` tries: $LLM_CUBLASLT_PATH, LD_LIBRARY_PATH, system folders, pip's nvidia/cublas/lib
    /// (CUDA 12 wheels) and nvidia/cu13/lib (CUDA 13 wheels).
    public static func searchPaths(preferredMajor: Int? = nil) -> [String] {
        LibrarySearch.candidates(names: fileNames(preferredMajor: preferredMajor), override: "LLM_CUBLASLT_PATH",
                                 wheelFolders: ["nvidia/cublas/lib", "nvidia/cu13/lib", "nvidia/cu12/lib"])
    }

    public static func load(preferredMajor: Int? = nil) throws(CUDAError) -> CUBLASLt {
        let lib = try DynamicLibrary.open(
            searchPaths(preferredMajor: preferredMajor), what: "cuBLASLt",
            files: fileNames(preferredMajor: preferredMajor).joined(separator: " or "),
            hint: "install the CUDA toolkit or `pip install nvidia-cublas-cu12`, or set LLM_CUBLASLT_PATH to libcublasLt")
        return try CUBLASLt(library: lib)
    }

    /// Loads the cuBLASLt that suits `device`'s driver: the same CUDA major version first.
    public static func load(for device: CUDADevice) throws(CUDAError) -> CUBLASLt {
        try load(preferredMajor: device.driver.version / 1000)
    }

    init(library: DynamicLibrary) throws(CUDAError) {
        self.library = library
        api = try API(library)
    }

    /// The library's version, e.g. 120903 for 12.9.3 (major·10000 + minor·100 + patch).
    public var version: Int { api.cublasLtGetVersion() }

    func check(_ status: Int32, _ call: @autoclosure () -> String) throws(CUDAError) {
        guard status != 0 else { return }
        let message = api.cublasLtGetStatusString(status).map { String(cString: $0) } ?? "unknown status"
        throw .cublas(call: call(), status: status, message: message)
    }
}

/// Element type of a matmul's inputs and output; accumulation is always float.
public enum MatmulPrecision: Sendable {
    case float32, bfloat16

    var dataType: Int32 { self == .float32 ? CUBLASLt.Constant.float : CUBLASLt.Constant.bfloat16 }
    var elementSize: Int { self == .float32 ? 4 : 2 }
}

/// The matrix products of the CUDA backend, in cuBLAS's column-major terms: cuBLASLt on a GPU
/// (CUBLASLtMatmul), a plain loop under the CPU emulator in the tests. A linear layer's three products are written
/// once, below, on top of `gemm`.
public protocol DeviceGEMM: AnyObject {
    /// D(m×n) = op(A)·op(B) (+ D when accumulating) (+ bias[i] on row i), column-major, float accumulation; every
    /// matrix and the bias hold the backend's storage type. A is stored k×m when transposed (else m×k) with leading
    /// dimension lda; B is n×k when transposed (else k×n) with ldb; D is m×n with ldd.
    func gemm(m: Int, n: Int, k: Int, a: CUdeviceptr, lda: Int, transA: Bool, b: CUdeviceptr, ldb: Int, transB: Bool,
              d: CUdeviceptr, ldd: Int, accumulate: Bool, bias: CUdeviceptr?) throws(CUDAError)
}

extension DeviceGEMM {
    /// out(N,OC) = inp(N,C) · weightᵀ + bias, weight (OC,C), bias (OC) or nil (as matmulForward).
    /// Column-major: outᵀ (OC×N) = op_T(weight as C×OC) · (inp as C×N), the bias added per output row.
    public func forward(out: CUdeviceptr, inp: CUdeviceptr, weight: CUdeviceptr, bias: CUdeviceptr?, N: Int, C: Int,
                        OC: Int) throws(CUDAError) {
        try gemm(m: OC, n: N, k: C, a: weight, lda: C, transA: true, b: inp, ldb: C, transB: false, d: out, ldd: OC,
                 accumulate: false, bias: bias)
    }

    /// dinp(N,C) += dout(N,OC) · weight(OC,C) (as matmulBackward's first product).
    /// Column-major: dinpᵀ (C×N) += (weight as C×OC) · (dout as OC×N).
    public func backwardInput(dinp: CUdeviceptr, dout: CUdeviceptr, weight: CUdeviceptr, N: Int, C: Int,
                              OC: Int) throws(CUDAError) {
        try gemm(m: C, n: N, k: OC, a: weight, lda: C, transA: false, b: dout, ldb: OC, transB: false, d: dinp, ldd: C,
                 accumulate: true, bias: nil)
    }

    /// dweight(OC,C) += dout(N,OC)ᵀ · inp(N,C) (as matmulBackward's second product; the bias gradient is
    /// CUDAOps.biasBackward).
    /// Column-major: dweightᵀ (C×OC) += (inp as C×N) · op_T(dout as OC×N).
    public func backwardWeight(dweight: CUdeviceptr, dout: CUdeviceptr, inp: CUdeviceptr, N: Int, C: Int,
                               OC: Int) throws(CUDAError) {
        try gemm(m: C, n: OC, k: N, a: inp, lda: C, transA: false, b: dout, ldb: OC, transB: true, d: dweight, ldd: C,
                 accumulate: true, bias: nil)
    }
}

/// A cuBLASLt handle on one GPU with its workspace and stream. Each distinct shape's descriptors and the algorithm
/// the heuristics chose for it are made once and kept (a training step repeats a few dozen shapes).
public final class CUBLASLtMatmul: DeviceGEMM {
    public let cublas: CUBLASLt
    public let device: CUDADevice
    public let precision: MatmulPrecision
    public let stream: CUDAStream
    let handle: OpaquePointer?
    let workspace: DeviceBuffer
    private var plans: [PlanKey: Plan] = [:]

    /// 32 MiB of workspace, what cuBLASLt's heuristics want for the largest GPT-2 shapes on Hopper.
    public init(cublas: CUBLASLt, device: CUDADevice, precision: MatmulPrecision, stream: CUDAStream,
                workspaceBytes: Int = 32 << 20) throws(CUDAError) {
        self.cublas = cublas
        self.device = device
        self.precision = precision
        self.stream = stream
        workspace = try device.allocate(byteCount: workspaceBytes)
        var h: OpaquePointer?
        try device.makeCurrent()
        try cublas.check(cublas.api.cublasLtCreate(&h), "cublasLtCreate")
        handle = h
    }

    deinit {
        for plan in plans.values { plan.destroy(cublas.api) }
        _ = cublas.api.cublasLtDestroy(handle)
    }

    /// What makes two products the same plan: everything but the addresses.
    struct PlanKey: Hashable {
        let m, n, k, lda, ldb, ldd: Int
        let transA, transB, bias: Bool
    }

    /// A shape's matmul descriptor, matrix layouts and algorithm.
    struct Plan {
        let desc: OpaquePointer?
        let a, b, d: OpaquePointer?
        var algo: CUBLASLt.HeuristicResult

        func destroy(_ api: CUBLASLt.API) {
            _ = api.cublasLtMatmulDescDestroy(desc)
            for layout in [a, b, d] { _ = api.cublasLtMatrixLayoutDestroy(layout) }
        }
    }

    public func gemm(m: Int, n: Int, k: Int, a: CUdeviceptr, lda: Int, transA: Bool, b: CUdeviceptr, ldb: Int,
                     transB: Bool, d: CUdeviceptr, ldd: Int, accumulate: Bool, bias: CUdeviceptr?) throws(CUDAError) {
        typealias K = CUBLASLt.Constant
        let api = cublas.api
        try device.makeCurrent()
        let key = PlanKey(m: m, n: n, k: k, lda: lda, ldb: ldb, ldd: ldd, transA: transA, transB: transB, bias: bias != nil)
        var plan: Plan
        if let cached = plans[key] {
            plan = cached
        } else {
            plan = try makePlan(key)
            plans[key] = plan
        }
        if let bias {
            var address = UInt64(bias)
            try cublas.check(api.cublasLtMatmulDescSetAttribute(plan.desc, K.descBiasPointer, &address, 8),
                             "cublasLtMatmulDescSetAttribute(bias)")
        }
        var alpha: Float = 1, beta: Float = accumulate ? 1 : 0
        func raw(_ p: CUdeviceptr) -> UnsafeMutableRawPointer? { UnsafeMutableRawPointer(bitPattern: UInt(p)) }
        let status = withUnsafeBytes(of: &plan.algo.algo) { algo in
            api.cublasLtMatmul(handle, plan.desc, &alpha, raw(a), plan.a, raw(b), plan.b, &beta, raw(d), plan.d, raw(d),
                               plan.d, algo.baseAddress, raw(workspace.address), workspace.byteCount, stream.handle)
        }
        try cublas.check(status, "cublasLtMatmul(m \(m), n \(n), k \(k))")
    }

    private func makePlan(_ key: PlanKey) throws(CUDAError) -> Plan {
        typealias K = CUBLASLt.Constant
        let api = cublas.api, type = precision.dataType
        var desc: OpaquePointer?
        var layouts = [OpaquePointer?]()
        var made = false
        defer {
            if !made {
                _ = api.cublasLtMatmulDescDestroy(desc)
                layouts.forEach { _ = api.cublasLtMatrixLayoutDestroy($0) }
            }
        }
        try cublas.check(api.cublasLtMatmulDescCreate(&desc, K.computeFloat, K.float), "cublasLtMatmulDescCreate")
        func set<T>(_ attribute: Int32, _ value: T) throws(CUDAError) {
            var v = value
            let status = withUnsafeBytes(of: &v) { api.cublasLtMatmulDescSetAttribute(desc, attribute, $0.baseAddress, $0.count) }
            try cublas.check(status, "cublasLtMatmulDescSetAttribute(\(attribute))")
        }
        try set(K.descTransA, key.transA ? K.opT : K.opN)
        try set(K.descTransB, key.transB ? K.opT : K.opN)
        try set(K.descEpilogue, key.bias ? K.epilogueBias : K.epilogueDefault)
        if key.bias { try set(K.descBiasDataType, type) }
        // Layouts: (rows, cols, leading dimension) of each stored matrix.
        func layout(_ rows: Int, _ cols: Int, _ ld: Int) throws(CUDAError) -> OpaquePointer? {
            var l: OpaquePointer?
            try cublas.check(api.cublasLtMatrixLayoutCreate(&l, type, UInt64(rows), UInt64(cols), Int64(ld)),
                             "cublasLtMatrixLayoutCreate(\(rows)×\(cols))")
            layouts.append(l)
            return l
        }
        let aLayout = key.transA ? try layout(key.k, key.m, key.lda) : try layout(key.m, key.k, key.lda)
        let bLayout = key.transB ? try layout(key.n, key.k, key.ldb) : try layout(key.k, key.n, key.ldb)
        let dLayout = try layout(key.m, key.n, key.ldd)

        var preference: OpaquePointer?
        try cublas.check(api.cublasLtMatmulPreferenceCreate(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = api.cublasLtMatmulPreferenceDestroy(preference) }
        var workspaceBytes = UInt64(workspace.byteCount)
        try cublas.check(api.cublasLtMatmulPreferenceSetAttribute(preference, K.prefMaxWorkspaceBytes, &workspaceBytes, 8),
                         "cublasLtMatmulPreferenceSetAttribute")
        var heuristic = CUBLASLt.HeuristicResult(), found: Int32 = 0
        let searched = withUnsafeMutableBytes(of: &heuristic) {
            api.cublasLtMatmulAlgoGetHeuristic(handle, desc, aLayout, bLayout, dLayout, dLayout, preference, 1,
                                               $0.baseAddress, &found)
        }
        try cublas.check(searched, "cublasLtMatmulAlgoGetHeuristic(m \(key.m), n \(key.n), k \(key.k))")
        guard found > 0 else { throw .unsupported("cuBLASLt has no algorithm for a \(key.m)×\(key.n)×\(key.k) matmul") }
        made = true
        return Plan(desc: desc, a: aLayout, b: bLayout, d: dLayout, algo: heuristic)
    }
}
