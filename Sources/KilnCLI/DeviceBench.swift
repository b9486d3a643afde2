import Foundation
import Kiln

/// `kiln bench --device /gpu:N`: the device's own limits, measured in this run with Kiln's
/// device library (the float4 copy kernel's bandwidth, the tiled GEMM's GFLOP/s), which the
/// device's workloads are rated against.
enum DeviceBench {
    static func run(_ o: Options, device spec: String) throws {
        if !o.graphs.isEmpty || !o.feeds.isEmpty || !o.fetches.isEmpty || o.only != nil || o.backend != nil {
            throw UsageError(command: "bench", message: "--device runs the device's limits and standard workloads; a graph, --feed, --fetch, --only and --backend do not apply")
        }
        let n = try gpuIndex(spec)
        let samples = o.quick ? 3 : 7
        print("kiln bench --device \(spec): \(try DeviceLimits.describe(gpu: n))")
        print("method: limits by the device's own clock (OpenCL profiling events, transfers excluded): median and best of \(samples) launches after a warm-up;")
        print("        copy = kiln_copy_f32 (one float4 read and written per work item), rate counts the read and the write;")
        print("        sgemm = kiln_gemm_f32, C = A B on square float32 matrices, 2 n^3 flops; limits are measured now, in this process")
        let l = try DeviceLimits.measure(gpu: n, samples: samples)
        print(String(format: "limits: copy kernel %d MiB %.1f GB/s (best %.1f), library sgemm %d %.1f GFLOP/s (best %.1f; tiles %@)",
                     l.copyBytes >> 20, l.copyGBps, l.copyBestGBps, l.gemmN, l.gemmGFLOPS, l.gemmBestGFLOPS, l.gemmTiles))
        if let jsonPath = o.json {
            let doc: [String: Any] = [
                "device": spec,
                "limits": ["copy_gbps": l.copyGBps, "copy_bytes": l.copyBytes, "sgemm_gflops": l.gemmGFLOPS, "sgemm_n": l.gemmN, "sgemm_tiles": l.gemmTiles],
            ]
            let data = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: jsonPath))
            print("wrote \(jsonPath)")
        }
    }

    /// `/gpu:N`, `/device:GPU:N` or `gpu:N`.
    static func gpuIndex(_ spec: String) throws -> Int {
        let lower = spec.lowercased()
        for prefix in ["/gpu:", "/device:gpu:", "gpu:"] where lower.hasPrefix(prefix) {
            if let n = Int(lower.dropFirst(prefix.count)), n >= 0 { return n }
        }
        throw UsageError(command: "bench", message: "--device takes /gpu:N, got '\(spec)'")
    }
}
