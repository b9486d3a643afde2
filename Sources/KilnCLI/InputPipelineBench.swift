import Foundation
import Kiln

/// `kiln bench`'s input_pipeline workload: the tutorial's queue pipeline on one TFRecord file of
/// 100,000 Examples (a 28x28 uint8 image as `img_raw`, an int64 `label`), written once by Kiln's
/// writer: string_input_producer -> TFRecordReader.read -> parse_single_example -> decode_raw ->
/// reshape -> shuffle_batch at 128, once per thread count. scripts/peers/input_pipeline.py
/// measures TensorFlow 1's queue pipeline and tf.data on the same Examples the same way.
enum InputPipelineBench {
    static let records = 100_000, batch = 128, minAfterDequeue = 1000
    static let capacity = minAfterDequeue + 3 * batch
    /// One sample is a full pass over the file: 781 batches, 99,968 records.
    static let passBatches = records / batch
    static let warmupBatches = 20

    /// One reader thread, and one per core (TensorFlow's num_threads): the names of the results.
    static var threadCounts: [Int] { Array(Set([1, ProcessInfo.processInfo.activeProcessorCount])).sorted() }
    static var names: [String] { threadCounts.map { "input_pipeline_\($0)t" } }

    /// The same Examples the peers' script writes: pixel j of record i is (j + 7i) % 256, label i % 10.
    static func writeFile(_ path: String) throws {
        let writer = try TFRecordWriter(path: path)
        var pixels = [UInt8](repeating: 0, count: 28 * 28)
        for i in 0..<records {
            for j in pixels.indices { pixels[j] = UInt8((j + 7 * i) % 256) }
            try writer.write(Example(["img_raw": .bytes([pixels]), "label": .int64([Int64(i % 10)])]).serialized())
        }
        try writer.close()
    }

    static func run(_ reps: Int, quick: Bool) throws -> [Bench.Result] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("input_pipeline.tfrecord").path
        try writeFile(path)
        return try threadCounts.map { try measure(path, threads: $0, passes: quick ? 1 : 3) }
    }

    /// Records per second of Session.run of the batch, a full pass per sample after the shuffle
    /// queue has filled, with the reader threads started by startQueueRunners under a Coordinator.
    static func measure(_ path: String, threads: Int, passes: Int) throws -> Bench.Result {
        let g = Graph()
        let (images, labels) = try g.device("/cpu:0") { () throws -> (Output, Output) in
            let files = try g.stringInputProducer([path], seed: 1)
            let (_, serialized) = try TFRecordReader(graph: g).read(files.handle)
            let f = try g.parseSingleExample(serialized, features: ["label": FixedLenFeature([], .int64), "img_raw": FixedLenFeature([], .string)])
            let image = try g.reshape(g.decodeRaw(f["img_raw"]!.dense!, outType: .uint8), [28, 28])
            let b = try g.shuffleBatch([image, f["label"]!.dense!], batchSize: batch, capacity: capacity,
                                       minAfterDequeue: minAfterDequeue, numThreads: threads, seed: 1)
            return (b[0], b[1])
        }
        let s = try Session(graph: g, config: SessionConfig(backend: Bench.backend))
        let coordinator = Coordinator()
        let runners = startQueueRunners(session: s, coordinator: coordinator)
        let step = { _ = try s.run([images, labels]) }
        for _ in 0..<warmupBatches { try step() }
        let seconds = try Timing.repeatMeasure(warmup: 0, repetitions: passes) { for _ in 0..<passBatches { try step() } }
        coordinator.requestStop()
        try coordinator.join(runners)
        s.close()
        let perBatch = seconds.map { $0 / Double(passBatches) }
        return Bench.Result(name: "input_pipeline_\(threads)t", median: Timing.median(perBatch), min: perBatch.min()!,
                            recordsPerSecond: Double(batch) / Timing.median(perBatch),
                            note: "per batch of \(batch); \(threads) reader thread\(threads == 1 ? "" : "s")")
    }
}
