import Foundation
import Kiln

/// `kiln bench`'s matmul_half workload: GFLOP/s of one MatMul in float32, float16 and bfloat16
/// through Session.run (operands in variables of that type), at 1024x1024x1024 and at the digits
/// model's product shapes (batch 64). The three types' samples alternate, so a busy machine
/// slows them alike; each half result's note gives its ratio to float32 from the same run and how
/// Kiln's half kernel computes on this CPU.
enum HalfProductBench {
    /// (name, m, n, k, transpose A): 1024 cubed; the digits CNN's second convolution as patches
    /// times weights (c2), its weight gradient (c2w: patches' x dy summed over 4096 positions), fc1.
    static let shapes: [(name: String, m: Int, n: Int, k: Int, transposeA: Bool)] = [
        ("1024", 1024, 1024, 1024, false), ("c2", 4096, 32, 144, false), ("c2w", 144, 32, 4096, true), ("fc1", 64, 64, 512, false),
    ]
    static let dtypes: [(suffix: String, dtype: DType)] = [("f32", .float32), ("f16", .float16), ("bf16", .bfloat16)]
    static var names: [String] { shapes.flatMap { s in dtypes.map { "matmul_half_\(s.name)_\($0.suffix)" } } }

    static func run(_ reps: Int) throws -> [Bench.Result] {
        var results: [Bench.Result] = []
        for s in shapes {
            let runs = try dtypes.map { try product(s.m, s.n, s.k, transposeA: s.transposeA, $0.dtype) }
            let times = try Bench.alternately(reps, warmup: 2, try runs.map { ($0, try Bench.batchSize($0)) })
            let flops = 2 * Double(s.m) * Double(s.n) * Double(s.k)
            let f32 = Timing.median(times[0])
            for (i, d) in dtypes.enumerated() {
                let median = Timing.median(times[i])
                let shape = "\(s.m)x\(s.n)x\(s.k)\(s.transposeA ? " A'" : "")"
                let note = i == 0 ? "\(shape), kiln_sgemm"
                    : String(format: "%@, %.2fx float32 (%.1f GFLOP/s); %@", shape, f32 / median, flops / f32 / 1e9,
                             MachineLimits.halfProductMethod(d.dtype))
                results.append(Bench.Result(name: "matmul_half_\(s.name)_\(d.suffix)", median: median, min: times[i].min()!,
                                            gflops: flops / median / 1e9, note: note))
            }
        }
        return results
    }

    /// C = op(A) B of `dtype` variables, in a graph and session of its own.
    static func product(_ m: Int, _ n: Int, _ k: Int, transposeA: Bool, _ dtype: DType) throws -> () throws -> Void {
        try Bench.onDevice { g in
            let a = try g.variable(g.cast(g.constant(Bench.filled(transposeA ? [k, m] : [m, k], 1)), to: dtype), name: "a")
            let b = try g.variable(g.cast(g.constant(Bench.filled([k, n], 2)), to: dtype), name: "b")
            let p = try g.matmul(a, b, transposeA: transposeA)
            let s = try Session(graph: g, config: SessionConfig(backend: Bench.backend))
            try s.run(g.globalVariablesInitializer())
            return { _ = try s.run(p) }
        }
    }
}
