// Trains the digits CNN TensorFlow-1 style: layers in variable scopes, batch norm with
// UPDATE_OPS, Adam with a staircase learning-rate decay, and an exponential moving average of
// the weights used for evaluation. Data: UCI handwritten digits (8x8), first 1500 to train.
import Foundation
import Kiln

struct Digits {
    var images: [Float] = []
    var labels: [Int64] = []
    var count: Int { labels.count }

    static func load() throws -> Digits {
        guard let url = Bundle.module.url(forResource: "digits", withExtension: "csv.gz") else {
            throw KilnError.notFound("digits.csv.gz is missing from the example's resources")
        }
        let text = String(decoding: try Zlib.inflate([UInt8](Data(contentsOf: url)), source: url.path), as: UTF8.self)
        var d = Digits()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let v = line.split(separator: ",").compactMap { Float($0) }
            guard v.count == 65 else { throw KilnError.dataLoss("digits.csv.gz: a row has \(v.count) columns, expected 65") }
            d.images += v[0..<64].map { $0 / 16 }
            d.labels.append(Int64(v[64]))
        }
        return d
    }

    func slice(_ r: Range<Int>) -> Digits {
        Digits(images: Array(images[(r.lowerBound * 64)..<(r.upperBound * 64)]), labels: Array(labels[r]))
    }

    func batch(_ idx: ArraySlice<Int>) throws -> (Tensor, Tensor) {
        var x: [Float] = []
        x.reserveCapacity(idx.count * 64)
        for i in idx { x += images[(i * 64)..<(i * 64 + 64)] }
        return (try Tensor(shape: [idx.count, 8, 8, 1], scalars: x), try Tensor(shape: [idx.count], scalars: idx.map { labels[$0] }))
    }
}

let data = try Digits.load()
let train = data.slice(0..<1500), test = data.slice(1500..<data.count)

// `--device /gpu:0` places every op there (TensorFlow's `with tf.device(...)` around the model);
// `/gpu:N` counts OpenCL GPUs, and CPU OpenCL devices too with KILN_OPENCL_ALLOW_CPU=1.
// `--export DIR` also writes what `kiln compile` and Examples/DigitsC need (see the end).
let arguments = CommandLine.arguments
let flag = { (name: String) in arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
let device = flag("--device") ?? ""
let export = flag("--export")

let g = Graph()
g.seed = 7

/// conv 3x3x16 + BN + relu, conv 3x3x32 + BN + relu, max-pool 2x2, dense 64 relu, dense 10.
func model(_ x: Output, training: Bool) throws -> Output {
    let bn = Normalizer.batchNorm(decay: 0.9, isTraining: training)
    return try g.argScope(LayerDefaults(activation: .relu, padding: "SAME")) {
        var h = try g.convolution2d(x, 16, kernelSize: [3], normalizer: bn, scope: "conv1")
        h = try g.convolution2d(h, 32, kernelSize: [3], normalizer: bn, scope: "conv2")
        h = try g.maxPool2d(h, kernelSize: [2], stride: 2)
        h = try g.fullyConnected(g.flatten(h), 64, scope: "fc1")
        return try g.fullyConnected(h, 10, activation: .identity, scope: "logits")
    }
}

let (images, labels, loss, trainAccuracy, trainOp, testAccuracy) = try g.device(device) { () throws -> (Output, Output, Output, Output, GraphOperation, Output) in
    let images = try g.placeholder(.float32, shape: [nil, 8, 8, 1], name: "images")
    let labels = try g.placeholder(.int64, shape: [nil], name: "labels")
    let logits = try g.variableScope("model") { try model(images, training: true) }
    let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: labels, logits: logits)
    let trainAccuracy = try g.accuracy(logits: logits, labels: labels)
    let step = try g.globalStep()
    let learningRate = try g.exponentialDecay(3e-3, globalStep: step, decaySteps: 100, decayRate: 0.9, staircase: true)
    let minimize = try g.controlDependencies(g.updateOps) {
        try AdamOptimizer(g, learningRate: .tensor(learningRate)).minimize(loss, globalStep: step)
}
let ema = ExponentialMovingAverage(g, decay: 0.99, numUpdates: step)
let trainOp = try g.controlDependencies([minimize]) { try g.group([ema.apply(g.trainableVariables)], name: "train") }

// Evaluation reads the moving averages of the weights, through the same layer code.
let evalLogits = try g.variableScope("model", reuse: .yes, customGetter: { v in ema.average(v) ?? v }) { try model(images, training: false) }
let testAccuracy = try g.accuracy(logits: evalLogits, labels: labels, name: "test_accuracy")
// The evaluation logits by a fixed name, the fetch of the compiled artifact (made after every
// random op, so it does not change their seeds).
_ = try g.identity(evalLogits, name: "eval_logits")
return (images, labels, loss, trainAccuracy, trainOp, testAccuracy)
}

