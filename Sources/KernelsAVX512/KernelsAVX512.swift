// Kernels built for AVX-512 with VNNI (Package.swift builds this module with `-target-cpu icelake-server`): 32
// vector registers of 512 bits and 8-bit dot products (vpdpbusd). The library calls them only when the CPU has
// avx512f, avx512bw, avx512vl and avx512_vnni (LLM's KernelVariant). Every function here has a generic twin in
// LLM's Kernels/ and a test that compares the two.

/// Whether this module was built with its instruction set (false on other architectures, where it is empty).
public let kernelsAVX512Available: Bool = {
    #if arch(x86_64)
    true
    #else
    false
    #endif
}()
