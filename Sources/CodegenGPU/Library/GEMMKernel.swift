/// `kiln_gemm_f32` / `kiln_gemm_f64`: Kiln's own tiled matrix product for OpenCL devices.
///
/// A work group computes a `tm` x `tn` tile of C, stepping through k `tk` at a time: it stages
/// the `tm` x `tk` slice of op(A) and the `tk` x `tn` slice of op(B) in local memory (each read
/// coalesced along whichever dimension is contiguous in global memory for the given transpose),
/// then each work item accumulates a `wm` x `wn` block of C in registers. Its rows and columns
/// are either strided by the group's extent (neighbouring items touch neighbouring columns of C
/// and of the B tile, scalar local reads), or, with `vector` tiles, consecutive, so that it reads
/// its slices of the local tiles as float4 (a quarter of the local-memory instructions, which
/// otherwise bound a GPU's FMA rate). Out-of-range elements are staged as zeros (they meet zeros of the other
/// operand, never a NaN or Inf of a real element), so every m, n, k is exact without a separate
/// edge kernel. Only OpenCL 1.2 C: no subgroups, which NVIDIA's OpenCL lacks.
enum GEMMKernel {
    struct Tiles: Hashable, Sendable {
        var tm: Int, tn: Int, tk: Int
        var wm: Int, wn: Int
        /// Consecutive rows and columns per work item, read from local memory as float4
        /// (float32 only; `wm` and `wn` multiples of 4).
        var vector = false
        var threadsM: Int { tm / wm }
        var threadsN: Int { tn / wn }
        var threads: Int { threadsM * threadsN }
        /// Padding per local row keeps the column-wise stores of a transposed load off a single
        /// bank: one element, or four where rows must stay 16-byte aligned for float4 reads.
        var pad: Int { vector ? 4 : 1 }
        func localBytes(float64: Bool) -> Int { tk * (tm + pad + tn + pad) * (float64 ? 8 : 4) }
    }

    /// The largest candidate the device holds, preferring per kind of device: on a GPU 8x8
    /// register blocks over 128x128 tiles read as float4 from local memory, in float64 4x4
    /// blocks over 64x64 (registers are twice as wide);
    /// on a CPU (PoCL) 64x64 tiles of 8x8 blocks (64 work items), float4 reads in float32:
    /// measured fastest there (6.7 GFLOP/s at 1024 on 2 shared cores, against 3.2 with scalar
    /// reads and 3.7 for CLBlast 1.5.3's sgemm on the same device).
    static func tiles(float64: Bool, limits: OpenCLLibrary.Limits) -> Tiles {
        let gpu32 = [Tiles(tm: 128, tn: 128, tk: 16, wm: 8, wn: 8, vector: true)]
        let gpu64 = [Tiles(tm: 64, tn: 64, tk: 16, wm: 4, wn: 4)]
        let cpu32 = [Tiles(tm: 64, tn: 64, tk: 16, wm: 8, wn: 8, vector: true)]
        let cpu64 = [Tiles(tm: 64, tn: 64, tk: 16, wm: 8, wn: 8)]
        // Smaller devices, down to a single work item per group.
        let fallback = [Tiles(tm: 64, tn: 64, tk: 16, wm: 4, wn: 4), Tiles(tm: 32, tn: 32, tk: 16, wm: 2, wn: 2),
                        Tiles(tm: 32, tn: 32, tk: 8, wm: 4, wn: 4), Tiles(tm: 16, tn: 16, tk: 8, wm: 4, wn: 4),
                        Tiles(tm: 4, tn: 4, tk: 4, wm: 4, wn: 4), Tiles(tm: 1, tn: 1, tk: 1, wm: 1, wn: 1)]
        let preferred = limits.isCPU ? (float64 ? cpu64 : cpu32) : (float64 ? gpu64 : gpu32)
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
        #define \(P)PAD \(t.pad)
        // The local row (column) of a work item's i-th row (j-th column) of C.
        #define \(P)ROW(i) \(t.vector ? "(ty * \(P)WM + (i))" : "(ty + (i) * \(P)RM)")
        #define \(P)COL(j) \(t.vector ? "(tx * \(P)WN + (j))" : "(tx + (j) * \(P)RN)")
        __kernel __attribute__((reqd_work_group_size(\(t.threadsN), \(t.threadsM), 1)))
        void \(name)(int ta, int tb, long m, long n, long k,
                __global const \(T) *A, long offA, long lda, long strideA,
                __global const \(T) *B, long offB, long ldb, long strideB,
                __global \(T) *C, long offC, long ldc, long strideC, \(T) alpha, int accumulate) {
            __local \(T) As[\(P)TK][\(P)TM + \(P)PAD] __attribute__((aligned(16)));
            __local \(T) Bs[\(P)TK][\(P)TN + \(P)PAD] __attribute__((aligned(16)));
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
        \(t.vector ? """
                    // Rows are 16-byte aligned (aligned base, pad 4) and so is every 4th element.
                    #pragma unroll
                    for (int i = 0; i < \(P)WM; i += 4) {
                        const float4 v = *(__local const float4 *)&As[p][\(P)ROW(i)];
                        a[i] = v.s0; a[i + 1] = v.s1; a[i + 2] = v.s2; a[i + 3] = v.s3;
                    }
                    #pragma unroll
                    for (int j = 0; j < \(P)WN; j += 4) {
                        const float4 v = *(__local const float4 *)&Bs[p][\(P)COL(j)];
                        b[j] = v.s0; b[j + 1] = v.s1; b[j + 2] = v.s2; b[j + 3] = v.s3;
                    }
        """ : """
                    #pragma unroll
                    for (int i = 0; i < \(P)WM; i++) a[i] = As[p][\(P)ROW(i)];
                    #pragma unroll
                    for (int j = 0; j < \(P)WN; j++) b[j] = Bs[p][\(P)COL(j)];
        """)
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
                const long gi = row0 + \(P)ROW(i);
                #pragma unroll
                for (int j = 0; j < \(P)WN; j++) {
                    const long gj = col0 + \(P)COL(j);
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
