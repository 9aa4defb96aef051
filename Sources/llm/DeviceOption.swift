// `--device cpu|cuda`, shared by the commands that run a model. The CUDA backend has its kernels and bindings
// but no model path yet, so `--device cuda` opens the GPU (or says exactly why it cannot) and then stops
// rather than quietly running on the CPU.
import ArgumentParser
import LLM

extension Device: ExpressibleByArgument {}

struct DeviceOption: ParsableArguments {
    @Option(help: "Where to run: cpu, or cuda (an NVIDIA GPU; its driver is loaded at run time).")
    var device: Device = .cpu

    /// Returns for the CPU. For CUDA, throws: why no GPU could be opened, or that the model does not run on it yet.
    func check() throws {
        guard device == .cuda else { return }
        let gpu = try CUDADevice.open()
        throw CUDAError.modelNotImplemented(device: gpu.description)
    }
}
