import KilnOpenCL
import KilnIR

/// A device's own limits as Kiln's device library reaches them (copy bandwidth, GEMM GFLOP/s),
/// measured in this process beside the device benchmark, as `MachineLimits` is for the CPU.
public typealias DeviceLibraryLimits = OpenCLLibraryLimits

public enum DeviceLimits {
    /// The OpenCL device `/gpu:N` names (`N` counted as placement counts it: GPUs first, CPU
    /// devices after them only with KILN_OPENCL_ALLOW_CPU=1), described for a report.
    public static func describe(gpu n: Int, allowCPU: Bool = OpenCL.allowCPUFromEnvironment) throws -> String {
        try device(gpu: n, allowCPU: allowCPU).description
    }

    /// The copy over 256 MiB and the float32 GEMM at `gemmSize`, `samples` launches each.
    public static func measure(gpu n: Int, samples: Int, allowCPU: Bool = OpenCL.allowCPUFromEnvironment) throws -> DeviceLibraryLimits {
        let d = try device(gpu: n, allowCPU: allowCPU)
        let copyBytes = min(256 << 20, Int(d.maxAllocBytes) & ~15)
        return try OpenCLLibraryLimits.measure(device: d, copyBytes: copyBytes, gemmN: gemmSize(d), samples: samples)
    }

    /// The size of the square product the limits and the device bench use: 4096 on a GPU (the
    /// size issue 12 sets its target at); 1024 on a CPU device, where 4096 would take minutes
    /// per product; smaller where the device's largest buffer cannot hold it.
    public static func gemmSize(gpu n: Int, allowCPU: Bool = OpenCL.allowCPUFromEnvironment) throws -> Int {
        gemmSize(try device(gpu: n, allowCPU: allowCPU))
    }

    static func gemmSize(_ d: OpenCLDevice) -> Int {
        var size = d.kind == .cpu ? 1024 : 4096
        while size > 64 && size * size * 4 > Int(d.maxAllocBytes) { size /= 2 }
        return size
    }

    static func device(gpu n: Int, allowCPU: Bool) throws -> OpenCLDevice {
        let gpus = try OpenCL.gpus(allowCPU: allowCPU)
        guard n >= 0, n < gpus.count else {
            let present = try OpenCL.devices()
            let hint = !allowCPU && present.contains { $0.kind == .cpu } ? " (CPU OpenCL devices count as /gpu:N with KILN_OPENCL_ALLOW_CPU=1)" : ""
            throw KilnError(.notFound, "no OpenCL device /gpu:\(n): \(gpus.count) GPU\(gpus.count == 1 ? "" : "s") present\(hint); devices: \(present.isEmpty ? "none" : present.map(\.name).joined(separator: ", "))")
        }
        return gpus[n]
    }
}
