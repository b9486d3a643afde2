import XCTest
import Foundation
import Kiln

/// The digits example (Examples/Digits) writes its data as TFRecord files of tf.train.Examples
/// and trains from them through the queue pipeline, to the accuracy it reached on arrays.
final class DigitsExampleTests: KilnBinaryTestCase {
    func testDigitsWritesTFRecordExamplesAndTrainsFromThemThroughQueuesToAtLeast95Percent() throws {
        let dir = path("train")
        let r = try run(binary: "Digits", ["--train-dir", dir])
        XCTAssertEqual(r.status, 0, r.stderr)

        // data/train.tfrecord: the first 1,500 digits; data/test.tfrecord: the other 297. Each
        // record is an Example of exactly `label` (int64 0-9) and `img_raw` (64 bytes of 0-16).
        for (file, count) in [("train", 1500), ("test", 297)] {
            let records = try TFRecordFileReader.records(path: dir + "/data/\(file).tfrecord")
            XCTAssertEqual(records.count, count, file)
            for (i, record) in records.enumerated() {
                let e = try Example(serialized: record)
                XCTAssertEqual(Set(e.features.keys), ["label", "img_raw"], "\(file) record \(i)")
                guard case .int64(let label)? = e["label"], case .bytes(let raw)? = e["img_raw"] else {
                    return XCTFail("\(file) record \(i): \(e)")
                }
                XCTAssertEqual(label.count, 1)
                XCTAssertTrue((0...9).contains(label[0]), "\(file) record \(i): label \(label)")
                XCTAssertEqual(raw.map(\.count), [64], "\(file) record \(i)")
                XCTAssertTrue(raw[0].allSatisfy { $0 <= 16 }, "\(file) record \(i): pixels \(raw[0])")
            }
        }

        // The run trained from the queues until they ran out (30 epochs of 1,500 digits in
        // batches of 64: 703 full batches and one of 8), and reached 95%.
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("digits: test_accuracy=") }, r.stdout)
        let fields = Dictionary(uniqueKeysWithValues: line.dropFirst("digits: ".count).split(separator: " ").map {
            let kv = $0.split(separator: "=", maxSplits: 1)
            return (String(kv[0]), String(kv[1]))
        })
        XCTAssertEqual(fields["input"], "queues", String(line))
        XCTAssertEqual(fields["steps"], "704", String(line))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(fields["test_accuracy"].flatMap(Double.init)), 0.95, String(line))

        // The TensorBoard log under the train directory: the graph, and every 20 steps the
        // training scalars, the four layers' weight histograms and three input digits.
        let logs = dir + "/logs"
        XCTAssertTrue(r.stdout.contains("tensorboard --logdir \(logs)"), r.stdout)
        let files = try FileManager.default.contentsOfDirectory(atPath: logs).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(files.count, 1, "\(files)")
        let events = try EventFileReader(path: logs + "/" + XCTUnwrap(files.first)).readAll()
        XCTAssertEqual(events.first?.fileVersion, "brain.Event:2")
        XCTAssertEqual(events.filter { $0.isGraphDef }.count, 1)
        let summaries = events.compactMap { e -> (step: Int64, values: [String: Tensorflow_Summary.Value])? in
            guard case .summary(let s)? = e.what else { return nil }
            return (e.step, Dictionary(uniqueKeysWithValues: s.value.map { ($0.tag, $0) }))
        }
        XCTAssertEqual(summaries.map(\.step), Array(stride(from: Int64(0), to: 704, by: 20)))
        for (step, values) in summaries {
            XCTAssertEqual(Set(values.keys), ["loss", "accuracy", "learning_rate", "conv1/weights", "conv2/weights", "fc1/weights", "logits/weights",
                                              "inputs/image/0", "inputs/image/1", "inputs/image/2"], "step \(step)")
            // exponential_decay(3e-3, step, 100, 0.9, staircase) in float32.
            XCTAssertEqual(values["learning_rate"]?.simpleValue ?? 0, Float(3e-3) * powf(0.9, Float(step / 100)), accuracy: 1e-9, "step \(step)")
            XCTAssertTrue((0...1).contains(values["accuracy"]?.simpleValue ?? -1), "step \(step)")
            XCTAssertGreaterThan(values["conv1/weights"]?.histo.num ?? 0, 0)
            XCTAssertEqual(values["inputs/image/0"]?.image.width, 8)
        }
    }
}