let saver = try Saver(graph: g, maxToKeep: 2)
let sess = try Session(graph: g)
try sess.run(g.globalVariablesInitializer())

// The epochs' shuffles come from the graph's seed, so every run trains on the same batches and
// prints the same losses and accuracy (Kiln's kernels are deterministic).
var rng = SplitMix64(seed: UInt64(g.seed ?? 0))
var compileSeconds = 0.0
var order = Array(0..<train.count)
let batchSize = 64, epochs = 30
var steps = 0
var trainSeconds = 0.0
for epoch in 1...epochs {
    order.shuffle(using: &rng)
    var lossSum = 0.0, accSum = 0.0, batches = 0
    let start = Date()
    for b in stride(from: 0, to: order.count, by: batchSize) {
        let (x, y) = try train.batch(order[b..<min(b + batchSize, order.count)])
        let compiles = sess.compileCount, t0 = Date()
        let r = try sess.run([loss, trainAccuracy], feeds: [images: x, labels: y], targets: [trainOp])
        // The first step of each batch shape compiles; that time is reported separately.
        if sess.compileCount != compiles { compileSeconds += Date().timeIntervalSince(t0) }
        lossSum += Double(try r[0].scalar(as: Float.self))
        accSum += Double(try r[1].scalar(as: Float.self))
        batches += 1
        steps += 1
    }
    let seconds = Date().timeIntervalSince(start)
    trainSeconds += seconds
    print(String(format: "epoch %2d: loss=%.4f train_accuracy=%.4f steps/s=%.0f", epoch, lossSum / Double(batches), accSum / Double(batches),
                 Double(batches) / seconds))
}

let (tx, ty) = try test.batch(Array(0..<test.count)[...])
let accuracy = try sess.run(testAccuracy, feeds: [images: tx, labels: ty]).scalar(as: Float.self)
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-digits").path
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
let checkpoint = try saver.save(sess, prefix: directory + "/model.ckpt", globalStep: steps)
print("saved \(checkpoint)")
if let export {
    // The graph and checkpoint (DIR/digits.meta, DIR/digits.index, ...) and the test digits as
    // raw little-endian float32 [N,8,8,1] and int64 labels.
    try FileManager.default.createDirectory(atPath: export, withIntermediateDirectories: true)
    print("exported \(try saver.save(sess, prefix: export + "/digits"))")
    try tx.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: export + "/test_images.f32")) }
    try ty.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: export + "/test_labels.i64")) }
    // Session.run of what `make demo` compiles (the logits of a batch of 64), timed for
    // scripts/aot-bench.sh to set beside the artifact's time.
    let logits = try g.tensor(named: "eval_logits:0")
    let (bx, _) = try test.batch(Array(0..<64)[...])
    for _ in 0..<20 { _ = try sess.run(logits, feeds: [images: bx]) }
    var times: [Double] = []
    for _ in 0..<300 {
        let t0 = DispatchTime.now()
        _ = try sess.run(logits, feeds: [images: bx])
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e3)
    }
    times.sort()
    let timing = String(format: "session eval_logits batch 64: median %.1f us, min %.1f us over %d runs", times[times.count / 2], times[0], times.count)
    print(timing)
    try (timing + "\n").write(toFile: export + "/session_timing.txt", atomically: true, encoding: .utf8)
}
let stepSeconds = trainSeconds - compileSeconds
print(String(format: "digits: test_accuracy=%.4f train_seconds=%.2f steps=%d steps_per_s=%.0f compile_seconds=%.2f steps_per_s_with_compile=%.0f",
             accuracy, stepSeconds, steps, Double(steps) / stepSeconds, compileSeconds, Double(steps) / trainSeconds))
sess.close()
