// Trains the digits CNN TensorFlow-1 style: layers in variable scopes, batch norm with
// UPDATE_OPS, Adam with a staircase learning-rate decay, and an exponential moving average of
// the weights used for evaluation. Data: UCI handwritten digits (8x8), first 1500 to train,
// written as TFRecord files of tf.train.Examples and read back through the tutorial's queue
// pipeline (string_input_producer -> TFRecordReader -> parse_single_example -> decode_raw ->
// shuffle_batch, queue runners under a Coordinator); `--feed-arrays` feeds arrays instead.
import Foundation
import Kiln
import KilnDistributed

struct Digits {
    /// Row by row, 64 per digit, 0-16.
    var pixels: [UInt8] = []
    var labels: [Int64] = []
    var count: Int { labels.count }

    static func load() throws -> Digits {
        guard let url = Bundle.module.url(forResource: "digits", withExtension: "csv.gz") else {
            throw KilnError.notFound("digits.csv.gz is missing from the example's resources")
        }
        let text = String(decoding: try Zlib.inflate([UInt8](Data(contentsOf: url)), source: url.path), as: UTF8.self)
        var d = Digits()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let v = line.split(separator: ",").compactMap { UInt8($0) }
            guard v.count == 65, v.allSatisfy({ $0 <= 16 }) else {
                throw KilnError.dataLoss("digits.csv.gz: a row is not 64 pixels of 0-16 and a label: \(line.prefix(80))")
            }
            d.pixels += v[0..<64]
            d.labels.append(Int64(v[64]))
        }
        return d
    }

    func slice(_ r: Range<Int>) -> Digits {
        Digits(pixels: Array(pixels[(r.lowerBound * 64)..<(r.upperBound * 64)]), labels: Array(labels[r]))
    }

    /// One Example per digit: `label` (int64) and `img_raw` (the 64 pixels as bytes).
    func write(to path: String) throws {
        let writer = try TFRecordWriter(path: path)
        for i in 0..<count {
            try writer.write(Example(["label": .int64([labels[i]]), "img_raw": .bytes([Array(pixels[(i * 64)..<(i * 64 + 64)])])]).serialized())
        }
        try writer.close()
    }

    /// The digits of a file `write` made.
    static func read(from path: String) throws -> Digits {
        var d = Digits()
        for record in try TFRecordFileReader.records(path: path) {
            let e = try Example(serialized: record)
            guard case .int64(let label)? = e["label"], label.count == 1, case .bytes(let raw)? = e["img_raw"], raw.count == 1, raw[0].count == 64 else {
                throw KilnError.dataLoss("\(path): record \(d.count) is not a digit's Example (label, 64 img_raw bytes)")
            }
            d.pixels += raw[0]
            d.labels += label
        }
        return d
    }

    /// Images [n, 8, 8, 1] scaled to 0-1, and labels [n].
    func batch(_ idx: ArraySlice<Int>) throws -> (Tensor, Tensor) {
        var x: [Float] = []
        x.reserveCapacity(idx.count * 64)
        for i in idx { x += pixels[(i * 64)..<(i * 64 + 64)].map { Float($0) / 16 } }
        return (try Tensor(shape: [idx.count, 8, 8, 1], scalars: x), try Tensor(shape: [idx.count], scalars: idx.map { labels[$0] }))
    }
}

// `--device /gpu:0` places the model there (TensorFlow's `with tf.device(...)` around it; the
// input pipeline stays on the CPU, as in TensorFlow); `/gpu:N` counts OpenCL GPUs, and CPU
// OpenCL devices too with KILN_OPENCL_ALLOW_CPU=1. `--export DIR` also writes what `kiln compile`
// and Examples/DigitsC need (see the end). `--log-dir DIR` is where the TensorBoard events go,
// every `--log-every N` steps. `--help` lists every flag (DigitsOptions.swift).
let options = DigitsOptions.parseOrExit()
let device = options.device
let export = options.export
let feedArrays = options.feedArrays
let directory = options.trainDir
let logDirectory = options.logDirectory
let logEvery = options.logEvery
/// Progress of the training steps on a terminal; plain epoch lines otherwise.
let progress = ProgressLine()

