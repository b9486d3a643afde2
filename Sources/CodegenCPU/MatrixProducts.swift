import CKilnRT
import KilnPasses

/// Which library computes a float32 matrix product. Kiln's own kernel (CKilnRT/gemm.c) shares
/// the worker pool and beats OpenBLAS from a few thousand multiply-adds up to ~2^27 (a 512-cube
/// product), where OpenBLAS's packing and threads pay off; below that, the call overhead of
/// either dominates and OpenBLAS's is the smaller. `kiln bench` shows both sides.
public enum MatrixProducts {
    /// kiln_sgemm needs AVX-512F; elsewhere every product goes to OpenBLAS.
    public static let ownKernelAvailable: Bool = kiln_sgemm_available() != 0

    /// KILN_GEMM=blas sends every product to OpenBLAS (for comparisons), =kiln every float32 one to Kiln's.
    static let override: String? = getenv("KILN_GEMM").map { String(cString: $0) }

    /// What the scheduler may assume about this machine: vectors as wide as its widest, and
    /// small products on the pool where Kiln's own kernel runs.
    public static let target = TargetDescription(
        name: "llvm \(HostCPU.name)", vectorBytes: HostCPU.hasAVX512 ? 64 : HostCPU.features.contains("avx2") ? 32 : 16,
        ownProducts: ownKernelAvailable && override != "blas", ownProductRange: override == "kiln" ? 0...Int.max : 4096...(1 << 27))

    public static func ownKernel(m: Int, n: Int, k: Int) -> Bool { target.ownProduct(m: m, n: n, k: k) }
}

#if canImport(Glibc)
import Glibc
#endif
