import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// tf.train.Example parsing (ParseSingleExample, ParseExampleV2) through Session.run: every
/// record of TensorFlow's golden TFRecord file against records.json, Examples built in Swift,
/// and TensorFlow's error wording for what does not parse.
final class ExampleParsingTests: XCTestCase {
    struct RecordsJSON: Decodable {
        struct Img: Decodable { struct Values: Decodable { let data: [Int64]; let shape: [Int] }; let values: Values }
        let img: Img
    }

    func golden() throws -> (records: [[UInt8]], gzipRecords: [[UInt8]], image: [Int64], shape: [Int]) {
        let dir = Golden.directory.appendingPathComponent("tfrecord")
        let g = try JSONDecoder().decode(RecordsJSON.self, from: Data(contentsOf: dir.appendingPathComponent("records.json")))
        let plain = try TFRecordFileReader.records(path: dir.appendingPathComponent("data.tfrecord").path, compression: .none)
        let gzip = try TFRecordFileReader.records(path: dir.appendingPathComponent("data_gzip.tfrecord").path, compression: .gzip)
        return (plain, gzip, g.img.values.data, g.img.values.shape)
    }

    /// The tutorial's graph: a serialised Example fed as a string, parsed, img_raw decoded and reshaped.
    func testEveryGoldenRecordParsesToWhatRecordsJSONDescribes() throws {
        let g = try golden()
        XCTAssertEqual(g.records.count, 100)
        let graph = Graph()
        let serialized = try graph.placeholder(.string, shape: Shape([]), name: "serialized")
        let f = try graph.parseSingleExample(serialized, features: [
            "label": FixedLenFeature([], .int64),
            "img_raw": FixedLenFeature([], .string),
            "score": FixedLenFeature([2], .float32),
        ])
        let label = try XCTUnwrap(f["label"]?.dense), score = try XCTUnwrap(f["score"]?.dense)
        XCTAssertEqual(label.shape, Shape([]))
        XCTAssertEqual(score.shape, Shape([2]))
        let img = try graph.reshape(try graph.decodeRaw(try XCTUnwrap(f["img_raw"]?.dense), outType: .int64), g.shape)
        let sess = try Session(graph: graph)
        for (i, record) in g.records.enumerated() {
            let out = try sess.run([label, score, img], feeds: [serialized: Tensor(shape: [], strings: [record])])
            XCTAssertEqual(try out[0].scalars(as: Int64.self), [Int64(i)], "record \(i)")
            XCTAssertEqual(try out[1].scalars(as: Float.self), [Float(i) * 0.5, -Float(i)], "record \(i)")
            XCTAssertEqual(out[2].shape, g.shape)
            XCTAssertEqual(try out[2].scalars(as: Int64.self), g.image, "record \(i)")
        }
    }

    /// ParseExampleV2 of the whole GZIP file at once, with score as a VarLenFeature (sparse).
    func testParseExampleBatchesTheGzipGoldenFileWithSparseScores() throws {
        let g = try golden()
        let graph = Graph()
        let batch = try graph.placeholder(.string, shape: Shape(dims: [nil]), name: "batch")
        let f = try graph.parseExample(batch, features: ["label": FixedLenFeature([1], .int64), "score": VarLenFeature(.float32),
                                                         "img_raw": FixedLenFeature([], .string)])
        let label = try XCTUnwrap(f["label"]?.dense), score = try XCTUnwrap(f["score"]?.sparse)
        XCTAssertEqual(label.shape, Shape(dims: [nil, 1]))
        XCTAssertEqual(score.indices.shape, Shape(dims: [nil, 2]))
        let pixels = try graph.decodeRaw(try XCTUnwrap(f["img_raw"]?.dense), outType: .int64)
        let sess = try Session(graph: graph)
        let out = try sess.run([label, score.indices, score.values, score.denseShape, pixels],
                               feeds: [batch: Tensor(shape: [g.gzipRecords.count], strings: g.gzipRecords)])
        XCTAssertEqual(out[0].shape, [100, 1])
        XCTAssertEqual(try out[0].scalars(as: Int64.self), (0..<100).map(Int64.init))
        XCTAssertEqual(try out[1].scalars(as: Int64.self), (0..<100).flatMap { [Int64($0), 0, Int64($0), 1] })
        XCTAssertEqual(try out[2].scalars(as: Float.self), (0..<100).flatMap { [Float($0) * 0.5, -Float($0)] })
        XCTAssertEqual(try out[3].scalars(as: Int64.self), [100, 2])
        XCTAssertEqual(out[4].shape, [100, 210])
        XCTAssertEqual(try out[4].scalars(as: Int64.self), Array(repeating: g.image, count: 100).flatMap { $0 })
    }