// `--distributed` (under mpirun): the ranks' world. Only rank 0, the chief, prints, writes
// summaries and saves checkpoints; the others train their share in silence.
let world = options.distributed ? try World.start() : nil
let isChief = world?.isRoot ?? true
if let world, options.batchSize % world.size != 0 {
    throw KilnError.invalidArgument("--batch-size \(options.batchSize) does not split evenly across \(world.size) ranks")
}
let data = try Digits.load()
// Each rank writes (and its queue pipeline reads) its own files: its shard of the training
// digits, every size-th one, all shards the same length so every rank runs the same steps.
// (--distributed: each rank's own directory, so no two write the same file.)
let dataDirectory = directory + "/data" + (world.map { "/rank\($0.rank)" } ?? "")
let trainPath = dataDirectory + "/train.tfrecord", testPath = dataDirectory + "/test.tfrecord"
try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
var trainData = data.slice(options.trainDigits)
/// Whether this rank reads its own shard of the digits (the queue pipeline); fed arrays are
/// shuffled alike on every rank, which each takes its share of every batch from.
let sharded = world != nil && !feedArrays
if let world, sharded {
    let rows = (0..<(trainData.count / world.size)).map { $0 * world.size + world.rank }
    trainData = Digits(pixels: rows.flatMap { trainData.pixels[($0 * 64)..<($0 * 64 + 64)] }, labels: rows.map { trainData.labels[$0] })
}
try trainData.write(to: trainPath)
try data.slice(1500..<data.count).write(to: testPath)
let train = try Digits.read(from: trainPath), test = try Digits.read(from: testPath)
if isChief { print("wrote \(trainPath) (\(train.count) digits) and \(testPath) (\(test.count) digits)" + (world.map { " on each of \($0.size) ranks" } ?? "")) }

let g = Graph()
g.seed = 7
/// The digits of a step (all ranks together), and this rank's share of them.
let batchSize = options.batchSize, localBatchSize = batchSize / (world?.size ?? 1)
/// The training digits of an epoch, all ranks together.
let trainCount = train.count * (sharded ? world?.size ?? 1 : 1)
let epochs = options.epochs(trainCount: trainCount)
let maxSteps = options.maxSteps ?? Int.max

/// The tutorial's queue pipeline over the training file: every digit once per epoch, `epochs`
/// times (then outOfRange), in batches (64) shuffled through a queue holding at least 1,000
/// digits after each dequeue; the last batch is the 45,000 digits' remainder. The reader thread
/// takes up to sixteen batches of records a run (read_up_to, parse_example: TensorFlow's batched
/// form of read and parse_single_example): what a run of the pipeline costs besides its records
/// is then paid once per sixteen steps, on cores the steps use too (the pipeline's cost a
/// record on one core: about 0.4 us). The queue's capacity is
/// min_after_dequeue plus one batch, so every dequeue finds it exactly full: the batches then
/// follow from the graph's seed alone, not from how far the reader thread got, and every run
/// trains on the same batches (the tutorial's min_after_dequeue + 3 * batch_size lets thread
/// timing choose among more digits).
func inputPipeline() throws -> (images: Output, labels: Output) {
    try g.device("/cpu:0") {
        try g.nameScope("input") {
            let files = try g.stringInputProducer([trainPath], numEpochs: epochs)
            let (_, serialized) = try TFRecordReader(graph: g).readUpTo(files.handle, numRecords: 16 * localBatchSize)
            let f = try g.parseExample(serialized, features: ["label": FixedLenFeature([], .int64), "img_raw": FixedLenFeature([], .string)])
            let pixels = try g.reshape(g.decodeRaw(f["img_raw"]!.dense!, outType: .uint8), [-1, 8, 8, 1])
            let images = try g.cast(pixels, to: .float32) / 16
            let b = try g.shuffleBatch([images, f["label"]!.dense!], batchSize: localBatchSize, capacity: 1000 + localBatchSize,
                                       minAfterDequeue: 1000, numThreads: 1, enqueueMany: true, allowSmallerFinalBatch: true)
            return (b[0], b[1])
        }
    }
}

