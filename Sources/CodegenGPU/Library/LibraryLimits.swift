import COpenCL
import KilnIR

/// What a device reaches with Kiln's own library kernels, measured in the calling process:
/// the bandwidth of `kiln_copy_f32` and the GFLOP/s of `kiln_gemm_f32` on square matrices. The
/// device bench prints its workloads as fractions of these.
public struct OpenCLLibraryLimits: Sendable {
    public var device: String
    public var copyBytes: Int
    /// GB/s counting one read and one write of `copyBytes`: median and best of the samples.
    public var copyGBps: Double, copyBestGBps: Double
    public var gemmN: Int
    public var gemmGFLOPS: Double, gemmBestGFLOPS: Double
    /// The GEMM's tiles on this device, e.g. "128x128x16, 8x8 per work item, float4 local reads".
    public var gemmTiles: String
    public var samples: Int

    /// Times `samples` launches of each kernel (after one warm-up launch) by the device's own
    /// clock (OpenCL profiling events: queued work and transfers excluded).
    public static func measure(device: OpenCLDevice, copyBytes: Int, gemmN: Int, samples: Int) throws -> OpenCLLibraryLimits {
        // The device's shared context and program cache, as sessions on it use them; the
        // profiling queue, since the times are the device's own.
        let shared = try OpenCLContext.shared(device)
        let context = shared.context
        let queue = try shared.profilingQueue()
        let limits = OpenCLLibrary.Limits(device: device)
        let source = try OpenCLLibrary.source(for: [OpenCLLibrary.copyF32, OpenCLLibrary.gemmF32], float64: false, limits: limits)
        let program = try shared.programs.program(source: source, options: OpenCLBackend.buildOptions)
        var status: cl_int = 0

        func buffer(_ bytes: Int, fill: Float) throws -> cl_mem? {
            let m = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status)
            try OpenCL.check(status, "clCreateBuffer of \(bytes) bytes")
            var v = fill
            let f = clEnqueueFillBuffer(queue, m, &v, 4, 0, bytes, 0, nil, nil)
            if f != CL_SUCCESS { clReleaseMemObject(m); try OpenCL.check(f, "clEnqueueFillBuffer") }
            return m
        }
        /// Seconds per launch by the profiling clock, one sample per launch after a warm-up.
        func time(_ name: String, logical: [Int], _ set: (cl_kernel?) throws -> Void) throws -> [Double] {
            let k = clCreateKernel(program, name, &status)
            try OpenCL.check(status, "clCreateKernel \(name)")
            defer { clReleaseKernel(k) }
            try set(k)
            let range = try OpenCLLibrary.ndRange(kernel: name, logical: logical, limits: limits)
            var out: [Double] = []
            for n in 0...samples {
                var event: cl_event?
                let s = range.global.withUnsafeBufferPointer { g in
                    (range.local ?? []).withUnsafeBufferPointer { l in
                        clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, g.baseAddress, range.local == nil ? nil : l.baseAddress, 0, nil, &event)
                    }
                }
                try OpenCL.check(s, "clEnqueueNDRangeKernel \(name)")
                defer { clReleaseEvent(event) }
                try OpenCL.check(clWaitForEvents(1, &event), "clWaitForEvents")
                var start: cl_ulong = 0, end: cl_ulong = 0
                try OpenCL.check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil), "clGetEventProfilingInfo")
                try OpenCL.check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil), "clGetEventProfilingInfo")
                if n > 0 { out.append(Double(end - start) * 1e-9) }
            }
            return out
        }
        func arg<T>(_ k: cl_kernel?, _ i: Int, _ value: T) throws {
            var v = value
            try OpenCL.check(clSetKernelArg(k, cl_uint(i), MemoryLayout<T>.size, &v), "clSetKernelArg \(i)")
        }

        let copyTimes: [Double]
        do {
            let count = copyBytes / 4
            let src = try buffer(copyBytes, fill: 1), dst = try buffer(copyBytes, fill: 0)
            defer { clReleaseMemObject(src); clReleaseMemObject(dst) }
            copyTimes = try time(OpenCLLibrary.copyF32, logical: [count]) { k in
                try arg(k, 0, src); try arg(k, 1, dst); try arg(k, 2, Int64(count))
            }
        }
        let gemmTimes: [Double]
        do {
            let bytes = gemmN * gemmN * 4, n = Int64(gemmN)
            let a = try buffer(bytes, fill: 0.5), b = try buffer(bytes, fill: 0.25), c = try buffer(bytes, fill: 0)
            defer { clReleaseMemObject(a); clReleaseMemObject(b); clReleaseMemObject(c) }
            gemmTimes = try time(OpenCLLibrary.gemmF32, logical: [gemmN, gemmN, 1]) { k in
                try arg(k, 0, Int32(0)); try arg(k, 1, Int32(0))
                try arg(k, 2, n); try arg(k, 3, n); try arg(k, 4, n)
                for (i, m) in [a, b, c].enumerated() {
                    try arg(k, 5 + 4 * i, m); try arg(k, 6 + 4 * i, Int64(0)); try arg(k, 7 + 4 * i, n); try arg(k, 8 + 4 * i, n * n)
                }
                try arg(k, 17, Float(1)); try arg(k, 18, Int32(0))
            }
        }
        let moved = 2 * Double(copyBytes), flops = 2 * pow3(Double(gemmN))
        let t = GEMMKernel.tiles(float64: false, limits: limits)
        return OpenCLLibraryLimits(device: device.name, copyBytes: copyBytes,
                                   copyGBps: moved / median(copyTimes) / 1e9, copyBestGBps: moved / copyTimes.min()! / 1e9,
                                   gemmN: gemmN, gemmGFLOPS: flops / median(gemmTimes) / 1e9, gemmBestGFLOPS: flops / gemmTimes.min()! / 1e9,
                                   gemmTiles: "\(t.tm)x\(t.tn)x\(t.tk), \(t.wm)x\(t.wn) per work item\(t.vector ? ", float4 local reads" : "")", samples: samples)
    }

    static func pow3(_ x: Double) -> Double { x * x * x }
    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
