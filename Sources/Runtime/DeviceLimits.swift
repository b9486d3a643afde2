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

    /// The copy over `copyBytes` and the float32 GEMM at `gemmN` (4096 on a GPU; on a CPU device
    /// 2048, where 4096 would take minutes at the same rate), `samples` launches each.
    public static func measure(gpu n: Int, samples: Int, allowCPU: Bool = OpenCL.allowCPUFromEnvironment) throws -> DeviceLibraryLimits {
        let d = try device(gpu: n, allowCPU: allowCPU)
        let copyBytes = min(256 << 20, Int(d.maxAllocBytes) & ~15)
        var gemmN = d.kind == .cpu ? 2048 : 4096
        while gemmN * gemmN * 4 > Int(d.maxAllocBytes) { gemmN /= 2 }
        return try OpenCLLibraryLimits.measure(device: d, copyBytes: copyBytes, gemmN: gemmN, samples: samples)
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