    func testExamplesBuiltInSwiftRoundTripAndParseBackWithDefaultsAndSparseFeatures() throws {
        let pixels: [UInt8] = [0, 1, 2, 254, 255, 7]
        let e = Example(["label": .int64([3]), "img_raw": .bytes([pixels]), "f": .float([1, 2]), "tags": .int64([5, -6, 7])])
        let bytes = try e.serialized()
        XCTAssertEqual(try Example(serialized: bytes), e)
        XCTAssertEqual(try e.serialized(), bytes, "serialisation is deterministic")
        XCTAssertEqual(try Example(serialized: try Example().serialized()), Example())

        let graph = Graph()
        let s = try graph.placeholder(.string, shape: Shape([]))
        let f = try graph.parseSingleExample(s, features: [
            "label": FixedLenFeature([], .int64), "img_raw": FixedLenFeature([], .string), "f": FixedLenFeature([2, 1], .float32),
            "missing": FixedLenFeature([2], .float32, defaultValue: try Tensor(shape: [2], scalars: [Float(9), 8])),
            "tags": VarLenFeature(.int64), "absent": VarLenFeature(.string),
        ])
        let pix = try graph.cast(try graph.decodeRaw(try XCTUnwrap(f["img_raw"]?.dense), outType: .uint8), to: .float32)
        let tags = try XCTUnwrap(f["tags"]?.sparse), absent = try XCTUnwrap(f["absent"]?.sparse)
        let sess = try Session(graph: graph)
        let out = try sess.run([f["label"]!.dense!, pix, f["f"]!.dense!, f["missing"]!.dense!, tags.indices, tags.values, tags.denseShape,
                                absent.indices, absent.values, absent.denseShape],
                               feeds: [s: Tensor(shape: [], strings: [bytes])])
        XCTAssertEqual(out[0], Tensor(Int64(3)))
        XCTAssertEqual(try out[1].scalars(as: Float.self), pixels.map(Float.init))
        XCTAssertEqual(out[2], try Tensor(shape: [2, 1], scalars: [Float(1), 2]))
        XCTAssertEqual(out[3], try Tensor(shape: [2], scalars: [Float(9), 8]))
        XCTAssertEqual(out[4], try Tensor(shape: [3, 1], scalars: [Int64(0), 1, 2]))
        XCTAssertEqual(out[5], try Tensor(shape: [3], scalars: [Int64(5), -6, 7]))
        XCTAssertEqual(out[6], try Tensor(shape: [1], scalars: [Int64(3)]))
        XCTAssertEqual(out[7].shape, [0, 1])
        XCTAssertEqual(out[8], try Tensor(shape: [0], strings: []))
        XCTAssertEqual(out[9], try Tensor(shape: [1], scalars: [Int64(0)]))
    }

