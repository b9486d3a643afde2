import CKilnRT
import Foundation
import KilnCPU
import KilnIR
import KilnKernels

/// The machine's own limits, measured in the same process as a benchmark so ratios compare like
/// with like: OpenBLAS sgemm called directly, and memory copy bandwidth.
public enum MachineLimits {
    /// The OpenBLAS kernel in use (e.g. "SkylakeX"); Kiln picks it from the CPU's features.
    public static var blasCoreName: String { BLAS.shared.coreName }
    public static var blasThreads: Int { BLAS.shared.threads }
    public static var cpuName: String { CPUTarget.host.name }
    /// The CPU model LLVM compiles for, why, and the vector width (`kiln devices`).
    public static var cpuTarget: String { CPUTarget.host.summary }

    /// Median GFLOP/s of an n×n×n sgemm called straight into OpenBLAS.
    public static func sgemmGFLOPS(n: Int, repetitions: Int = 10) -> (median: Double, best: Double) {
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(n * n) { a[i] = Float(i % 7) * 0.1; b[i] = Float(i % 5) * 0.1; c[i] = 0 }
        let gemm = BLAS.shared.sgemm
        let n32 = Int32(n)
        let times = Timing.repeatMeasure(warmup: 2, repetitions: repetitions) { gemm(101, 111, 111, n32, n32, n32, 1, a, n32, b, n32, 0, c, n32) }
        let flops = 2 * Double(n) * Double(n) * Double(n)
        return (flops / Timing.median(times) / 1e9, flops / times.min()! / 1e9)
    }

    /// How Kiln's products on `dtype` (float16, bfloat16) run on this CPU: the method kiln_hgemm
    /// picks, in words, for reports beside their rates.
    public static func halfProductMethod(_ dtype: DType) -> String {
        switch kiln_hgemm_method(dtype == .bfloat16 ? KILN_FORMAT_BF16 : KILN_FORMAT_F16, KILN_HALF_AUTO) {
        case KILN_HALF_DOT: return "AVX512-BF16 vdpbf16ps pairs, float32 sums"
        case KILN_HALF_CONVERT: return dtype == .bfloat16 ? "bfloat16 widened while packing, AVX-512 float32 FMA" : "F16C vcvtph2ps while packing, AVX-512 float32 FMA"
        default: return "portable C, converted to float32 per block"
        }
    }

    /// Median GB/s of copying `bytes` (one read plus one write counted as 2×bytes moved).
    public static func copyGBps(bytes: Int = 256 << 20, repetitions: Int = 7) -> (median: Double, best: Double) {
        let src = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let dst = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { src.deallocate(); dst.deallocate() }
        memset(src, 1, bytes)
        memset(dst, 0, bytes)
        // One memcpy per core on its share, as Kiln's kernels run on every core: a single
        // thread's copy leaves bandwidth unused and would flatter them.
        let parts = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let share = (bytes / parts) & ~63
        let (s, d) = (UInt(bitPattern: src), UInt(bitPattern: dst))
        let times = Timing.repeatMeasure(warmup: 1, repetitions: repetitions) {
            DispatchQueue.concurrentPerform(iterations: parts) { k in
                let n = k == parts - 1 ? bytes - k * share : share
                memcpy(UnsafeMutableRawPointer(bitPattern: d + UInt(k * share))!, UnsafeRawPointer(bitPattern: s + UInt(k * share))!, n)
            }
        }
        return (2 * Double(bytes) / Timing.median(times) / 1e9, 2 * Double(bytes) / times.min()! / 1e9)
    }
}

/// Wall-clock measurement helpers shared by benchmarks.
public enum Timing {
    public static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Seconds per call of `body`, one sample per repetition after `warmup` calls.
    public static func repeatMeasure(warmup: Int, repetitions: Int, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmup { try body() }
        var out: [Double] = []
        for _ in 0..<repetitions {
            let t0 = now()
            try body()
            out.append(Double(now() - t0) / 1e9)
        }
        return out
    }

    /// Seconds per call, each sample the mean over `batch` back-to-back calls (for sub-µs work).
    public static func batchedMeasure(warmup: Int, samples: Int, batch: Int, _ body: () throws -> Void) rethrows -> [Double] {
        for _ in 0..<warmup { try body() }
        var out: [Double] = []
        for _ in 0..<samples {
            let t0 = now()
            for _ in 0..<batch { try body() }
            out.append(Double(now() - t0) / 1e9 / Double(batch))
        }
        return out
    }

    public static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
