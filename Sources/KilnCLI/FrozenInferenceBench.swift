import Kiln

/// `cnn_infer_frozen`: the digits CNN of `cnn_infer` frozen as TensorFlow's
/// convert_variables_to_constants freezes it (weights and batch-norm statistics become
/// constants, so batch norm folds into the convolutions' weights), batch 256. Sampled alternately
/// with the same graph unfused and with the unfrozen graph (variables), whose ratio the note gives.
enum FrozenInferenceBench {
    static let name = "cnn_infer_frozen"

    static func run(_ reps: Int) throws -> Bench.Result {
        let feeds = try Bench.filled([256, 8, 8, 1])
        let (trained, images, logits) = try Bench.onDevice { g in
            let images = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
            let logits = try Bench.digitsCNN(g, images, isTraining: false)
            let s = try Session(graph: g, config: SessionConfig(backend: Bench.backend))
            try s.run(g.globalVariablesInitializer())
            return (s, images, logits)
        }
        let frozen = try GraphUtil.convertVariablesToConstants(trained, trained.graph.graphDef(), outputNodeNames: [logits.op.name])
        func session(_ config: SessionConfig) throws -> () throws -> Void {
            try Bench.onDevice { g in
                try g.importGraphDef(frozen, prefix: "")
                guard let x = g.operation(named: images.op.name)?.output(), let y = g.operation(named: logits.op.name)?.output() else {
                    throw KilnError.internalError("the frozen CNN lost its input or logits")
                }
                let s = try Session(graph: g, config: config)
                let feed = [x: feeds]
                return { _ = try s.run(y, feeds: feed) }
            }
        }
        let fused = try session(SessionConfig(backend: Bench.backend)), unfused = try session(SessionConfig(fusion: false, backend: Bench.backend))
        let variables = { _ = try trained.run(logits, feeds: [images: feeds]) }
        let t = try Bench.alternately(reps, warmup: 2, [(fused, try Bench.batchSize(fused)), (unfused, try Bench.batchSize(unfused)),
                                                        (variables, try Bench.batchSize(variables))])
        let median = Timing.median(t[0]), withVariables = Timing.median(t[2])
        return Bench.Result(name: name, median: median, min: t[0].min()!, unfused: Timing.median(t[1]), fusionApplies: true,
                            gbps: nil, gflops: nil,
                            note: "batch 256, weights constants; with variables \(String(format: "%.3f", withVariables * 1e3)) ms in the same run (\(String(format: "%.2f", withVariables / median))x)")
    }
}