/// conv 3x3x16 + BN + relu, conv 3x3x32 + BN + relu, max-pool 2x2, dense 64 relu (dropout 0.5
/// while training), dense 10. Without the dropout the 1,500 training digits are learnt by heart
/// and test accuracy swings between 94% and 96% with the seed; with it, 96-97%.
func model(_ x: Output, training: Bool) throws -> Output {
    let bn = Normalizer.batchNorm(decay: 0.9, isTraining: training)
    return try g.argScope(LayerDefaults(activation: .relu, padding: "SAME")) {
        var h = try g.convolution2d(x, 16, kernelSize: [3], normalizer: bn, scope: "conv1")
        h = try g.convolution2d(h, 32, kernelSize: [3], normalizer: bn, scope: "conv2")
        h = try g.maxPool2d(h, kernelSize: [2], stride: 2)
        h = try g.fullyConnected(g.flatten(h), 64, scope: "fc1")
        h = try g.dropout(h, keepProb: 0.5, isTraining: training)
        return try g.fullyConnected(h, 10, activation: .identity, scope: "logits")
    }
}

// `images` and `labels` are the pipeline's batch unless fed: `--feed-arrays` feeds the training
// batches, evaluation feeds the test digits, and `kiln compile` feeds `images`.
let batch = try inputPipeline()
let images = try g.placeholderWithDefault(batch.images, shape: [nil, 8, 8, 1], name: "images")
let labels = try g.placeholderWithDefault(batch.labels, shape: [nil], name: "labels")
// `--use-fp16` runs the model in float16 (its variables, created by the layers in the input's
// type, are float16) and trains float32 masters of them (MixedPrecision.swift); the loss and the
// accuracies are computed from the logits widened to float32.
let useFp16 = options.useFp16
func modelInput(_ x: Output) throws -> Output { useFp16 ? try g.cast(x, to: .float16) : x }
func widened(_ logits: Output) throws -> Output { useFp16 ? try g.cast(logits, to: .float32) : logits }
let (loss, trainAccuracy, trainOp, testAccuracy, learningRate) = try g.device(device) { () throws -> (Output, Output, GraphOperation, Output, Output) in
    let logits = try widened(g.variableScope("model") { try model(modelInput(images), training: true) })
    let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: labels, logits: logits)
    // Named apart from the "accuracy" summary, whose name is its TensorBoard tag.
    let trainAccuracy = try g.accuracy(logits: logits, labels: labels, name: "train_accuracy")
    let step = try g.globalStep()
    let learningRate = try g.exponentialDecay(options.learningRate, globalStep: step, decaySteps: 100, decayRate: 0.9, staircase: true)
    let modelVariables = g.trainableVariables
    let optimizer = AdamOptimizer(g, learningRate: .tensor(learningRate))
    let mixed = useFp16 ? try MixedPrecision(g, halfVariables: modelVariables) : nil
    let minimize = try g.controlDependencies(g.updateOps) {
        // Distributed: the gradients averaged across the ranks before Adam applies them.
        let distributed = world.map { _ in DistributedOptimizer(optimizer) }
        if let mixed { return try mixed.minimize(loss, optimizer: optimizer, globalStep: step, allreduce: distributed) }
        return try distributed?.minimize(loss, globalStep: step) ?? optimizer.minimize(loss, globalStep: step)
    }
    let ema = ExponentialMovingAverage(g, decay: 0.99, numUpdates: step)
    let trainOp = try g.controlDependencies([minimize]) { try g.group([ema.apply(modelVariables)], name: "train") }

    // Evaluation reads the moving averages of the weights, through the same layer code.
    let evalLogits = try widened(g.variableScope("model", reuse: .yes, customGetter: { v in ema.average(v) ?? v }) {
        try model(modelInput(images), training: false)
    })
    let testAccuracy = try g.accuracy(logits: evalLogits, labels: labels, name: "test_accuracy")
    // The evaluation logits by a fixed name, the fetch of the compiled artifact (made after every
    // random op, so it does not change their seeds).
    _ = try g.identity(evalLogits, name: "eval_logits")
    return (loss, trainAccuracy, trainOp, testAccuracy, learningRate)
}

