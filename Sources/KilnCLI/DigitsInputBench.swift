import Foundation
import Kiln

/// `kiln bench`'s digits_input workload: the digits training step (DigitsTrainBench's, batch 64) fed by the tutorial's queue pipeline, as Examples/Digits trains by default
/// (a TFRecord file of the 1,500 digits -> read_up_to -> parse_example -> decode_raw ->
/// shuffle_batch, one reader thread started by startQueueRunners), against the same step fed
/// arrays (a shuffled batch gathered from memory each step, `--feed-arrays`). One graph and session
/// serve both (the inputs are placeholders defaulting to the pipeline's batch); their samples
/// alternate, so a busy machine slows both alike instead of skewing the ratio. The result's times
/// are the queue pipeline's; the note gives both rates and their ratio.
enum DigitsInputBench {
    static let name = "digits_input"
    static let batch = 64
    /// Records the reader thread reads a run, as Examples/Digits reads them.
    static let recordsPerRead = 16 * batch
    /// Steps in one sample: two of the reader thread's runs, so every sample holds as many.
    static let stepsPerSample = 2 * recordsPerRead / batch
    static let warmupSteps = 8

    static func run(_ reps: Int) throws -> Bench.Result {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-digits-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("train.tfrecord").path
        let (pixels, labels) = DigitsTrainBench.data()
        let writer = try TFRecordWriter(path: path)
        for i in 0..<DigitsTrainBench.digits {
            let raw = pixels[(i * 64)..<(i * 64 + 64)].map { UInt8($0 * 16) }
            try writer.write(Example(["img_raw": .bytes([raw]), "label": .int64([labels[i]])]).serialized())
        }
        try writer.close()

        let g = Graph()
        g.seed = 7
        let (batchImages, batchLabels) = try g.device("/cpu:0") { () throws -> (Output, Output) in
            let files = try g.stringInputProducer([path])
            let (_, serialized) = try TFRecordReader(graph: g).readUpTo(files.handle, numRecords: recordsPerRead)
            let f = try g.parseExample(serialized, features: ["label": FixedLenFeature([], .int64), "img_raw": FixedLenFeature([], .string)])
            let images = try g.cast(g.reshape(g.decodeRaw(f["img_raw"]!.dense!, outType: .uint8), [-1, 8, 8, 1]), to: .float32) / 16
            let b = try g.shuffleBatch([images, f["label"]!.dense!], batchSize: batch, capacity: 1000 + batch,
                                       minAfterDequeue: 1000, numThreads: 1, enqueueMany: true)
            return (b[0], b[1])
        }
        let (x, y, loss, trainOp) = try g.device(Bench.device) { () throws -> (Output, Output, Output, GraphOperation) in
            let x = try g.placeholderWithDefault(batchImages, shape: [nil, 8, 8, 1], name: "images")
            let y = try g.placeholderWithDefault(batchLabels, shape: [nil], name: "labels")
            let (loss, _, train) = try DigitsTrainBench.trainingStep(g, x, y)
            return (x, y, loss, train)
        }
        let s = try Session(graph: g, config: SessionConfig(backend: Bench.backend))
        try s.run(g.globalVariablesInitializer())
        try s.run(g.localVariablesInitializer())
        let coordinator = Coordinator()
        let runners = startQueueRunners(session: s, coordinator: coordinator)
        defer {
            coordinator.requestStop()
            try? coordinator.join(runners)
            s.close()
        }

        let queued = { _ = try s.run([loss], targets: [trainOp]) }
        var rng = SplitMix64(seed: 7)
        var order: [Int] = [], next = 0
        let fed = {
            if next + batch > order.count {
                order = Array(0..<DigitsTrainBench.digits)
                order.shuffle(using: &rng)
                next = 0
            }
            let (fx, fy) = try DigitsTrainBench.feeds(order[next..<(next + batch)], pixels, labels)
            next += batch
            _ = try s.run([loss], feeds: [x: fx, y: fy], targets: [trainOp])
        }
        let (tq, ta) = try Bench.alternately(reps, warmup: warmupSteps, (queued, stepsPerSample), (fed, stepsPerSample))
        let (q, a) = (Timing.median(tq), Timing.median(ta))
        return Bench.Result(name: name, median: q, min: tq.min()!,
                            note: String(format: "steps/s: queues %.0f, arrays %.0f, queues/arrays %.2f; batch %d, 1 reader thread", 1 / q, 1 / a, a / q, batch))
    }
}
