import ArgumentParser
import Foundation
import Kiln

/// `kiln bench --device /gpu:N`: the standard workloads with every op placed on the device,
/// beside the device's own limits measured in the same run with Kiln's device library (the
/// float4 copy kernel's bandwidth, the tiled GEMM's GFLOP/s), and the ratios issue 12 targets.
enum DeviceBench {
    /// The usage errors of `kiln bench --device`: what does not apply, a device that is not /gpu:N,
    /// an --only that matches no device workload (whose product is at the device's GEMM size).
    static func validate(_ o: Bench, device spec: String) throws {
        if !o.graph.graphs.isEmpty || !o.graph.feeds.isEmpty || !o.graph.fetches.isEmpty || o.graph.backend.kind != nil {
            throw ValidationError("--device runs the standard workloads on the device; a graph, --feed, --fetch and --backend do not apply")
        }
        guard let n = DeviceLimits.gpuIndex(spec) else { throw ValidationError("--device takes one GPU, /gpu:N, got '\(spec)'") }
        guard let only = o.only else { return }
        let matmulName = "matmul_\(try DeviceLimits.gemmSize(gpu: n))"
        let names = workloads(matmulN: 0).flatMap(\.names).map { $0 == "matmul_N" ? matmulName : $0 }
        if !only.contains(where: { w in names.contains { $0.hasPrefix(w) } }) {
            throw ValidationError("no workload matches --only \(only.joined(separator: ",")); the device workloads are \(names.joined(separator: ", "))")
        }
    }

    static func run(_ o: Bench, device spec: String) throws {
        guard let n = DeviceLimits.gpuIndex(spec) else { throw KilnError.invalidArgument("--device takes one GPU, /gpu:N, got '\(spec)'") }
        let described = try DeviceLimits.describe(gpu: n)
        let reps = o.quick ? 5 : 15
        let samples = o.quick ? 3 : 7
        print("kiln bench --device \(spec): \(described)")
        print("method: limits by the device's own clock (OpenCL profiling events, transfers excluded): median and best of \(samples) launches after a warm-up;")
        print("        copy = kiln_copy_f32 (one float4 read and written per work item), rate counts the read and the write;")
        print("        sgemm = kiln_gemm_f32, C = A B on square float32 matrices (4096 on a GPU, 1024 on a CPU device), 2 n^3 flops;")
        print("        workloads: every op placed on \(spec); wall clock of Session.run after warm-up, median and min of \(reps) samples,")
        print("        fused and unfused sampled alternately; matmul_N and eltwise_chain_16M keep inputs and result on the device")
        print("        (variables, an assign as the target), the _fed rows move their feeds and fetches through the host; limits are measured now, in this process")
        let l = try DeviceLimits.measure(gpu: n, samples: samples)
        print(String(format: "limits: copy kernel %d MiB %.1f GB/s (best %.1f), library sgemm %d %.1f GFLOP/s (best %.1f; tiles %@)",
                     l.copyBytes >> 20, l.copyGBps, l.copyBestGBps, l.gemmN, l.gemmGFLOPS, l.gemmBestGFLOPS, l.gemmTiles))

        Bench.device = spec
        Bench.backend = try BackendKind.fromEnvironment()
        let progress = ProgressLine()
        let results = try Bench.runWorkloads(workloads(matmulN: l.gemmN), reps: reps, quick: o.quick, wanted: o.wanted, progress: progress)
        progress.clear()
        Bench.table(results, copy: (l.copyGBps, "copy kernel"), gemm: (l.gemmGFLOPS, "library sgemm"))

        // The ratios issue 12 sets targets for (on a GPU): the fused chain against the copy
        // kernel's bandwidth, the session's matmul against the library's own GEMM.
        let chain = results.first { $0.name == "eltwise_chain_16M" }, matmul = results.first { $0.name == "matmul_\(l.gemmN)" }
        if chain != nil || matmul != nil { print("") }
        if let g = chain?.gbps {
            print(String(format: "ratio: fused elementwise chain / copy kernel = %.1f / %.1f GB/s = %.0f%% (target on a GPU: 80%%)", g, l.copyGBps, 100 * g / l.copyGBps))
        }
        if let g = matmul?.gflops {
            print(String(format: "ratio: matmul_%d / library sgemm %d = %.1f / %.1f GFLOP/s = %.0f%% (the library's share of the float32 peak is the other factor of the 60%% target)",
                         l.gemmN, l.gemmN, g, l.gemmGFLOPS, 100 * g / l.gemmGFLOPS))
        }
        if let jsonPath = o.json {
            try Bench.write(json: [
                "device": spec, "device_description": described,
                "limits": ["copy_gbps": l.copyGBps, "copy_bytes": l.copyBytes, "sgemm_gflops": l.gemmGFLOPS, "sgemm_n": l.gemmN, "sgemm_tiles": l.gemmTiles],
                "workloads": Bench.json(results),
            ], to: jsonPath)
        }
    }