// TensorBoard: the training scalars, the layers' weights as histograms and the first 3 input
// digits of the batch, merged into one Summary (host ops, so outside the model's device scope).
try g.summary.scalar("loss", loss)
try g.summary.scalar("accuracy", trainAccuracy)
try g.summary.scalar("learning_rate", learningRate)
for v in g.trainableVariables where v.name.hasSuffix("/weights") {
    try g.summary.histogram(String(v.name.dropFirst("model/".count)), useFp16 ? try g.cast(v, to: .float32) : v.value)
}
try g.summary.image("inputs", images, maxOutputs: 3)
let summaries = try g.summary.mergeAll()!

let saver = try Saver(graph: g, maxToKeep: 2)
let sess = try Session(graph: g)
let writer = logEvery > 0 && isChief ? try FileWriter(logdir: logDirectory, graph: g) : nil
try sess.run(g.globalVariablesInitializer())
// Every rank starts from rank 0's initial values.
try world?.broadcastGlobalVariables(sess)
// string_input_producer's epoch count is a local variable, as in TensorFlow.
try sess.run(g.localVariablesInitializer())

var compileSeconds = 0.0
var steps = 0
var trainSeconds = 0.0
var lossSum = 0.0, accSum = 0.0, batches = 0
var epochStart = Date()
/// Each epoch's mean loss, for the self-test.
var epochLosses: [Double] = []
/// One training step; `feeds` is empty when the queue pipeline supplies the batch.
@MainActor func step(_ feeds: [Output: Tensor]) throws {
    let compiles = sess.compileCount, t0 = Date()
    // Every logEvery steps the step also fetches the merged summaries, TensorFlow's
    // `sess.run([train_op, merged])`: the session computes them from this step's values (one
    // dequeue, one forward pass); the writer's thread writes them.
    let logging = writer != nil && steps % logEvery == 0
    let r = try sess.run(logging ? [loss, trainAccuracy, summaries] : [loss, trainAccuracy], feeds: feeds, targets: [trainOp])
    if logging, let writer { try writer.add(summary: r[2], step: steps) }
    // The first step of each batch shape compiles; that time is reported separately.
    if sess.compileCount != compiles { compileSeconds += Date().timeIntervalSince(t0) }
    let stepLoss = Double(try r[0].scalar(as: Float.self))
    lossSum += stepLoss
    accSum += Double(try r[1].scalar(as: Float.self))
    batches += 1
    steps += 1
    if isChief { progress.update(String(format: "step %d: loss=%.4f steps/s=%.0f", steps, stepLoss, Double(batches) / Date().timeIntervalSince(epochStart))) }
}
@MainActor func endEpoch(_ epoch: Int) {
    let seconds = Date().timeIntervalSince(epochStart)
    trainSeconds += seconds
    if isChief { progress.line(String(format: "epoch %2d: loss=%.4f train_accuracy=%.4f steps/s=%.0f", epoch, lossSum / Double(batches), accSum / Double(batches),
                 Double(batches) / seconds)) }
    epochLosses.append(lossSum / Double(batches))
    (lossSum, accSum, batches, epochStart) = (0, 0, 0, Date())
}

