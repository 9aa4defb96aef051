// The CUDA C kernels shipped in Resources/cuda: which file defines which entry point, how they are compiled
// (NVRTC, for one GPU architecture, float or bfloat16 storage), and the compiled images cached on disk.
import Foundation

/// The storage type the kernels are compiled for (`floatX` in common.cuh); they compute in float either way.
public enum CUDAPrecision: String, CaseIterable, Sendable {
    case fp32, bf16

    /// The preprocessor definitions that select it.
    var defines: [String] { self == .bf16 ? ["-DLLM_BF16"] : [] }
}

/// One `.cu` file and the `extern "C" __global__` kernels it defines.
public struct CUDAKernelSource: Sendable, Equatable {
    public let file: String
    public let entryPoints: [String]
}

public enum CUDAKernels {
    /// Every kernel source and its entry points; the launch shapes are in each kernel's comment.
    public static let sources: [CUDAKernelSource] = [
        .init(file: "encoder.cu", entryPoints: ["encoder_forward", "encoder_backward_wpe", "encoder_backward_wte"]),
        .init(file: "layernorm.cu",
              entryPoints: ["layernorm_forward", "layernorm_backward_input", "layernorm_backward_params_partial"]),
        .init(file: "matmul.cu", entryPoints: ["add_bias", "column_sum_partial", "column_sum_finish"]),
        .init(file: "attention.cu", entryPoints: ["attention_forward", "attention_backward_delta",
                                                  "attention_backward_dkv", "attention_backward_dq",
                                                  "attention_forward_wide", "attention_backward_dkv_wide",
                                                  "attention_backward_dq_wide"]),
        .init(file: "attention_cached.cu", entryPoints: ["attention_cached_forward", "kv_cache_write",
                                                         "attention_decode"]),
        .init(file: "residual.cu", entryPoints: ["residual_forward", "residual_backward"]),
        .init(file: "gelu.cu", entryPoints: ["gelu_forward", "gelu_backward"]),
        .init(file: "classifier.cu", entryPoints: ["fused_classifier"]),
        .init(file: "adamw.cu", entryPoints: ["global_norm_partial", "global_norm_finish", "adamw_update",
                                              "adamw_update_mixed"]),
        .init(file: "convert.cu", entryPoints: ["cast_f32_to_floatx", "cast_floatx_to_f32"]),
        .init(file: "rmsnorm.cu",
              entryPoints: ["rmsnorm_forward", "rmsnorm_backward_input", "rmsnorm_backward_weight_partial"]),
        .init(file: "rope.cu", entryPoints: ["rope_forward", "rope_backward"]),
        .init(file: "mlp.cu", entryPoints: ["swiglu_forward", "swiglu_backward", "geglu_forward", "geglu_backward",
                                            "relu_squared_forward", "relu_squared_backward"]),
        .init(file: "softcap.cu", entryPoints: ["softcap_forward", "softcap_backward"]),
    ]

    /// Headers every program may include.
    static let headerFiles = ["common.cuh"]

    /// The folder holding the `.cu` files: the package's resources (or $LLM_RESOURCES/cuda).
    public static func folder() throws(CUDAError) -> String {
        do {
            return try PackageResources.folder("cuda", containing: headerFiles[0])
        } catch {
            guard let missing = error as? TokenizerError, case .resourceNotFound(_, let searched) = missing else {
                throw .kernelSourcesNotFound(searched: [])
            }
            throw .kernelSourcesNotFound(searched: searched)
        }
    }

    /// The text of one resource file.
    public static func text(_ file: String, in folder: String) throws(CUDAError) -> String {
        guard let data = FileManager.default.contents(atPath: folder + "/" + file) else {
            throw .kernelSourcesNotFound(searched: [folder + "/" + file])
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func headers(in folder: String) throws(CUDAError) -> [(name: String, source: String)] {
        var headers = [(name: String, source: String)]()
        for name in headerFiles { headers.append((name, try text(name, in: folder))) }
        return headers
    }

    /// NVRTC options for `architecture` ("sm_90" for a CUBIN, "compute_90" for PTX only) and `precision`.
    public static func options(architecture: String, precision: CUDAPrecision) -> [String] {
        ["--gpu-architecture=\(architecture)", "--std=c++17", "-lineinfo"] + precision.defines
    }

    /// Compiles every source for `architecture` and `precision`: file name → NVRTC's output.
    public static func compileAll(nvrtc: NVRTC, architecture: String,
                                  precision: CUDAPrecision) throws(CUDAError) -> [String: NVRTC.Output] {
        let folder = try folder()
        let headers = try headers(in: folder)
        var outputs = [String: NVRTC.Output]()
        for source in sources {
            outputs[source.file] = try nvrtc.compile(source: try text(source.file, in: folder), name: source.file,
                                                     headers: headers,
                                                     options: options(architecture: architecture, precision: precision))
        }
        return outputs
    }

    /// The entry points a PTX text defines (its `.entry` directives).
    public static func entryPoints(inPTX ptx: String) -> [String] {
        ptx.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: ".entry ") else { return nil }
            return String(line[range.upperBound...].prefix { $0.isLetter || $0.isNumber || $0 == "_" })
        }
    }

    /// Every kernel compiled for `device` and loaded, by entry point name. Each file's CUBIN comes from `cache`
    /// when NVRTC has compiled the same source with the same options before. Pass `NVRTC.load(for: device)`,
    /// whose CUBINs the device's driver can load.
    public static func load(on device: CUDADevice, precision: CUDAPrecision, nvrtc: NVRTC,
                            cache: KernelCache = KernelCache()) throws(CUDAError) -> [String: CUDAFunction] {
        let folder = try folder()
        let headers = try headers(in: folder)
        let options = options(architecture: device.architecture, precision: precision)
        var functions = [String: CUDAFunction]()
        for source in sources {
            let text = try text(source.file, in: folder)
            let key = KernelCache.key([text] + headers.map(\.source) + options + ["nvrtc " + nvrtc.versionString])
            let image = try cache.bytes(key: key) { () throws(CUDAError) -> [UInt8] in
                let output = try nvrtc.compile(source: text, name: source.file, headers: headers, options: options)
                guard let cubin = output.cubin else {
                    throw .nvrtc(call: "nvrtcGetCUBIN(\(source.file))", code: -1, message: "no CUBIN for \(device.architecture)")
                }
                return cubin
            }
            let module = try CUDAModule(device: device, image: image)
            for name in source.entryPoints { functions[name] = try module.function(name) }
        }
        return functions
    }
}
