import KilnOpenCL

/// The OpenCL devices present, for tools: one line per device (with the `/gpu:N` it answers to,
/// if any), then its limits.
public enum OpenCLDeviceList {
    public static func lines(allowCPU: Bool = OpenCL.allowCPUFromEnvironment) throws -> [String] {
        let all = try OpenCL.devices()
        let gpus = try OpenCL.gpus(allowCPU: allowCPU)
        var out: [String] = []
        for (i, d) in all.enumerated() {
            let gpu = gpus.firstIndex(of: d).map { "/gpu:\($0)" } ?? "-"
            out.append("opencl:\(i)  \(gpu)  \(d)")
            out.append("    " + d.limits.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        }
        if all.contains(where: { $0.kind == .cpu }) && !allowCPU {
            out.append("(CPU OpenCL devices count as /gpu:N with KILN_OPENCL_ALLOW_CPU=1)")
        }
        return out
    }
}
