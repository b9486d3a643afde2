import ArgumentParser
import Foundation
import Kiln

/// `kiln debug-cost`: what `run(..., until: "has_inf_or_nan")` costs on the digits training step
/// (the Digits example's CNN with batch norm, Adam and moving averages, batch 64 fed as arrays):
/// the median of plain `Session.run` steps against the median of DebugSession steps counting
/// non-finite values, each in a session of its own after a compiling warm-up.
struct DebugCost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-cost",
        abstract: "Time the digits training step plain and under `run --until has_inf_or_nan`.")

    @Option(help: "Timed steps of each kind.") var steps = 200
    @OptionGroup var backend: BackendOption

    func run() throws {
        let plain = try DebugCost.trainingStep(backend: backend.kind, debug: false)
        let debug = try DebugCost.trainingStep(backend: backend.kind, debug: true)
        for _ in 0..<5 { try plain(); try debug() }
        // Alternating, so a busy machine slows both kinds alike.
        var times: ([Double], [Double]) = ([], [])
        for _ in 0..<steps {
            times.0.append(try DebugCost.seconds(plain))
            times.1.append(try DebugCost.seconds(debug))
        }
        let median = { (t: [Double]) in t.sorted()[t.count / 2] }
        let (p, d) = (median(times.0), median(times.1))
        print(String(format: "digits training step (batch 64), median of %d: plain %.3f ms, has_inf_or_nan %.3f ms, ratio %.2fx", steps, p * 1e3, d * 1e3, d / p))
    }

    static func seconds(_ body: () throws -> Void) throws -> Double {
        let t0 = DispatchTime.now()
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
    }

    /// One training step of its own graph and session, plain or under the debugger.
    static func trainingStep(backend: BackendKind?, debug: Bool) throws -> () throws -> Void {
        let g = Graph()
        g.seed = 1
        let images = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
        let labels = try g.placeholder(.int32, shape: [nil], name: "labels")
        let bn = Normalizer.batchNorm(decay: 0.9, isTraining: true)
        let logits = try g.variableScope("model") {
            try g.argScope(LayerDefaults(activation: .relu, padding: "SAME")) { () throws -> Output in
                var h = try g.convolution2d(images, 16, kernelSize: [3], normalizer: bn, scope: "conv1")
                h = try g.convolution2d(h, 32, kernelSize: [3], normalizer: bn, scope: "conv2")
                h = try g.maxPool2d(h, kernelSize: [2], stride: 2)
                h = try g.fullyConnected(g.flatten(h), 64, scope: "fc1")
                return try g.fullyConnected(h, 10, activation: .identity, scope: "logits")
            }
        }
        let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: labels, logits: logits)
        let step = try g.globalStep()
        let minimize = try g.controlDependencies(g.updateOps) { try AdamOptimizer(g, learningRate: .constant(3e-3)).minimize(loss, globalStep: step) }
        let ema = ExponentialMovingAverage(g, decay: 0.99, numUpdates: step)
        let train = try g.controlDependencies([minimize]) { try g.group([ema.apply(g.trainableVariables)], name: "train") }
        let session = try Session(graph: g, config: SessionConfig(backend: backend))
        try session.run(g.globalVariablesInitializer())
        var rng = SystemRandomNumberGenerator()
        let x = try Tensor(shape: [64, 8, 8, 1], scalars: (0..<64 * 64).map { _ in Float.random(in: 0...1, using: &rng) })
        let y = try Tensor(shape: [64], scalars: (0..<64).map { Int32($0 % 10) })
        let feeds = [images: x, labels: y]
        let debugger = DebugSession(wrapping: session)
        return {
            if debug { _ = try debugger.run([loss], feeds: feeds, targets: [train], until: DebugSession.hasInfOrNaNName) }
            else { _ = try session.run([loss], feeds: feeds, targets: [train]) }
        }
    }
}
