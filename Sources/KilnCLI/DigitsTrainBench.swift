import Foundation
import Kiln

/// `kiln bench`'s digits_train workload: Examples/Digits' training, compile included. One
/// sample builds the graph (the digits CNN with batch norm updates and dropout, Adam on a
/// staircase decay of 3e-3, an exponential moving average of the weights), makes the Session,
/// initialises it and runs every step of 10 epochs of 1,500 digits at batch 64 with fed arrays,
/// the short last batch of each epoch kept (so a session compiles twice). `digits_train` is a
/// first run (the compiled-code cache off, every executable compiled); `digits_train_cached` a
/// second run of the same program (the code from the disk cache a warm-up run filled).
/// scripts/peers/tf1.py runs the same training in TensorFlow 1 graph mode.
enum DigitsTrainBench {
    static let name = "digits_train"
    static let names = [name, name + "_cached"]
    static let digits = 1500, batch = 64, epochs = 10
    static var steps: Int { epochs * ((digits + batch - 1) / batch) }

    /// The images (1500 x 64 pixels) and labels the peers' script makes too: pixel j of digit i
    /// is (5j + 3i) % 17 over 16, label i % 10 (a step's time does not depend on the values).
    static func data() -> (images: [Float], labels: [Int64]) {
        var images = [Float](repeating: 0, count: digits * 64)
        for i in 0..<digits { for j in 0..<64 { images[i * 64 + j] = Float((5 * j + 3 * i) % 17) / 16 } }
        return (images, (0..<digits).map { Int64($0 % 10) })
    }

    /// The digits training step on `x` and `y` in `g` (the digits CNN with batch norm updates
    /// and dropout, Adam on a staircase decay of 3e-3, an exponential moving average of the
    /// weights): the loss, the batch's accuracy and the train op.
    static func trainingStep(_ g: Graph, _ x: Output, _ y: Output) throws -> (loss: Output, accuracy: Output, train: GraphOperation) {
        let logits = try g.variableScope("model") { try Bench.digitsCNN(g, x, isTraining: true, dropout: true) }
        let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: y, logits: logits)
        let accuracy = try g.accuracy(logits: logits, labels: y, name: "train_accuracy")
        let step = try g.globalStep()
        let learningRate = try g.exponentialDecay(3e-3, globalStep: step, decaySteps: 100, decayRate: 0.9, staircase: true)
        let variables = g.trainableVariables
        let minimize = try g.controlDependencies(g.updateOps) { try AdamOptimizer(g, learningRate: .tensor(learningRate)).minimize(loss, globalStep: step) }
        let ema = ExponentialMovingAverage(g, decay: 0.99, numUpdates: step)
        let train = try g.controlDependencies([minimize]) { try g.group([ema.apply(variables)], name: "train") }
        return (loss, accuracy, train)
    }

    /// The images and labels of the digits `rows`, as a step is fed them.
    static func feeds(_ rows: ArraySlice<Int>, _ images: [Float], _ labels: [Int64]) throws -> (images: Tensor, labels: Tensor) {
        (try Tensor(shape: [rows.count, 8, 8, 1], scalars: rows.flatMap { images[($0 * 64)..<($0 * 64 + 64)] }),
         try Tensor(shape: [rows.count], scalars: rows.map { labels[$0] }))
    }

    /// One training run from an empty graph to the last step.
    static func train(_ images: [Float], _ labels: [Int64], config: SessionConfig) throws {
        let g = Graph()
        g.seed = 7
        let (x, y, loss, accuracy, trainOp) = try g.device(Bench.device) { () throws -> (Output, Output, Output, Output, GraphOperation) in
            let x = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
            let y = try g.placeholder(.int64, shape: [nil], name: "labels")
            let (loss, accuracy, train) = try trainingStep(g, x, y)
            return (x, y, loss, accuracy, train)
        }
        let s = try Session(graph: g, config: config)
        try s.run(g.globalVariablesInitializer())
        var rng = SplitMix64(seed: 7)
        var order = Array(0..<digits)
        for _ in 0..<epochs {
            order.shuffle(using: &rng)
            for b in stride(from: 0, to: digits, by: batch) {
                let (fx, fy) = try feeds(order[b..<min(b + batch, digits)], images, labels)
                _ = try s.run([loss, accuracy], feeds: [x: fx, y: fy], targets: [trainOp])
            }
        }
    }

    static func run(_ reps: Int) throws -> [Bench.Result] {
        let (images, labels) = data()
        return try Bench.firstAndSecondRun { config, cached in
            let t = try Timing.repeatMeasure(warmup: 1, repetitions: max(1, min(reps, 3))) { try train(images, labels, config: config) }
            let median = Timing.median(t)
            return Bench.Result(name: names[cached ? 1 : 0], median: median, min: t.min()!,
                                note: String(format: "%.0f steps/s compile included: %d Adam steps, batch %d fed, graph to last step", Double(steps) / median, steps, batch)
                                    + (cached ? "; second run: compiled code from the disk cache" : "; first run: every executable compiled"))
        }
    }
}
