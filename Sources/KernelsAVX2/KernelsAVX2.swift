// Kernels built for AVX2 + FMA (Package.swift builds this module with `-target-cpu haswell`): 16 vector
// registers of 256 bits. The library calls them only when the CPU has these features (LLM's KernelVariant).
// Every function here has a generic twin in LLM's Kernels/ and a test that compares the two.

/// Whether this module was built with its instruction set (false on other architectures, where it is empty).
public let kernelsAVX2Available: Bool = {
    #if arch(x86_64)
    true
    #else
    false
    #endif
}()
