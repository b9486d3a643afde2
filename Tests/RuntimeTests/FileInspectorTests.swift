import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// `kiln inspect`'s reports (FileInspector, in-process) on each kind of file, from TensorFlow's
/// golden files and the .npy fixtures: the facts in the text and the JSON agree with what the
/// files hold, the kind is told from the content when the name says nothing, and a corrupted
/// copy of each is a dataLoss error naming the file and the offset.
final class FileInspectorTests: ScratchDirectoryTestCase {
    private func golden(_ name: String) -> String { Golden.directory.appendingPathComponent(name).path }
    private func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures")).path
    }

    /// The report, after checking its JSON form is one object that parses back with file and kind.
    private func inspect(_ path: String, _ kind: InspectReport.Kind, file: StaticString = #filePath, line: UInt = #line) throws -> InspectReport {
        let r = try FileInspector.inspect(path: path)
        XCTAssertEqual(r.kind, kind, file: file, line: line)
        let parsed = try XCTUnwrap(try JSONSerialization.jsonObject(with: r.jsonData()) as? [String: Any], file: file, line: line)
        XCTAssertEqual(parsed["kind"] as? String, kind.rawValue, file: file, line: line)
        XCTAssertEqual(parsed["file"] as? String, path, file: file, line: line)
        return r
    }

    func testGraphDefListsOpsFeedsFetchesAndNoUnsupportedOps() throws {
        let r = try inspect(golden("frozen/frozen_mlp.pb"), .graphDef)
        XCTAssertEqual(r.json["node_count"] as? Int, 15)
        XCTAssertEqual((r.json["ops"] as? [String: Int])?["MatMul"], 2)
        XCTAssertEqual((r.json["ops"] as? [String: Int])?.values.reduce(0, +), 15)
        let feeds = try XCTUnwrap(r.json["feeds"] as? [[String: Any]])
        XCTAssertEqual(feeds.map { $0["name"] as? String }, ["x"])
        XCTAssertEqual(feeds.first?["dtype"] as? String, "float32")
        XCTAssertEqual(feeds.first?["shape"] as? String, "[?,784]")
        XCTAssertEqual((r.json["fetches"] as? [[String: Any]])?.map { $0["name"] as? String }, ["probs"])
        XCTAssertEqual((r.json["unsupported_ops"] as? [String: Int])?.isEmpty, true)
        for line in ["nodes: 15 (7 op types)", "  x float32 [?,784]", "  probs (Softmax)", "ops Kiln does not support: none"] {
            XCTAssertTrue(r.lines.contains(line), "'\(line)' missing from:\n\(r.text)")
        }
    }

    func testOpsKilnDoesNotHaveAreCountedAndAGraphIsToldByContent() throws {
        var def = Tensorflow_GraphDef()
        for (name, op, inputs) in [("x", "Placeholder", []), ("a", "FancyOp", ["x"]), ("b", "FancyOp", ["a:0"]), ("c", "OtherOp", ["^b"]), ("y", "Identity", ["x"])] {
            var n = Tensorflow_NodeDef()
            n.name = name
            n.op = op
            n.input = inputs
            def.node.append(n)
        }
        // No telling extension: the content says GraphDef.
        let file = path("graph.bin")
        try def.serializedData().write(to: URL(fileURLWithPath: file))
        let r = try inspect(file, .graphDef)
        XCTAssertEqual(r.json["unsupported_ops"] as? [String: Int], ["FancyOp": 2, "OtherOp": 1])
        // A control input consumes its node too; a placeholder without attributes is still a feed.
        XCTAssertEqual((r.json["fetches"] as? [[String: Any]])?.map { $0["name"] as? String }, ["c", "y"])
        XCTAssertTrue(r.lines.contains("ops Kiln does not support: FancyOp (2 nodes), OtherOp (1 node)"), r.text)
        XCTAssertTrue(r.lines.contains("  x dtype not recorded <unknown>"), r.text)
    }

    func testMetaGraphDefShowsVersionCollectionsAndItsGraph() throws {
        let r = try inspect(golden("checkpoint/model.ckpt-20.meta"), .metaGraphDef)
        XCTAssertFalse((r.json["tensorflow_version"] as? String ?? "").isEmpty)
        XCTAssertEqual((r.json["collections"] as? [String: Int])?["trainable_variables"], 4)
        XCTAssertEqual(r.json["has_saver_def"] as? Bool, true)
        let feeds = try XCTUnwrap(r.json["feeds"] as? [[String: Any]])
        XCTAssertTrue(feeds.contains { $0["name"] as? String == "x" && $0["shape"] as? String == "[?,4,4,1]" }, "\(feeds)")
        XCTAssertTrue((r.json["fetches"] as? [[String: Any]])?.contains { $0["name"] as? String == "fc/logits" } ?? false)
        XCTAssertEqual((r.json["unsupported_ops"] as? [String: Int])?.isEmpty, true)
        // The same bytes under a name that says nothing are still a MetaGraphDef.
        let copy = path("exported")
        try FileManager.default.copyItem(atPath: golden("checkpoint/model.ckpt-20.meta"), toPath: copy)
        XCTAssertEqual(try FileInspector.kind(of: copy), .metaGraphDef)
    }

    func testCheckpointListsTensorFlowsVariablesWithEveryChecksumVerified() throws {
        let variables = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: golden("checkpoint/variables.json")))) as! [String: Any]
        let listed = (variables["list_variables"] as! [[Any]]).map { ($0[0] as! String, "[" + ($0[1] as! [Int]).map(String.init).joined(separator: ",") + "]") }
        let prefix = golden("checkpoint/model.ckpt-20")
        // The prefix, its index and its data file all name the checkpoint.
        for name in [prefix, prefix + ".index", prefix + ".data-00000-of-00001"] {
            let r = try inspect(name, .checkpoint)
            XCTAssertEqual(r.json["prefix"] as? String, prefix)
            let vars = try XCTUnwrap(r.json["variables"] as? [[String: Any]])
            XCTAssertEqual(vars.map { $0["name"] as! String }, listed.map(\.0))
            XCTAssertEqual(vars.map { $0["shape"] as! String }, listed.map(\.1))
            XCTAssertTrue(vars.allSatisfy { $0["checksum"] as? String == "verified" }, "\(vars)")
            XCTAssertEqual(r.json["checksums_verified"] as? Int, listed.count)
            let step = try XCTUnwrap(vars.first { $0["name"] as? String == "global_step" })
            XCTAssertEqual(step["dtype"] as? String, "int64")
            XCTAssertEqual(step["max"] as? Double, 20)
            XCTAssertTrue(r.lines.contains("checksums: 5 of 5 verified (848 bytes of tensor data)"), r.text)
        }
    }

    func testTFRecordCountsRecordsAndDecodesTheFirstAsExamples() throws {
        for (file, compression) in [("tfrecord/data.tfrecord", "NONE"), ("tfrecord/data_gzip.tfrecord", "GZIP")] {
            let r = try inspect(golden(file), .tfrecord)
            XCTAssertEqual(r.json["records"] as? Int, 100)
            XCTAssertEqual(r.json["compression"] as? String, compression)
            let first = try XCTUnwrap(r.json["first_records"] as? [[String: Any]])
            XCTAssertEqual(first.count, 3)
            let features = try XCTUnwrap(first[1]["features"] as? [String: [String: Any]])
            XCTAssertEqual(features["label"]?["kind"] as? String, "int64_list")
            XCTAssertEqual(features["label"]?["values"] as? [String], ["1"])
            XCTAssertEqual(features["score"]?["values"] as? [String], ["0.5", "-1.0"])
            XCTAssertEqual(features["img_raw"]?["values"] as? [String], ["<1680 bytes>"])
            XCTAssertTrue(r.lines.contains("    score: float_list x2 [0.5, -1.0]"), r.text)
        }
        // Records that are not Examples are counted and said to be so; strings print quoted.
        let file = path("mixed")
        try TFRecordWriter.write([Array("not an example".utf8) + [0xff, 0x00],
                                  try Example(["caption": .bytes([Array("a cat".utf8)]), "ids": .int64(Array(1...9))]).serialized()], to: file)
        let r = try inspect(file, .tfrecord)
        XCTAssertEqual(r.json["records"] as? Int, 2)
        XCTAssertTrue(r.lines.contains { $0.hasSuffix("not a tf.train.Example") }, r.text)
        XCTAssertTrue(r.lines.contains("    caption: bytes_list x1 [\"a cat\"]"), r.text)
        XCTAssertTrue(r.lines.contains("    ids: int64_list x9 [1, 2, 3, 4, 5, 6, ...]"), r.text)
    }

    func testEventsFileGivesTagsStepsAndTensorFlowsLastValues() throws {
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: golden("events/events.json")))) as! [String: Any]
        let last = (expected["scalars"] as! [[String: Any]]).last!
        let r = try inspect(golden("events/events.out.tfevents.1795702923.vm"), .events)
        XCTAssertEqual(r.json["file_version"] as? String, "brain.Event:2")
        XCTAssertEqual(r.json["event_counts"] as? [String: Int], expected["event_counts"] as? [String: Int])
        let tags = try XCTUnwrap(r.json["tags"] as? [String: [String: Any]])
        XCTAssertEqual(tags.mapValues { $0["count"] as! Int }, expected["tag_counts"] as? [String: Int])
        for tag in ["train_loss", "train_acc"] {
            XCTAssertEqual(tags[tag]?["kind"] as? String, "scalar")
            XCTAssertEqual(tags[tag]?["last_step"] as? Int, last["step"] as? Int)
            XCTAssertEqual(Float(tags[tag]?["last_value"] as! Double), Float(last[tag] as! Double))
        }
        XCTAssertEqual(tags["weights"]?["kind"] as? String, "histogram")
        XCTAssertEqual((tags["weights"]?["last_value"] as? [String: Any])?["num"] as? Double, 100)
        // Told by content too: a copy without the events name.
        let copy = path("run1.log")
        try FileManager.default.copyItem(atPath: golden("events/events.out.tfevents.1795702923.vm"), toPath: copy)
        XCTAssertEqual(try FileInspector.kind(of: copy), .events)
    }

    func testNPYGivesDtypeShapeAndStatistics() throws {
        let file = path("a.bin")
        try NPY.write(Tensor(shape: [2, 3], scalars: [1, -2, 3.5, 4, 0, 5.5] as [Float]), path: file)
        let r = try inspect(file, .npy)
        XCTAssertEqual(r.json["dtype"] as? String, "float32")
        XCTAssertEqual(r.json["shape"] as? [Int], [2, 3])
        XCTAssertEqual(r.json["min"] as? Double, -2)
        XCTAssertEqual(r.json["max"] as? Double, 5.5)
        XCTAssertEqual(r.json["mean"] as? Double, 2)
        XCTAssertEqual(r.lines.last, "min=-2 max=5.5 mean=2")
        // NaN makes min and max NaN, as numpy's; JSON spells them as strings.
        try NPY.write(Tensor(shape: [2], scalars: [Double.nan, 1]), path: path("nan.npy"))
        let nan = try inspect(path("nan.npy"), .npy)
        XCTAssertEqual(nan.json["min"] as? String, "nan")
        XCTAssertEqual(try inspect(try fixture("i8_3.npy"), .npy).json["dtype"] as? String, "int64")
    }

    /// A copy of `source` with `bytes` written at `offset` (or cut to `offset` bytes when nil).
    private func damaged(_ source: String, _ name: String, at offset: Int, with bytes: [UInt8]?) throws -> String {
        var data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        if let bytes { data.replaceSubrange(offset..<(offset + bytes.count), with: bytes) } else { data.removeSubrange(offset...) }
        let file = path(name)
        try Data(data).write(to: URL(fileURLWithPath: file))
        return file
    }

    private func assertDataLoss(_ path: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try FileInspector.inspect(path: path), file: file, line: line) { error in
            guard let e = error as? KilnError else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(e.code, .dataLoss, e.message, file: file, line: line)
            for f in fragments { XCTAssertTrue(e.message.contains(f), "'\(f)' missing from: \(e.message)", file: file, line: line) }
        }
    }

    func testCorruptCopiesAreDataLossErrorsNamingTheFileAndOffset() throws {
        try FileManager.default.createDirectory(atPath: path("ckpt"), withIntermediateDirectories: true)
        for suffix in [".index", ".data-00000-of-00001"] {
            try FileManager.default.copyItem(atPath: golden("checkpoint/model.ckpt-20" + suffix), toPath: path("ckpt/model.ckpt-20" + suffix))
        }
        // conv1/weights is 144 bytes at offset 16 of the data file (after conv1/bias).
        _ = try damaged(path("ckpt/model.ckpt-20.data-00000-of-00001"), "ckpt/model.ckpt-20.data-00000-of-00001", at: 100, with: [0xff])
        assertDataLoss(path("ckpt/model.ckpt-20"), ["model.ckpt-20.data-00000-of-00001", "tensor 'conv1/weights'", "at offset 16", "checksum mismatch"])

        let record = try damaged(golden("tfrecord/data.tfrecord"), "data.tfrecord", at: 5000, with: [0xff])
        assertDataLoss(record, [record, "record 2", "at offset 3518"])
        let events = try damaged(golden("events/events.out.tfevents.1795702923.vm"), "events.out.tfevents.1.host", at: 2000, with: [0xa5])
        assertDataLoss(events, [events, "at offset"])
        let npy = try damaged(try fixture("f4_2x3.npy"), "cut.npy", at: 140, with: nil)
        assertDataLoss(npy, [npy, "from offset 128"])
        let graph = try damaged(golden("frozen/frozen_mlp.pb"), "cut.pb", at: 3000, with: nil)
        assertDataLoss(graph, [graph, "at offset 63", "declares"])
        let meta = try damaged(golden("checkpoint/model.ckpt-20.meta"), "cut.meta", at: 5000, with: nil)
        assertDataLoss(meta, [meta, "at offset 1982", "MetaGraphDef field 2 declares 13129 bytes but 3016 remain"])
    }

    func testFilesOfNoKnownKindAndMissingPathsAreClearErrors() throws {
        try "just text\n".write(toFile: path("notes.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try FileInspector.inspect(path: path("notes.txt"))) { e in
            XCTAssertTrue("\(e)".contains("is not a GraphDef, MetaGraphDef, checkpoint, TFRecord, events or .npy file"), "\(e)")
        }
        XCTAssertThrowsError(try FileInspector.inspect(path: path("absent"))) { e in
            XCTAssertEqual((e as? KilnError)?.code, .notFound, "\(e)")
        }
        XCTAssertThrowsError(try FileInspector.inspect(path: scratch.path)) { e in XCTAssertTrue("\(e)".contains("is a directory"), "\(e)") }
    }
}