    func testParseErrorsUseTensorFlowsWording() throws {
        let graph = Graph()
        let s = try graph.placeholder(.string, shape: Shape([]))
        let f = try graph.parseSingleExample(s, features: ["img_raw": FixedLenFeature([], .string), "x": FixedLenFeature([2], .int64),
                                                         "v": VarLenFeature(.float32)])
        let fetches = [f["img_raw"]!.dense!, f["x"]!.dense!, f["v"]!.sparse!.values]
        let sess = try Session(graph: graph)
        func run(_ e: Example) throws { _ = try sess.run(fetches, feeds: [s: Tensor(shape: [], strings: [try e.serialized()])]) }
        XCTAssertNoThrow(try run(Example(["img_raw": .bytes([[1]]), "x": .int64([1, 2])])))
        assertKilnError(.invalidArgument, contains: ["Feature: img_raw (data type: string) is required but could not be found."]) {
            try run(Example(["x": .int64([1, 2])]))
        }
        assertKilnError(.invalidArgument, contains: ["Key: x.  Data types don't match. Data type: float but expected type: int64"]) {
            try run(Example(["img_raw": .bytes([[1]]), "x": .float([1, 2])]))
        }
        for wrong in [[Int64(1)], [1, 2, 3]] {
            assertKilnError(.invalidArgument, contains: ["Key: x.  Can't parse serialized Example: Some int64_list slice was not parsed."]) {
                try run(Example(["img_raw": .bytes([[1]]), "x": .int64(wrong)]))
            }
        }
        assertKilnError(.invalidArgument, contains: ["Key: v.  Data types don't match. Expected type: float, Actual type: int64"]) {
            try run(Example(["img_raw": .bytes([[1]]), "x": .int64([1, 2]), "v": .int64([1])]))
        }
        // Bytes that are no Example at all (a truncated length-delimited field).
        assertKilnError(.invalidArgument, contains: ["Could not parse example input, value: '\\n\\005"]) {
            _ = try sess.run(fetches, feeds: [s: Tensor(shape: [], strings: [[0x0a, 0x05, 0x0a]])])
        }
        assertKilnError(.invalidArgument, contains: ["Could not parse example input"]) { try Example(serialized: [0x0a, 0xff]) }

        // A batch names the example and its index.
        let b = try graph.placeholder(.string, shape: Shape(dims: [nil]))
        let batched = try graph.parseExample(b, features: ["x": FixedLenFeature([2], .int64)])["x"]!.dense!
        let good = try Example(["x": .int64([1, 2])]).serialized()
        assertKilnError(.invalidArgument, contains: ["Name: <unknown>, Key: x, Index: 1.  Number of int64 values != expected.  Values size: 1 but output shape: [2]"]) {
            _ = try sess.run(batched, feeds: [b: Tensor(shape: [2], strings: [good, try Example(["x": .int64([1])]).serialized()])])
        }
        assertKilnError(.invalidArgument, contains: ["Name: <unknown>, Feature: x (data type: int64) is required but could not be found."]) {
            _ = try sess.run(batched, feeds: [b: Tensor(shape: [2], strings: [good, try Example().serialized()])])
        }
        XCTAssertEqual(try sess.run(batched, feeds: [b: Tensor(shape: [0], strings: [])]).shape, [0, 2])
    }

    func testFeatureSpecsTensorFlowRejectsAreRefusedWhenTheGraphIsBuilt() throws {
        let graph = Graph()
        let s = try graph.placeholder(.string, shape: Shape([]))
        assertKilnError(.invalidArgument, contains: ["feature n", "int32"]) {
            try graph.parseSingleExample(s, features: ["n": FixedLenFeature([], .int32)])
        }
        assertKilnError(.invalidArgument, contains: ["feature n", "2 values", "[3]"]) {
            try graph.parseSingleExample(s, features: ["n": FixedLenFeature([3], .float32, defaultValue: try Tensor(shape: [2], scalars: [Float(1), 2]))])
        }
        assertKilnError(.invalidArgument, contains: ["scalar"]) {
            try graph.parseSingleExample(try graph.placeholder(.string, shape: Shape([2])), features: ["n": VarLenFeature(.int64)])
        }
        assertKilnError(.invalidArgument, contains: ["strings"]) {
            try graph.parseExample(try graph.placeholder(.float32, shape: Shape([2])), features: ["n": VarLenFeature(.int64)])
        }
    }

