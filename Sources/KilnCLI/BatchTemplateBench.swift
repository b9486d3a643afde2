import Foundation
import Kiln

/// `kiln bench`'s batch-template workloads: the MLP SGD step (mlp_sgd_step's graph) on one
/// executable compiled for every batch up to 128 (`SessionConfig.batchTemplates`), against the
/// same step compiled for each batch alone, samples alternating in one run.
/// - mlp_sgd_any_batch: batch 128 on both (what taking the batch at run time costs).
/// - mlp_sgd_short_batch: batch 37, on the batch-128 executable and on one compiled for 37.
/// - mlp_sgd_new_batch: the first run of batch 37 after batch 128 in a fresh session: checking
///   that the batch-128 executable computes it, against compiling it (three sessions each).
enum BatchTemplateBench {
    static let names = ["mlp_sgd_any_batch", "mlp_sgd_short_batch", "mlp_sgd_new_batch"]
    static let short = 37

    static func run(_ reps: Int) throws -> [Bench.Result] {
        var results: [Bench.Result] = []
        for n in [128, short] {
            let (template, _) = try step(templates: true, batch: n), (alone, _) = try step(templates: false, batch: n)
            let (tt, ta) = try Bench.alternately(reps, warmup: 2, (template, try Bench.batchSize(template)), (alone, try Bench.batchSize(alone)))
            let (t, a) = (Timing.median(tt), Timing.median(ta))
            results.append(Bench.Result(name: n == 128 ? names[0] : names[1], median: t, min: tt.min()!,
                                        note: "batch \(n) on the batch-128 executable; compiled for \(n) alone \(Bench.fmt(a).trimmingCharacters(in: .whitespaces)), "
                                            + String(format: "%.3fx its time", t / a)))
        }
        var first: [[Double]] = [[], []]
        for _ in 0..<3 {
            for (k, templates) in [true, false].enumerated() {
                let (_, newBatch) = try step(templates: templates, batch: 128)
                let t0 = Timing.now()
                try newBatch()
                first[k].append(Double(Timing.now() - t0) / 1e9)
            }
        }
        let (t, c) = (Timing.median(first[0]), Timing.median(first[1]))
        results.append(Bench.Result(name: names[2], median: t, min: first[0].min()!,
                                    note: "first run of batch \(short) after 128: checked against the batch-128 executable; compiling it \(Bench.fmt(c).trimmingCharacters(in: .whitespaces))"))
        return results
    }

    /// The MLP step's session, initialised and run once at batch 128, then run at `batch`
    /// once (compiling, or checked against a template): a step at `batch`, and a first run of
    /// the short batch for a session that has only run batch 128.
    static func step(templates: Bool, batch: Int) throws -> (() throws -> Void, () throws -> Void) {
        let (g, x, y, train) = try Bench.mlpGraph(adam: false)
        var config = SessionConfig(backend: Bench.backend)
        config.batchTemplates = templates
        config.codeCacheDirectory = "off"
        let s = try Session(graph: g, config: config)
        try s.run(g.globalVariablesInitializer())
        try s.run(train, feeds: Bench.mlpFeeds(x, y))
        let feeds = try Bench.mlpFeeds(x, y).mapValues { t in
            try Tensor(dtype: t.dtype, shape: [batch] + t.shape.dropFirst(), buffer: t.buffer)
        }
        let shortFeeds = try Bench.mlpFeeds(x, y).mapValues { t in
            try Tensor(dtype: t.dtype, shape: [short] + t.shape.dropFirst(), buffer: t.buffer)
        }
        return ({ try s.run(train, feeds: feeds) }, { try s.run(train, feeds: shortFeeds) })
    }
}
