/// `kiln_gemm_f32` / `kiln_gemm_f64`: Kiln's own tiled matrix product for OpenCL devices.
///
/// A work group computes a `tm` x `tn` tile of C, stepping through k `tk` at a time: it stages
/// the `tm` x `tk` slice of op(A) and the `tk` x `tn` slice of op(B) in local memory (each read
/// coalesced along whichever dimension is contiguous in global memory for the given transpose),
/// then each work item accumulates a `wm` x `wn` block of C in registers, its rows and columns
/// strided by the group's extent so that neighbouring items touch neighbouring columns of C and
/// of the B tile. Out-of-range elements are staged as zeros (they meet zeros of the other
/// operand, never a NaN or Inf of a real element), so every m, n, k is exact without a separate
/// edge kernel. Only OpenCL 1.2 C: no subgroups, which NVIDIA's OpenCL lacks.
enum GEMMKernel {
    struct Tiles: Hashable, Sendable {
        var tm: Int, tn: Int, tk: Int
        var wm: Int, wn: Int
        var threadsM: Int { tm / wm }
        var threadsN: Int { tn / wn }
        var threads: Int { threadsM * threadsN }
        /// One padding element per local row keeps the column-wise stores of a transposed load
        /// off a single bank.
        func localBytes(float64: Bool) -> Int { tk * (tm + 1 + tn + 1) * (float64 ? 8 : 4) }
    }

    /// The largest candidate the device holds, preferring per kind of device: on a GPU 8x8
    /// register blocks over 128x128 tiles (the shape that reaches most of the float32 peak
    /// without vector types), 4x4 blocks over 64x64 in float64 (registers are twice as wide);
    /// on a CPU (PoCL) 64x64 tiles, which keep a group's working set in the L1/L2 cache.
    static func tiles(float64: Bool, limits: OpenCLLibrary.Limits) -> Tiles {
        let gpu32 = [Tiles(tm: 128, tn: 128, tk: 16, wm: 8, wn: 8)]
        let gpu64 = [Tiles(tm: 64, tn: 64, tk: 16, wm: 4, wn: 4)]
        let cpu = [Tiles(tm: 64, tn: 64, tk: 16, wm: 4, wn: 4)]
        // Smaller devices, down to a single work item per group.
        let fallback = [Tiles(tm: 64, tn: 64, tk: 16, wm: 4, wn: 4), Tiles(tm: 32, tn: 32, tk: 16, wm: 2, wn: 2),
                        Tiles(tm: 32, tn: 32, tk: 8, wm: 4, wn: 4), Tiles(tm: 16, tn: 16, tk: 8, wm: 4, wn: 4),
                        Tiles(tm: 4, tn: 4, tk: 4, wm: 4, wn: 4), Tiles(tm: 1, tn: 1, tk: 1, wm: 1, wn: 1)]
        let preferred = limits.isCPU ? cpu : (float64 ? gpu64 : gpu32)
        return (preferred + fallback).first {
            $0.threads <= limits.maxWorkGroupSize && $0.localBytes(float64: float64) <= limits.localMemoryBytes
        } ?? fallback.last!
    }