    /// The device's workloads: the CPU bench's, with the product at the library's size and the
    /// elementwise chain kept on the device (`matmul_N` stands for that size in the names).
    static func workloads(matmulN: Int) -> [(names: [String], run: (Int, Bool) throws -> [Bench.Result])] {
        [
            (["matmul_N"], { reps, _ in [try matmul(matmulN, reps)] }),
            (["matmul_small", "matmul_small_fed"], { reps, _ in try Bench.matmulSmall(reps) }),
            (["eltwise_chain_16M", "eltwise_chain_16M_fed"], { reps, _ in [try residentChain(reps)] + (try Bench.eltwiseChain(reps, fed: [true])) }),
            (["reduce_sum_rows"], { reps, _ in [try Bench.reduceSum(reps, axis: 1)] }),
            (["mlp_sgd_step", "mlp_adam_step"], { reps, _ in try Bench.mlp(reps) }),
            (["compile_mlp_sgd", "compile_mlp_sgd_cached", "compile_mlp_adam", "compile_mlp_adam_cached"], { _, quick in try Bench.compileMLP(quick ? 3 : 5) }),
            (["cnn_infer"], { reps, _ in [try Bench.cnnInfer(reps)] }),
        ].map { w in (w.0.map { $0 == "matmul_N" && matmulN > 0 ? "matmul_\(matmulN)" : $0 }, w.1) }
    }

    /// c = a b on the device, a, b and c variables there: the product as the session runs it.
    static func matmul(_ n: Int, _ reps: Int) throws -> Bench.Result {
        let timed = try Bench.both(max(5, reps / 2)) { config in
            try Bench.onDevice { g in
                let a = try g.variable(Bench.filled([n, n], 1), name: "a"), b = try g.variable(Bench.filled([n, n], 2), name: "b")
                let c = try g.variable(g.zeros([n, n]), name: "c")
                let update = try g.assign(c, g.matmul(a, b))
                let s = try Session(graph: g, config: config)
                try s.run(g.globalVariablesInitializer())
                return (s, { try s.run(update.op) })
            }
        }
        return Bench.result("matmul_\(n)", timed, gflops: 2 * Double(n) * Double(n) * Double(n) / timed.median / 1e9, note: "c = a b, all variables on the device")
    }

    /// The CPU bench's chain y = tanh(x*0.5 + 1) * x - 0.25*x*x over 16M float32, x and y
    /// variables on the device: one read and one write of 64 MiB, nothing through the host.
    static func residentChain(_ reps: Int) throws -> Bench.Result {
        let n = 16 << 20
        let timed = try Bench.both(max(5, reps / 2)) { config in
            try Bench.onDevice { g in
                let x = try g.variable(Bench.filled([n]), name: "x").value
                let y = try g.variable(g.zeros([n]), name: "y")
                let update = try g.assign(y, (g.tanh(x * 0.5 + 1) * x) - (x * 0.25) * x)
                let s = try Session(graph: g, config: config)
                try s.run(g.globalVariablesInitializer())
                return (s, { try s.run(update.op) })
            }
        }
        return Bench.result("eltwise_chain_16M", timed, gbps: 2 * Double(n * 4) / timed.median / 1e9, note: "y = f(x), both variables on the device")
    }
}