    /// The parse ops keep TensorFlow's names and attrs, so a graph exported as a GraphDef and
    /// imported again parses the same way.
    func testParseGraphsRoundTripThroughGraphDef() throws {
        let graph = Graph()
        let s = try graph.placeholder(.string, shape: Shape([]), name: "serialized")
        let f = try graph.parseSingleExample(s, features: ["label": FixedLenFeature([], .int64, defaultValue: Tensor(Int64(-1))),
                                                         "tags": VarLenFeature(.float32)])
        _ = try graph.identity(f["label"]!.dense!, name: "label")
        _ = try graph.identity(f["tags"]!.sparse!.values, name: "tags")
        let imported = Graph()
        try imported.importGraphDef(serialized: try graph.serializedGraphDef(), prefix: "")
        let sess = try Session(graph: imported)
        let input = imported.operation(named: "serialized").map { $0.output() }
        let label = try XCTUnwrap(imported.operation(named: "label")).output(), tags = try XCTUnwrap(imported.operation(named: "tags")).output()
        let withTags = try Example(["tags": .float([1.5, 2])]).serialized()
        XCTAssertEqual(try sess.run([label, tags], feeds: [try XCTUnwrap(input): Tensor(shape: [], strings: [withTags])]),
                       [Tensor(Int64(-1)), try Tensor(shape: [2], scalars: [Float(1.5), 2])])
    }

    /// TensorFlow 1's ParseExample (keys as string scalar inputs), as an imported graph has it.
    func testTensorFlow1ParseExampleFromAGraphDef() throws {
        let text = """
        node { name: "s" op: "Placeholder" attr { key: "dtype" value { type: DT_STRING } } }
        node { name: "names" op: "Const" attr { key: "dtype" value { type: DT_STRING } }
               attr { key: "value" value { tensor { dtype: DT_STRING tensor_shape { dim { size: 0 } } } } } }
        node { name: "k_tags" op: "Const" attr { key: "dtype" value { type: DT_STRING } }
               attr { key: "value" value { tensor { dtype: DT_STRING tensor_shape {} string_val: "tags" } } } }
        node { name: "k_label" op: "Const" attr { key: "dtype" value { type: DT_STRING } }
               attr { key: "value" value { tensor { dtype: DT_STRING tensor_shape {} string_val: "label" } } } }
        node { name: "d_label" op: "Const" attr { key: "dtype" value { type: DT_INT64 } }
               attr { key: "value" value { tensor { dtype: DT_INT64 tensor_shape { dim { size: 0 } } } } } }
        node { name: "p" op: "ParseExample" input: "s" input: "names" input: "k_tags" input: "k_label" input: "d_label"
               attr { key: "Nsparse" value { i: 1 } } attr { key: "Ndense" value { i: 1 } }
               attr { key: "sparse_types" value { list { type: DT_INT64 } } } attr { key: "Tdense" value { list { type: DT_INT64 } } }
               attr { key: "dense_shapes" value { list { shape { } } } } }
        """
        let g = Graph()
        try g.importGraphDef(text: text, prefix: "")
        let p = try XCTUnwrap(g.operation(named: "p"))
        XCTAssertEqual(p.output(3).shape, Shape(dims: [nil]))
        let records = try [Example(["label": .int64([4]), "tags": .int64([7, 8])]), Example(["label": .int64([5])])].map { try $0.serialized() }
        let out = try Session(graph: g).run((0..<4).map { p.output($0) }, feeds: [try XCTUnwrap(g.operation(named: "s")).output(): Tensor(shape: [2], strings: records)])
        XCTAssertEqual(out, [try Tensor(shape: [2, 2], scalars: [Int64(0), 0, 0, 1]), try Tensor(shape: [2], scalars: [Int64(7), 8]),
                             try Tensor(shape: [2], scalars: [Int64(2), 2]), try Tensor(shape: [2], scalars: [Int64(4), 5])])
    }

    /// Parsing a fed record runs nothing compiled: the defaults are Consts read from the graph.
    func testParsingAFedRecordCompilesNothing() throws {
        let graph = Graph()
        let s = try graph.placeholder(.string, shape: Shape([]))
        let f = try graph.parseSingleExample(s, features: ["label": FixedLenFeature([], .int64), "x": FixedLenFeature([1], .float32, defaultValue: Tensor(Float(2)))])
        let sess = try Session(graph: graph)
        let out = try sess.run([f["label"]!.dense!, f["x"]!.dense!], feeds: [s: Tensor(shape: [], strings: [try Example(["label": .int64([1])]).serialized()])])
        XCTAssertEqual(out, [Tensor(Int64(1)), try Tensor(shape: [1], scalars: [Float(2)])])
        XCTAssertEqual(sess.compileCount, 0)
    }
}