    static func source(float64: Bool, tiles t: Tiles) -> String {
        let T = float64 ? "double" : "float"
        let name = float64 ? OpenCLLibrary.gemmF64 : OpenCLLibrary.gemmF32
        let P = float64 ? "KILN_GEMM_F64_" : "KILN_GEMM_F32_"
        return """
        \(float64 ? "#pragma OPENCL EXTENSION cl_khr_fp64 : enable\n" : "")\
        // \(name): C[b] = alpha * op(A[b]) op(B[b]) (+ C[b] when accumulate), row-major.
        #define \(P)TM \(t.tm)
        #define \(P)TN \(t.tn)
        #define \(P)TK \(t.tk)
        #define \(P)WM \(t.wm)
        #define \(P)WN \(t.wn)
        #define \(P)RM \(t.threadsM)
        #define \(P)RN \(t.threadsN)
        #define \(P)THREADS \(t.threads)
        __kernel __attribute__((reqd_work_group_size(\(t.threadsN), \(t.threadsM), 1)))
        void \(name)(int ta, int tb, long m, long n, long k,
                __global const \(T) *A, long offA, long lda, long strideA,
                __global const \(T) *B, long offB, long ldb, long strideB,
                __global \(T) *C, long offC, long ldc, long strideC, \(T) alpha, int accumulate) {
            __local \(T) As[\(P)TK][\(P)TM + 1];
            __local \(T) Bs[\(P)TK][\(P)TN + 1];
            const int tx = get_local_id(0), ty = get_local_id(1);
            const int tid = ty * \(P)RN + tx;
            const long batch = get_global_id(2);
            const long row0 = (long)get_group_id(1) * \(P)TM, col0 = (long)get_group_id(0) * \(P)TN;
            A += offA + batch * strideA;
            B += offB + batch * strideB;
            C += offC + batch * strideC;
            \(T) acc[\(P)WM][\(P)WN];
            #pragma unroll
            for (int i = 0; i < \(P)WM; i++) {
                #pragma unroll
                for (int j = 0; j < \(P)WN; j++) acc[i][j] = 0;
            }
            for (long p0 = 0; p0 < k; p0 += \(P)TK) {
                // Stage op(A)[row0.., p0..] as As[p][i]; consecutive items read consecutive
                // addresses: along p when A is stored m x k, along i when stored k x m (ta).
                if (ta) {
                    for (int e = tid; e < \(P)TM * \(P)TK; e += \(P)THREADS) {
                        const int i = e % \(P)TM, p = e / \(P)TM;
                        const long gi = row0 + i, gp = p0 + p;
                        As[p][i] = (gi < m && gp < k) ? A[gp * lda + gi] : (\(T))0;
                    }
                } else {
                    for (int e = tid; e < \(P)TM * \(P)TK; e += \(P)THREADS) {
                        const int p = e % \(P)TK, i = e / \(P)TK;
                        const long gi = row0 + i, gp = p0 + p;
                        As[p][i] = (gi < m && gp < k) ? A[gi * lda + gp] : (\(T))0;
                    }
                }
                // op(B)[p0.., col0..] as Bs[p][j]: along j when B is stored k x n, along p when
                // stored n x k (tb).
                if (tb) {
                    for (int e = tid; e < \(P)TN * \(P)TK; e += \(P)THREADS) {
                        const int p = e % \(P)TK, j = e / \(P)TK;
                        const long gj = col0 + j, gp = p0 + p;
                        Bs[p][j] = (gj < n && gp < k) ? B[gj * ldb + gp] : (\(T))0;
                    }
                } else {
                    for (int e = tid; e < \(P)TN * \(P)TK; e += \(P)THREADS) {
                        const int j = e % \(P)TN, p = e / \(P)TN;
                        const long gj = col0 + j, gp = p0 + p;
                        Bs[p][j] = (gj < n && gp < k) ? B[gp * ldb + gj] : (\(T))0;
                    }
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                #pragma unroll
                for (int p = 0; p < \(P)TK; p++) {
                    \(T) a[\(P)WM], b[\(P)WN];
                    #pragma unroll
                    for (int i = 0; i < \(P)WM; i++) a[i] = As[p][ty + i * \(P)RM];
                    #pragma unroll
                    for (int j = 0; j < \(P)WN; j++) b[j] = Bs[p][tx + j * \(P)RN];
                    #pragma unroll
                    for (int i = 0; i < \(P)WM; i++) {
                        #pragma unroll
                        for (int j = 0; j < \(P)WN; j++) acc[i][j] += a[i] * b[j];
                    }
                }
                barrier(CLK_LOCAL_MEM_FENCE);
            }
            #pragma unroll
            for (int i = 0; i < \(P)WM; i++) {
                const long gi = row0 + ty + i * \(P)RM;
                #pragma unroll
                for (int j = 0; j < \(P)WN; j++) {
                    const long gj = col0 + tx + j * \(P)RN;
                    if (gi < m && gj < n) {
                        \(T) v = alpha * acc[i][j];
                        if (accumulate) v += C[gi * ldc + gj];
                        C[gi * ldc + gj] = v;
                    }
                }
            }
        }

        """
    }
}
