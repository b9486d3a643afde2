import ArgumentParser
import Foundation
import Kiln

/// `kiln bench`: the standard workloads, each a real graph run through a Session and timed by wall
/// clock after warm-up. Prints medians and minima, rates, the ratio to the same graph compiled
/// with fusion off, and ratios to the machine's limits measured in the same run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the standard workloads (or a user's graph) and print medians, minima, rates and ratios to the machine's limits.",
        discussion: """
            The standard workloads print medians and minima, rates, the ratio to fusion off and to the machine's limits measured \
            in the same run. With GRAPH, --feed and --fetch: the same for a user's graph. With --device /gpu:N: the device's \
            limits (copy bandwidth, the GEMM library's GFLOP/s) measured in the same run as the standard workloads on the device.
            """)

    @OptionGroup var graph: GraphRunOptions

    @Flag(help: "Fewer samples: 5 instead of 15.")
    var quick = false

    @Option(help: ArgumentHelp("Run only the workloads whose names start with one of the NAMEs (e.g. mlp,compile).", valueName: "NAME[,NAME...]"),
            transform: commaList)
    var only: [String]?

    @Option(help: ArgumentHelp("Also write the results as JSON to FILE.", valueName: "FILE"))
    var json: String?

    @Option(help: ArgumentHelp("Run the standard workloads on an OpenCL device beside its limits.", valueName: "/gpu:N"))
    var device: String?

    @Flag(help: "Run the workloads TensorFlow 1, XLA, JAX and ONNX Runtime also run, interleaved with theirs (their scripts, with the Python of --python), and print the ratios.")
    var peers = false

    @Option(help: ArgumentHelp("The Python --peers runs the peers' scripts with (default: KILN_PEERS_PYTHON, else python3 on PATH).", valueName: "PATH"))
    var python: String?

    func validate() throws {
        if python != nil && !peers { throw ValidationError("--python is the Python of --peers; give --peers too") }
        if peers && (device != nil || !graph.graphs.isEmpty) { throw ValidationError("--peers runs the standard workloads on the CPU; not with --device or a graph file") }
        if let device { return try DeviceBench.validate(self, device: device) }
        let file = try graph.singleGraph(required: false)
        if file == nil && !(graph.feeds.isEmpty && graph.fetches.isEmpty) { throw ValidationError("--feed and --fetch need a graph file") }
        if file != nil && only != nil { throw ValidationError("--only selects standard workloads; not with a graph file") }
        if file != nil && graph.fetches.isEmpty { throw ValidationError("nothing to fetch (give --fetch NAME)") }
        if let only, !peers, !only.contains(where: { n in Bench.workloadNames.contains { $0.hasPrefix(n) } }) {
            throw ValidationError("no workload matches --only \(only.joined(separator: ",")); the workloads are \(Bench.workloadNames.joined(separator: ", "))")
        }
    }

    struct Result {
        var name: String
        var median: Double
        var min: Double
        var unfused: Double?
        /// False where fusion changes no kernel (the unfused run is the same code: printed as such,
        /// its time kept in the JSON); nil where fusion was not compared.
        var fusionApplies: Bool? = nil
        var gbps: Double?
        var gflops: Double?
        /// Records per second, for the input pipeline.
        var recordsPerSecond: Double? = nil
        var note: String
    }

    static func result(_ name: String, _ t: Timed, gbps: Double? = nil, gflops: Double? = nil, note: String) -> Result {
        Result(name: name, median: t.median, min: t.min, unfused: t.unfused, fusionApplies: t.fusionApplies, gbps: gbps, gflops: gflops, note: note)
    }

    /// A workload timed fused and unfused (see `both`).
    struct Timed {
        var median, min, unfused: Double
        var fusionApplies: Bool
    }

    /// The code generator every measured session compiles with (--backend, else KILN_BACKEND);
    /// set once before any workload runs.
    nonisolated(unsafe) static var backend = BackendKind.llvm
    /// The device every workload's ops are placed on: `/cpu:0`, or `--device /gpu:N` (set once
    /// before any workload runs). Explicit, so that a GPU present (or PoCL standing in for one)
    /// never moves the CPU bench off the CPU.
    nonisolated(unsafe) static var device = "/cpu:0"

    /// A new graph whose ops `body` builds on the benchmarked device.
    static func onDevice<R>(_ body: (Graph) throws -> R) rethrows -> R {
        let g = Graph()
        return try g.device(device) { try body(g) }
    }

    static func fmt(_ seconds: Double) -> String {
        seconds < 1e-3 ? String(format: "%9.2f us", seconds * 1e6) : String(format: "%9.3f ms", seconds * 1e3)
    }

    /// The standard workloads: the names of the results each group produces, and how to run it
    /// (repetitions, quick mode).
    static let workloads: [(names: [String], run: @Sendable (Int, Bool) throws -> [Result])] = [
        (["matmul_1024"], { reps, _ in [try matmul1024(reps)] }),
        (["matmul_small", "matmul_small_fed"], { reps, _ in try matmulSmall(reps) }),
        (["eltwise_chain_16M", "eltwise_chain_16M_fed"], { reps, _ in try eltwiseChain(reps) }),
        (["reduce_sum_rows"], { reps, _ in [try reduceSum(reps, axis: 1)] }),
        (["reduce_sum_cols"], { reps, _ in [try reduceSum(reps, axis: 0)] }),
        (["mlp_sgd_step", "mlp_adam_step"], { reps, _ in try mlp(reps) }),
        (BatchTemplateBench.names, { reps, _ in try BatchTemplateBench.run(reps) }),
        (["compile_mlp_sgd", "compile_mlp_sgd_cached", "compile_mlp_adam", "compile_mlp_adam_cached"], { _, quick in try compileMLP(quick ? 3 : 5) }),
        (["cnn_infer"], { reps, _ in [try cnnInfer(reps)] }),
        ([FrozenInferenceBench.name], { reps, _ in [try FrozenInferenceBench.run(reps)] }),
        (DigitsTrainBench.names, { reps, _ in try DigitsTrainBench.run(reps) }),
        (InputPipelineBench.names, { reps, quick in try InputPipelineBench.run(reps, quick: quick) }),
        ([DigitsInputBench.name], { reps, _ in [try DigitsInputBench.run(reps)] }),
        ([DebugStepBench.name], { reps, _ in [try DebugStepBench.run(reps)] }),
        (HalfProductBench.names, { reps, _ in try HalfProductBench.run(reps) }),
    ]
    static var workloadNames: [String] { workloads.flatMap(\.names) }

    func run() throws {
        if let device { return try DeviceBench.run(self, device: device) }
        if peers {
            Bench.backend = try graph.backend.kind ?? BackendKind.fromEnvironment()
            return try PeerBench.run(self, python: python)
        }
        // A graph that cannot be imported or fed fails before a second is spent measuring limits.
        if let file = graph.graphs.first { _ = try Run.load(graph: file, feeds: graph.feedFiles, fetches: graph.fetches) }
        let reps = quick ? 5 : 15
        Bench.backend = try graph.backend.kind ?? BackendKind.fromEnvironment()
        print("kiln bench: host \(MachineLimits.cpuName), OpenBLAS core \(MachineLimits.blasCoreName), \(ProcessInfo.processInfo.activeProcessorCount) cores, backend \(Bench.backend.rawValue)")
        print("method: wall clock of Session.run after warm-up; median and min of \(reps) samples (sub-ms workloads: each sample is the mean of a batch of runs);")
        print("        'unfused' is the same graph compiled with fusion off, sampled alternately with it ('same code' where fusion changes no kernel);")
        print("        limits are measured now, in this process;")
        print("        input_pipeline_Nt: records/s of Session.run of shuffle_batch(128) fed by N reader threads (TFRecord -> parse -> decode_raw),")
        print("        median of full passes over 100,000 Examples written by Kiln, after 20 warm-up batches (scripts/peers/input_pipeline.py: TF's)")
        print("        digits_input: the digits training step (batch 64) fed by the queue pipeline from a TFRecord file (one reader thread),")
        print("        alternating with the same step fed arrays, in one session, \(DigitsInputBench.stepsPerSample) steps a sample; both rates in the note")
        print("        mlp_sgd_any_batch: mlp_sgd_step on one executable compiled for every batch up to 128, at batch 128, alternating with the step")
        print("        compiled for 128 alone; _short_batch: the same at batch \(BatchTemplateBench.short); _new_batch: a first run of batch \(BatchTemplateBench.short) after 128, median of 3")
        print("        debug_step: the digits training step (batch 64) under DebugSession.run(until: has_inf_or_nan), alternating with plain Session.run")
        print("        in a session of its own, \(DebugStepBench.stepsPerSample) steps a sample; the plain median and the ratio in the note")
        print("        matmul_half_SHAPE_T: one MatMul of variables of type T (f32, f16, bf16) through Session.run, the three types sampled")
        print("        alternately; each half note: its speed as a multiple of float32's in the same run, and how the half kernel computes")
        // On a terminal, what is being measured now; nothing extra in logs and pipes.
        let progress = ProgressLine()
        progress.update("measuring the machine's limits ...", force: true)
        let copy = MachineLimits.copyGBps(bytes: 256 << 20, repetitions: quick ? 3 : 7)
        let sgemm = MachineLimits.sgemmGFLOPS(n: 2048, repetitions: quick ? 3 : 7)
        progress.line(String(format: "limits: memcpy 256 MiB %.1f GB/s (read+write, all cores), OpenBLAS sgemm 2048 %.1f GFLOP/s (all cores)", copy.median, sgemm.median))

        var results: [Result] = []
        if let file = graph.graphs.first {
            progress.update("running \((file as NSString).lastPathComponent) ...", force: true)
            results.append(try Bench.userGraph(file, feeds: graph.feedFiles, fetches: graph.fetches, reps: reps))
        } else {
            // --only NAME[,NAME...] runs the workloads whose names start with one of the NAMEs,
            // e.g. --only mlp,compile or --only mlp_sgd_step.
            results = try Bench.runWorkloads(Bench.workloads.map { ($0.names, $0.run) }, reps: reps, quick: quick, wanted: wanted, progress: progress)
        }
        progress.clear()

        Bench.table(results, copy: (copy.median, "memcpy"), gemm: (sgemm.median, "sgemm"))
        if let jsonPath = json {
            try Bench.write(json: ["limits": ["copy_gbps": copy.median, "sgemm_gflops": sgemm.median], "workloads": Bench.json(results)], to: jsonPath)
        }
    }

    /// The workloads `wanted` selects, each announced on the progress line as it starts (with
    /// how many are done) and printed when it finishes.
    static func runWorkloads(_ workloads: [(names: [String], run: (Int, Bool) throws -> [Result])], reps: Int, quick: Bool,
                             wanted: (String) -> Bool, progress: ProgressLine) throws -> [Result] {
        let selected = workloads.filter { $0.names.contains(where: wanted) }
        var results: [Result] = []
        for (i, w) in selected.enumerated() {
            progress.update("[\(i + 1)/\(selected.count)] running \(w.names.filter(wanted).joined(separator: ", ")) ...", force: true)
            let done = try w.run(reps, quick).filter { wanted($0.name) }
            results += done
            if progress.isTerminal {
                for r in done { progress.line("  \(r.name): median \(fmt(r.median).trimmingCharacters(in: .whitespaces))") }
            }
        }
        return results
    }

    /// Whether --only selects the workload `name` (all without --only): names that start with one of its NAMEs.
    func wanted(_ name: String) -> Bool { only.map { $0.contains { name.hasPrefix($0) } } ?? true }

    /// The results, each rate also as a fraction of the limit it is bounded by.
    static func table(_ results: [Result], copy: (gbps: Double, name: String), gemm: (gflops: Double, name: String)) {
        print("")
        print("workload                     median         min     unfused   rate / notes")
        for r in results {
            var rate = ""
            if let g = r.gbps { rate = String(format: "%.1f GB/s = %.0f%% of %@", g, 100 * g / copy.gbps, copy.name) }
            if let g = r.gflops { rate = String(format: "%.1f GFLOP/s = %.0f%% of %@", g, 100 * g / gemm.gflops, gemm.name) }
            if let n = r.recordsPerSecond { rate = String(format: "%.0f records/s", n) }
            let unfused = r.fusionApplies == false ? "   same code" : r.unfused.map { fmt($0) } ?? String(repeating: " ", count: 12)
            print("\(r.name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(fmt(r.median)) \(fmt(r.min)) \(unfused)   \(rate)\(rate.isEmpty || r.note.isEmpty ? "" : "; ")\(r.note)")
        }
    }

    static func json(_ results: [Result]) -> [[String: Any]] {
        results.map { r -> [String: Any] in
            ["name": r.name, "median_ms": r.median * 1e3, "min_ms": r.min * 1e3,
             "unfused_median_ms": r.unfused.map { $0 * 1e3 } as Any? ?? NSNull(), "fusion_applies": r.fusionApplies as Any? ?? NSNull(),
             "gbps": r.gbps as Any? ?? NSNull(), "gflops": r.gflops as Any? ?? NSNull(),
             "records_per_second": r.recordsPerSecond as Any? ?? NSNull()]
        }
    }

    static func write(json doc: [String: Any], to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
        print("wrote \(path)")
    }

    /// A user's GraphDef, fed from .npy files: the rate is GFLOP/s of its matrix products and
    /// convolutions when it has any, else GB/s of the least traffic any implementation needs (every
    /// feed and variable read once, every fetch written once).
    static func userGraph(_ path: String, feeds feedFiles: [(name: String, file: String)], fetches names: [String], reps: Int) throws -> Result {
        var summary: RunSummary?
        let timed = try both(reps) { config in
            let (g, feeds, fetches) = try Run.load(graph: path, feeds: feedFiles, fetches: names, device: device)
            let s = try Session(graph: g, config: config)
            let vars = g.globalVariables
            if !vars.isEmpty { try s.run(targets: [g.globalVariablesInitializer()]) }
            _ = try s.run(fetches, feeds: feeds)
            summary = summary ?? s.lastRunSummary
            return (s, { _ = try s.run(fetches, feeds: feeds) })
        }
        let name = (path as NSString).lastPathComponent
        guard let summary else { return result(name, timed, note: "computed on the host") }
        let note = "\(summary.kernels) kernels, arena \(summary.arenaBytes) B"
        if summary.matrixFLOPs > 0 {
            return result(name, timed, gflops: summary.matrixFLOPs / timed.median / 1e9, note: note + "; rate counts matrix products and convolutions")
        }
        return result(name, timed, gbps: summary.minimumBytes / timed.median / 1e9, note: note + "; rate counts one read of the inputs, one write of the fetches")
    }

    /// Runs per sample so that a sample lasts well above the clock's resolution.
    static func batchSize(_ body: () throws -> Void) throws -> Int {
        try body()
        let t0 = Timing.now()
        try body()
        let once = Double(Timing.now() - t0) / 1e9
        return once < 1e-4 ? 1000 : once < 1e-3 ? 50 : 1
    }

    /// The workload with fusion on and off; `build` returns the session and the run to time. The
    /// two are sampled alternately, so a noisy neighbour slows both alike instead of skewing their
    /// ratio. The last value says whether fusion changed the kernels at all: where it did not, the
    /// two runs execute the same code and any difference between them is noise.
    static func both(_ reps: Int, _ build: (SessionConfig) throws -> (Session, () throws -> Void)) throws -> Timed {
        let (fs, fused) = try build(SessionConfig(backend: backend)), (us, unfused) = try build(SessionConfig(fusion: false, backend: backend))
        let (tf, tu) = try alternately(reps, warmup: 2, (fused, try batchSize(fused)), (unfused, try batchSize(unfused)))
        return Timed(median: Timing.median(tf), min: tf.min()!, unfused: Timing.median(tu),
                     fusionApplies: fs.lastRunSummary?.kernels != us.lastRunSummary?.kernels)
    }

    /// `reps` samples of each of two runs, taken in turn (each sample the mean of `batch` calls)
    /// after `warmup` calls of each, so a noisy neighbour slows both alike.
    static func alternately(_ reps: Int, warmup: Int, _ a: (run: () throws -> Void, batch: Int),
                            _ b: (run: () throws -> Void, batch: Int)) throws -> ([Double], [Double]) {
        let t = try alternately(reps, warmup: warmup, [a, b])
        return (t[0], t[1])
    }

    /// The same for any number of runs, sampled in turn: each run's samples.
    static func alternately(_ reps: Int, warmup: Int, _ runs: [(run: () throws -> Void, batch: Int)]) throws -> [[Double]] {
        for _ in 0..<warmup { for r in runs { try r.run() } }
        var times = [[Double]](repeating: [], count: runs.count)
        for _ in 0..<reps {
            for (i, r) in runs.enumerated() { times[i] += try Timing.batchedMeasure(warmup: 0, samples: 1, batch: r.batch, r.run) }
        }
        return times
    }

    static func filled(_ shape: [Int], _ k: Int = 1) throws -> Tensor {
        let n = shape.reduce(1, *)
        return try Tensor(shape: shape, scalars: (0..<n).map { Float(($0 &* 7 &+ k) % 13) * 0.05 - 0.3 })
    }

    static func matmul1024(_ reps: Int) throws -> Result {
        let n = 1024
        let timed = try both(reps) { config in
            return try onDevice { g in
                let a = try g.variable(filled([n, n], 1), name: "a"), b = try g.variable(filled([n, n], 2), name: "b")
                let p = try g.matmul(a, b)
                let s = try Session(graph: g, config: config)
                try s.run(g.globalVariablesInitializer())
                return (s, { _ = try s.run(p) })
            }
        }
        return result("matmul_1024", timed, gflops: 2 * Double(n * n * n) / timed.median / 1e9, note: "")
    }

    static func matmulSmall(_ reps: Int) throws -> [Result] {
        try [false, true].map { (fed: Bool) -> Result in
            let timed = try both(reps) { config in
                return try onDevice { g in
                    let a = fed ? try g.placeholder(.float32, shape: [1, 2], name: "a") : try g.constant([[3, 3]] as [[Float]])
                    let b = fed ? try g.placeholder(.float32, shape: [2, 1], name: "b") : try g.constant([[2], [2]] as [[Float]])
                    let p = try g.matmul(a, b)
                    let s = try Session(graph: g, config: config)
                    let feeds: [Output: Tensor] = fed ? [a: try Tensor(shape: [1, 2], scalars: [3, 3] as [Float]), b: try Tensor(shape: [2, 1], scalars: [2, 2] as [Float])] : [:]
                    return (s, { _ = try s.run(p, feeds: feeds) })
                }
            }
            return result(fed ? "matmul_small_fed" : "matmul_small", timed, note: "per Session.run")
        }
    }

    /// y = tanh(x*0.5 + 1) * x - 0.25*x*x over 16M float32: one read and one write of 64 MiB.
    static func eltwiseChain(_ reps: Int, fed variants: [Bool] = [false, true]) throws -> [Result] {
        let n = 16 << 20
        let x0 = try filled([n])
        return try variants.map { (fed: Bool) -> Result in
            let timed = try both(max(5, reps / 2)) { config in
                return try onDevice { g in
                    let x: Output
                    var feeds: [Output: Tensor] = [:]
                    if fed {
                        x = try g.placeholder(.float32, shape: [n], name: "x")
                        feeds[x] = x0
                    } else { x = try g.variable(x0, name: "x").value }
                    let y = try (g.tanh(x * 0.5 + 1) * x) - (x * 0.25) * x
                    let s = try Session(graph: g, config: config)
                    if !fed { try s.run(g.globalVariablesInitializer()) }
                    return (s, { _ = try s.run(y, feeds: feeds) })
                }
            }
            return result(fed ? "eltwise_chain_16M_fed" : "eltwise_chain_16M", timed, gbps: 2 * Double(n * 4) / timed.median / 1e9, note: "TF1 24-44 ms, XLA 5-12 ms")
        }
    }

    /// The sum over `axis` of a [4096, 4096] float32 variable: over its rows (axis 1, each output
    /// a contiguous row) or its columns (axis 0, each output a strided column).
    static func reduceSum(_ reps: Int, axis: Int) throws -> Result {
        let n = 4096
        let timed = try both(max(5, reps / 2)) { config in
            return try onDevice { g in
                let x = try g.variable(filled([n, n]), name: "x")
                let y = try g.reduceSum(x, axes: [axis])
                let s = try Session(graph: g, config: config)
                try s.run(g.globalVariablesInitializer())
                return (s, { _ = try s.run(y) })
            }
        }
        return result(axis == 1 ? "reduce_sum_rows" : "reduce_sum_cols", timed, gbps: Double(n * n * 4) / timed.median / 1e9, note: "")
    }

    /// A 784-200-10 relu MLP with softmax cross entropy, batch 128 fed every step, lr 0.01.
    static func mlpGraph(adam: Bool) throws -> (Graph, Output, Output, GraphOperation) {
        return try onDevice { g in
            g.seed = 1
            let x = try g.placeholder(.float32, shape: [nil, 784], name: "x")
            let y = try g.placeholder(.int64, shape: [nil], name: "y")
            let w1 = try g.variable(g.truncatedNormal([784, 200], stddev: 0.05), name: "w1"), b1 = try g.variable(g.zeros([200]), name: "b1")
            let w2 = try g.variable(g.truncatedNormal([200, 10], stddev: 0.05), name: "w2"), b2 = try g.variable(g.zeros([10]), name: "b2")
            let h = try g.relu(g.add(g.matmul(x, w1), b1))
            let logits = try g.add(g.matmul(h, w2), b2)
            let loss = try g.reduceMean(g.sparseSoftmaxCrossEntropyWithLogits(labels: y, logits: logits))
            let train = adam ? try AdamOptimizer(g, learningRate: 0.01).minimize(loss) : try GradientDescentOptimizer(g, learningRate: 0.01).minimize(loss)
            return (g, x, y, train)
        }
    }

    static func mlpFeeds(_ x: Output, _ y: Output) throws -> [Output: Tensor] {
        [x: try filled([128, 784], 3), y: try Tensor(shape: [128], scalars: (0..<128).map { Int64($0 % 10) })]
    }

    static func mlp(_ reps: Int) throws -> [Result] {
        try [false, true].map { (adam: Bool) -> Result in
            let timed = try both(reps) { config in
                let (g, x, y, train) = try mlpGraph(adam: adam)
                let s = try Session(graph: g, config: config)
                try s.run(g.globalVariablesInitializer())
                let feeds = try mlpFeeds(x, y)
                return (s, { try s.run(train, feeds: feeds) })
            }
            return result(adam ? "mlp_adam_step" : "mlp_sgd_step", timed, note: adam ? "" : "TF1 1.0-1.4 ms, JAX 0.65-1.0 ms")
        }
    }

    /// `body` with a session configuration for a first run (the compiled-code cache off) and
    /// then for a second run (a cache of its own, filled by the body's warm-up), told which.
    static func firstAndSecondRun<T>(_ body: (SessionConfig, _ cached: Bool) throws -> T) throws -> [T] {
        let cacheDir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: cacheDir) }
        return try [false, true].map { cached in
            var config = SessionConfig(backend: backend)
            config.codeCacheDirectory = cached ? cacheDir.path : "off"
            return try body(config, cached)
        }
    }

    /// Graph construction plus the first training step (which compiles), in a fresh graph each
    /// time: with the compiled-code cache off (a first run), then with a cache the warm-up run
    /// filled (a second run of the same program: `_cached`, which links and compiles nothing).
    static func compileMLP(_ reps: Int) throws -> [Result] {
        try [false, true].flatMap { (adam: Bool) -> [Result] in
            try firstAndSecondRun { config, cached in
                let t = try Timing.repeatMeasure(warmup: 1, repetitions: reps) {
                    let (g, x, y, train) = try mlpGraph(adam: adam)
                    let s = try Session(graph: g, config: config)
                    try s.run(g.globalVariablesInitializer())
                    try s.run(train, feeds: mlpFeeds(x, y))
                }
                let name = (adam ? "compile_mlp_adam" : "compile_mlp_sgd") + (cached ? "_cached" : "")
                let note = cached ? "second run: compiled code from the disk cache" : adam ? "graph build + init + first step" : "TF1 60-100 ms, XLA 230-500 ms"
                return Result(name: name, median: Timing.median(t), min: t.min()!, note: note)
            }
        }
    }

    /// The digits CNN's logits for [batch, 8, 8, 1] images: conv 3x3x16 + BN + relu, conv 3x3x32 +
    /// BN + relu, max-pool, dense 64, dense 10. Batch norm updates its moving statistics (the
    /// `updateOps`) when training; `dropout` (Examples/Digits' training) drops half of the dense
    /// layer's outputs.
    static func digitsCNN(_ g: Graph, _ images: Output, isTraining: Bool, dropout: Bool = false) throws -> Output {
        let bn = Normalizer.batchNorm(decay: 0.9, isTraining: isTraining)
        return try g.argScope(LayerDefaults(activation: .relu, padding: "SAME")) { () throws -> Output in
            var h = try g.convolution2d(images, 16, kernelSize: [3], normalizer: bn, scope: "conv1")
            h = try g.convolution2d(h, 32, kernelSize: [3], normalizer: bn, scope: "conv2")
            h = try g.maxPool2d(h, kernelSize: [2], stride: 2)
            h = try g.fullyConnected(g.flatten(h), 64, scope: "fc1")
            if dropout { h = try g.dropout(h, keepProb: 0.5, isTraining: isTraining) }
            return try g.fullyConnected(h, 10, activation: .identity, scope: "logits")
        }
    }

    /// The digits CNN (see `digitsCNN`), inference at batch 256.
    static func cnnInfer(_ reps: Int) throws -> Result {
        let timed = try both(reps) { config in
            return try onDevice { g in
                let images = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
                let logits = try digitsCNN(g, images, isTraining: false)
                let s = try Session(graph: g, config: config)
                try s.run(g.globalVariablesInitializer())
                let feeds = [images: try filled([256, 8, 8, 1])]
                return (s, { _ = try s.run(logits, feeds: feeds) })
            }
        }
        return result("cnn_infer", timed, note: "batch 256")
    }
}
