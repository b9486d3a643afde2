/// `kiln_copy_f32`: the plainest device-memory kernel, one float4 in and out per work item. Its
/// bandwidth is the limit a fused elementwise kernel is measured against (`kiln bench --device`).
enum CopyKernel {
    /// 256 items where the device allows: a multiple of every GPU's warp/wavefront.
    static func groupSize(limits: OpenCLLibrary.Limits) -> Int { max(1, min(256, limits.maxWorkGroupSize)) }

    static func source(groupSize: Int) -> String {
        """
        // kiln_copy_f32: dst[0..<count] = src[0..<count]. Buffers are whole device allocations
        // (aligned far beyond 16 bytes), so float4 pointers are legal; the item holding the last,
        // partial float4 copies its 1-3 floats one by one.
        __kernel __attribute__((reqd_work_group_size(\(groupSize), 1, 1)))
        void kiln_copy_f32(__global const float4 *src, __global float4 *dst, long count) {
            const long i = get_global_id(0);
            if (4 * i + 3 < count) {
                dst[i] = src[i];
            } else {
                __global const float *s = (__global const float *)src;
                __global float *d = (__global float *)dst;
                for (long e = 4 * i; e < count; e++) d[e] = s[e];
            }
        }

        """
    }
}
