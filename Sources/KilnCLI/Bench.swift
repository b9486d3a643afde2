import Foundation
import Kiln

/// `kiln bench`: each workload is a real graph run through a Session, timed by wall clock after
/// warm-up; we report medians and minima, and ratios against limits measured in the same run.
enum Bench {
    struct Result {
        var name: String
        var median: Double
        var min: Double
        var rate: String
    }

    static func fmt(_ seconds: Double) -> String {
        seconds < 1e-3 ? String(format: "%8.2f us", seconds * 1e6) : String(format: "%8.3f ms", seconds * 1e3)
    }

    static func run(quick: Bool) throws {
        let reps = quick ? 5 : 20
        print("kiln bench: host \(MachineLimits.cpuName), OpenBLAS core \(MachineLimits.blasCoreName) (\(MachineLimits.blasThreads) threads)")
        print("method: wall clock per Session.run after warm-up; median and min over \(reps) samples (sub-ms workloads: each sample averages 1000 runs)")
        var results: [Result] = []

        // Compile: graph build + session + first run, each time in a fresh graph.
        let compile = try Timing.repeatMeasure(warmup: 1, repetitions: reps) {
            let (g, product) = try smallMatmul(fed: false)
            _ = try Session(graph: g).run(product)
        }
        results.append(Result(name: "compile_matmul_small", median: Timing.median(compile), min: compile.min()!, rate: "graph build + JIT + first run"))

        for fed in [false, true] {
            let (g, product) = try smallMatmul(fed: fed)
            let sess = try Session(graph: g)
            var feeds: [Output: Tensor] = [:]
            if fed {
                feeds[try g.tensor(named: "a:0")] = Tensor(shape: [1, 2], scalars: [3, 3] as [Float])
                feeds[try g.tensor(named: "b:0")] = Tensor(shape: [2, 1], scalars: [2, 2] as [Float])
            }
            let t = try Timing.batchedMeasure(warmup: 100, samples: reps, batch: 1000) { _ = try sess.run(product, feeds: feeds) }
            results.append(Result(name: fed ? "matmul_small_fed" : "matmul_small", median: Timing.median(t), min: t.min()!,
                                  rate: "TF1 60-95 us (135 fed), JAX 5-10 us"))
        }

        let n = 1024
        let g = Graph()
        let a = try g.variable(Tensor(shape: [n, n], scalars: (0..<(n * n)).map { Float($0 % 7) * 0.1 }), name: "a")
        let b = try g.variable(Tensor(shape: [n, n], scalars: (0..<(n * n)).map { Float($0 % 5) * 0.1 }), name: "b")
        let p = try g.matmul(a, b)
        let sess = try Session(graph: g)
        try sess.run(try g.globalVariablesInitializer())
        let t = try Timing.repeatMeasure(warmup: 3, repetitions: reps) { _ = try sess.run(p) }
        let flops = 2 * Double(n * n * n)
        let direct = MachineLimits.sgemmGFLOPS(n: n, repetitions: reps)
        let kiln = flops / Timing.median(t) / 1e9
        results.append(Result(name: "matmul_1024", median: Timing.median(t), min: t.min()!,
                              rate: String(format: "%.1f GFLOP/s; direct OpenBLAS sgemm %.1f GFLOP/s; ratio %.2f", kiln, direct.median, kiln / direct.median)))

        print("")
        print("workload                     median         min   notes")
        for r in results {
            print("\(r.name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(fmt(r.median)) \(fmt(r.min))   \(r.rate)")
        }
    }

    /// [[3,3]] x [[2],[2]], with constants or with placeholders a and b.
    static func smallMatmul(fed: Bool) throws -> (Graph, Output) {
        let g = Graph()
        let a = fed ? try g.placeholder(.float32, shape: [1, 2], name: "a") : try g.constant([[3, 3]] as [[Float]])
        let b = fed ? try g.placeholder(.float32, shape: [2, 1], name: "b") : try g.constant([[2], [2]] as [[Float]])
        return (g, try g.matmul(a, b))
    }
}
