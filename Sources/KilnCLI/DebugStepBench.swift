import Foundation
import Kiln

/// `kiln bench`'s debug_step workload: what `DebugSession.run(..., until: "has_inf_or_nan")` costs
/// on the digits training step (the digits CNN with batch norm, Adam and moving averages, batch 64
/// fed as arrays) against plain `Session.run` of the same step. Each kind runs in a graph and
/// session of its own, compiled by warm-up steps; their samples alternate, so a busy machine slows
/// both alike instead of skewing the ratio.
enum DebugStepBench {
    static let name = "debug_step"
    static let batch = 64
    /// Steps averaged into one sample: a training step lasts milliseconds, so a sample of several
    /// evens out the step-to-step jitter without making a quick run slow.
    static let stepsPerSample = 10
    static let warmupSteps = 5

    /// The result's times are the debugger's; the plain median and the ratio are in its note.
    static func run(_ reps: Int) throws -> Bench.Result {
        let plain = try trainingStep(debug: false), debug = try trainingStep(debug: true)
        let (tp, td) = try Bench.alternately(reps, warmup: warmupSteps, (plain, stepsPerSample), (debug, stepsPerSample))
        let (p, d) = (Timing.median(tp), Timing.median(td))
        return Bench.Result(name: name, median: d, min: td.min()!,
                            note: "batch \(batch); plain Session.run \(Bench.fmt(p).trimmingCharacters(in: .whitespaces)), "
                                + String(format: "has_inf_or_nan costs %.2fx", d / p))
    }

    /// One training step of its own graph and session, plain or under the debugger.
    static func trainingStep(debug: Bool) throws -> () throws -> Void {
        try Bench.onDevice { g in
            g.seed = 1
            let images = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
            let labels = try g.placeholder(.int32, shape: [nil], name: "labels")
            let logits = try Bench.digitsCNN(g, images, isTraining: true)
            let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: labels, logits: logits)
            let step = try g.globalStep()
            // Batch norm's moving statistics update with every step, as in the Digits example.
            let minimize = try g.controlDependencies(g.updateOps) {
                try AdamOptimizer(g, learningRate: .constant(3e-3)).minimize(loss, globalStep: step)
            }
            let ema = ExponentialMovingAverage(g, decay: 0.99, numUpdates: step)
            let train = try g.controlDependencies([minimize]) { try g.group([ema.apply(g.trainableVariables)], name: "train") }
            let session = try Session(graph: g, config: SessionConfig(backend: Bench.backend))
            try session.run(g.globalVariablesInitializer())
            let feeds = [images: try Bench.filled([batch, 8, 8, 1]),
                         labels: try Tensor(shape: [batch], scalars: (0..<batch).map { Int32($0 % 10) })]
            if !debug { return { _ = try session.run([loss], feeds: feeds, targets: [train]) } }
            let debugger = DebugSession(wrapping: session)
            return { _ = try debugger.run([loss], feeds: feeds, targets: [train], until: DebugSession.hasInfOrNaNName) }
        }
    }
}