/// A progress line per epoch's worth of steps (the batches run across epoch boundaries).
let stepBatch = feedArrays ? batchSize : localBatchSize, stepsPerEpoch = (train.count + stepBatch - 1) / stepBatch
if feedArrays {
    // The batches a batching queue cuts from the pipeline: the epochs' shuffles one after
    // another, in batches of --batch-size that run across epoch boundaries, the last one smaller.
    // Both inputs so train the same steps on batches of the same sizes, and their steps per
    // second compare. The shuffles come from the graph's seed, so every run trains on the same
    // batches and prints the same losses and accuracy (Kiln's kernels are deterministic).
    var rng = SplitMix64(seed: UInt64(g.seed ?? 0))
    var stream: [Int] = []
    stream.reserveCapacity(epochs * train.count)
    for _ in 0..<epochs {
        var order = Array(0..<train.count)
        order.shuffle(using: &rng)
        stream += order
    }
    // Global batches of --batch-size; each rank takes its share of every one (a last batch too
    // small to give every rank a digit is left out).
    let global = options.batchSize, ranks = world?.size ?? 1
    epochStart = Date()
    for b in stride(from: 0, to: stream.count, by: global) where steps < maxSteps && min(global, stream.count - b) >= ranks {
        let rows = stream[b..<min(b + global, stream.count)]
        let share = world?.shard(rows.count) ?? 0..<rows.count
        let (x, y) = try train.batch(rows[(rows.startIndex + share.lowerBound)..<(rows.startIndex + share.upperBound)])
        try step([images: x, labels: y])
        if steps % stepsPerEpoch == 0 { endEpoch(steps / stepsPerEpoch) }
    }
    if batches > 0 { endEpoch(steps / stepsPerEpoch + 1) }
} else {
    // The tutorial's loop: train until the pipeline runs out (outOfRange after the last epoch),
    // then stop the queue runners and wait for them. A line per 24 steps, about one epoch.
    let coordinator = Coordinator()
    let runners = startQueueRunners(session: sess, coordinator: coordinator)
    epochStart = Date()
    do {
        while !coordinator.shouldStop && steps < maxSteps {
            try step([:])
            if steps % stepsPerEpoch == 0 { endEpoch(steps / stepsPerEpoch) }
        }
        // --max-steps stopped the loop inside an epoch.
        if batches > 0 { endEpoch(steps / stepsPerEpoch + 1) }
    } catch where (error as? KilnError)?.code == .outOfRange {
        if batches > 0 { endEpoch(steps / stepsPerEpoch + 1) }
    } catch {
        // join re-raises it, after the runners have stopped.
        coordinator.requestStop(error: error)
    }
    coordinator.requestStop()
    try coordinator.join(runners)
}

let (tx, ty) = try test.batch(Array(0..<test.count)[...])
let accuracy = try sess.run(testAccuracy, feeds: [images: tx, labels: ty]).scalar(as: Float.self)
// Every rank holds the same variables: the chief alone saves them.
if isChief { print("saved \(try saver.save(sess, prefix: directory + "/model.ckpt", globalStep: steps))") }
if let export, isChief {
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
if let writer {
    try writer.close()
    print("summaries in \(logDirectory): tensorboard --logdir \(logDirectory)")
}
let stepSeconds = trainSeconds - compileSeconds
if isChief {
    print(String(format: "digits: test_accuracy=%.4f train_seconds=%.2f steps=%d steps_per_s=%.0f compile_seconds=%.2f steps_per_s_with_compile=%.0f input=%@",
                 accuracy, stepSeconds, steps, Double(steps) / stepSeconds, compileSeconds, Double(steps) / trainSeconds, feedArrays ? "arrays" : "queues")
          + (world.map { " ranks=\($0.size) step_ms=" + String(format: "%.2f", 1000 * stepSeconds / Double(steps)) } ?? ""))
}
sess.close()
try world?.finalize()
if options.selfTest {
    // The pipeline delivered every digit of every epoch (the last batch smaller), unless
    // --max-steps stopped it; the loss fell to under half its first epoch's; the evaluation
    // (the moving averages, on digits never trained on) is far above chance (0.1).
    let expectedSteps = min(maxSteps, (epochs * trainCount + batchSize - 1) / batchSize)
    var failures: [String] = []
    if steps != expectedSteps { failures.append("the pipeline gave \(steps) batches, expected \(expectedSteps)") }
    if let first = epochLosses.first, let last = epochLosses.last, !(epochLosses.count > 1 && last < 0.5 * first) {
        failures.append(String(format: "the loss did not halve: first epoch %.4f, last %.4f", first, last))
    }
    if !(accuracy >= 0.7) { failures.append(String(format: "test accuracy %.4f is under 0.7", accuracy)) }
    if isChief { print(failures.isEmpty ? String(format: "self-test: passed (%d steps, loss %.4f -> %.4f, test accuracy %.4f)", steps, epochLosses.first ?? 0,
                                    epochLosses.last ?? 0, accuracy)
                           : "self-test: FAILED: " + failures.joined(separator: "; ")) }
    exit(failures.isEmpty ? 0 : 1)
}
