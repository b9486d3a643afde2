import Foundation
import XCTest
import KilnTestSupport
import KilnIR
@testable import KilnFrontend

final class GraphDefTests: XCTestCase {
    /// y = x + c, written consumer first: the importer must order nodes itself.
    let outOfOrder = """
        node { name: "y" op: "AddV2" input: "x" input: "c:0"
               attr { key: "T" value { type: DT_FLOAT } } }
        node { name: "x" op: "Placeholder"
               attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "shape" value { shape { dim { size: -1 } dim { size: 2 } } } } }
        node { name: "c" op: "Const" device: "/device:CPU:0"
               attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } } float_val: 1.5 } } } }
        node { name: "done" op: "NoOp" input: "^y" input: "^c" }
        versions { producer: 27 }
        """

    // MARK: import

    func testTextGraphDefWithNodesOutOfOrderImportsUnderAUniquePrefix() throws {
        let g = Graph()
        let ops = try g.importGraphDef(text: outOfOrder)
        XCTAssertEqual(ops.map(\.name), ["import/x", "import/c", "import/y", "import/done"])
        let y = try XCTUnwrap(g.operation(named: "import/y"))
        XCTAssertEqual(y.inputs.map(\.name), ["import/x:0", "import/c:0"])
        XCTAssertEqual(y.outputSpecs[0].shape, Shape(dims: [nil, 2]))
        XCTAssertEqual(y.outputSpecs[0].dtype, .float32)
        XCTAssertEqual(g.operation(named: "import/c")?.device, "/device:CPU:0")
        XCTAssertEqual(try g.operation(named: "import/c")?.attrs["value"]?.tensor?.scalars(as: Float.self), [1.5, 1.5])
        XCTAssertEqual(g.operation(named: "import/done")?.controlInputs.map(\.name), ["import/y", "import/c"])

        let again = try g.importGraphDef(text: outOfOrder)
        XCTAssertEqual(again.first?.name, "import_1/x")
        let bare = try g.importGraphDef(text: outOfOrder, prefix: "")
        XCTAssertEqual(bare.map(\.name), ["x", "c", "y", "done"])
        // The imported names are taken: new ops get suffixes, a clashing import is refused.
        XCTAssertEqual(try g.constant(1 as Float, name: "x").op.name, "x_1")
        assertKilnError(.alreadyExists, contains: ["already has an operation named 'y'"]) {
            try g.importGraphDef(text: self.outOfOrder, prefix: "")
        }
    }

    func testInputMapReplacesDataAndControlInputs() throws {
        let g = Graph()
        let feed = try g.placeholder(.float32, shape: [3, 2], name: "feed")
        let gate = try g.constant(0 as Int32, name: "gate")
        let ops = try g.importGraphDef(text: outOfOrder, prefix: "m", inputMap: ["x": feed, "^c": gate])
        let y = try g.tensor(named: "m/y:0")
        XCTAssertEqual(y.op.inputs.map(\.name), ["feed:0", "m/c:0"])
        XCTAssertEqual(y.shape, Shape([3, 2]))
        XCTAssertEqual(g.operation(named: "m/done")?.controlInputs.map(\.name), ["m/y", "gate"])
        // The mapped placeholder is still imported, as tf.import_graph_def does.
        XCTAssertTrue(ops.contains { $0.name == "m/x" })

        assertKilnError(.invalidArgument, contains: ["not found in graph_def", "nope:0"]) {
            try g.importGraphDef(text: self.outOfOrder, inputMap: ["nope:0": feed])
        }
        let other = Graph()
        let foreign = try other.placeholder(.float32, name: "foreign")
        assertKilnError(.invalidArgument, contains: ["another graph", "foreign:0"]) {
            try g.importGraphDef(text: self.outOfOrder, inputMap: ["x:0": foreign])
        }
    }

    func testUnsupportedNodeTypesAreListedOnceWithCountsAndNothingIsAdded() throws {
        let text = """
            node { name: "a" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
            node { name: "b" op: "FancyOp" input: "a" }
            node { name: "c" op: "FancyOp" input: "b" }
            node { name: "d" op: "AnotherOp" input: "c" }
            node { name: "e" op: "Relu" input: "d" }
            """
        let g = Graph()
        _ = try g.constant(1 as Float)
        assertKilnError(.unimplemented, contains: ["2 op type(s)", "AnotherOp (1 node)", "FancyOp (2 nodes)"]) {
            try g.importGraphDef(text: text)
        }
        XCTAssertEqual(g.operations.count, 1)
    }

    func testCycleIsInvalidArgumentNamingItsNodes() {
        let text = """
            node { name: "a" op: "Identity" input: "c" attr { key: "T" value { type: DT_FLOAT } } }
            node { name: "b" op: "Identity" input: "a" attr { key: "T" value { type: DT_FLOAT } } }
            node { name: "c" op: "Identity" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
            """
        let g = Graph()
        assertKilnError(.invalidArgument, contains: ["cycle", "a -> c -> b -> a"]) { try g.importGraphDef(text: text) }
        XCTAssertTrue(g.operations.isEmpty)
        let selfLoop = #"node { name: "n" op: "NoOp" input: "^n" }"#
        assertKilnError(.invalidArgument, contains: ["cycle", "n -> n"]) { try g.importGraphDef(text: selfLoop) }
    }

    func testBadReferencesAreInvalidArgumentNamingTheNode() {
        let g = Graph()
        assertKilnError(.invalidArgument, contains: ["'y'", "'ghost:0'", "no node named 'ghost'"]) {
            try g.importGraphDef(text: #"node { name: "y" op: "Identity" input: "ghost:0" }"#)
        }
        assertKilnError(.invalidArgument, contains: ["'y'", "control inputs must come last"]) {
            try g.importGraphDef(text: """
                node { name: "x" op: "NoOp" }
                node { name: "z" op: "Const" attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 1 } } } }
                node { name: "y" op: "Identity" input: "^x" input: "z" }
                """)
        }
        assertKilnError(.invalidArgument, contains: ["'y'", "'z:3'", "1 output(s)"]) {
            try g.importGraphDef(text: """
                node { name: "z" op: "Const" attr { key: "value" value { tensor { dtype: DT_INT32 tensor_shape {} int_val: 1 } } } }
                node { name: "y" op: "Identity" input: "z:3" attr { key: "T" value { type: DT_INT32 } } }
                """)
        }
        assertKilnError(.invalidArgument, contains: ["two nodes named 'z'"]) {
            try g.importGraphDef(text: #"node { name: "z" op: "NoOp" } node { name: "z" op: "NoOp" }"#)
        }
        assertKilnError(.unimplemented, contains: ["'p'", "'dtype'", "DT_COMPLEX64"]) {
            try g.importGraphDef(text: #"node { name: "p" op: "Placeholder" attr { key: "dtype" value { type: DT_COMPLEX64 } } }"#)
        }
        XCTAssertTrue(g.operations.isEmpty)
    }

    func testAShapeErrorMidwayLeavesTheGraphUntouched() throws {
        let text = """
            node { name: "a" op: "Const" attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } dim { size: 3 } } float_val: 1 } } } }
            node { name: "b" op: "Const" attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } dim { size: 3 } } float_val: 2 } } } }
            node { name: "ok" op: "AddV2" input: "a" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
            node { name: "bad" op: "MatMul" input: "a" input: "x" attr { key: "T" value { type: DT_FLOAT } } }
            node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
            """
        let g = Graph()
        let feed = try g.placeholder(.float32, shape: [4, 4], name: "feed")
        assertKilnError(.invalidArgument, contains: ["'import/bad'", "MatMul"]) { try g.importGraphDef(text: text, inputMap: ["x:0": feed]) }
        XCTAssertEqual(g.operations.map(\.name), ["feed"])
        // The failed import did not take the prefix either.
        let good = try g.placeholder(.float32, shape: [3, 4], name: "good")
        XCTAssertEqual(try g.importGraphDef(text: text, inputMap: ["x:0": good]).first?.name, "import/a")
        XCTAssertEqual(try g.tensor(named: "import/bad:0").shape, Shape([2, 4]))
    }

    func testGarbageBytesAreDataLossAndNeverCrash() throws {
        assertKilnError(.dataLoss, contains: ["not a valid binary GraphDef"]) {
            _ = try GraphDefFile.parse(binary: Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]))
        }
        assertKilnError(.dataLoss, contains: ["not a valid binary GraphDef"]) {
            _ = try GraphDefFile.parse(binary: Data(outOfOrder.utf8))
        }
        // A well-formed stream of fields GraphDef does not have is not a graph either.
        assertKilnError(.dataLoss, contains: ["holds no nodes"]) {
            _ = try GraphDefFile.parse(binary: Data([0x78, 0x01, 0x80, 0x01, 0x05]))
        }
        let good = try Graph().importGraphDefAndExport(outOfOrder)
        assertKilnError(.dataLoss, contains: ["not a valid binary GraphDef"]) {
            _ = try GraphDefFile.parse(binary: good.prefix(good.count - 3))
        }
        // Whatever the bytes, the importer answers with a KilnError or a graph.
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<2000 {
            var bytes = good
            for _ in 0..<(1 + trial % 4) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
            if trial % 3 == 0 { bytes = bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)) }
            do { _ = try Graph().importGraphDef(serialized: bytes) } catch is KilnError {} catch { XCTFail("\(error)") }
        }
    }

    func testMissingFileIsNotFoundNamingIt() {
        assertKilnError(.notFound, contains: ["/nonexistent/graph.pb"]) { try Graph().importGraphDef(contentsOf: "/nonexistent/graph.pb") }
    }

    // MARK: export

    private func sampleGraph() throws -> Graph {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let w = try g.variable([[1, 2], [3, 4], [5, 6]] as [[Float]], name: "w")
        let h = try g.device("/cpu:0") { try g.matmul(x, w, transposeB: false) }
        let s = try g.nameScope("head") { try g.reduceSum(try g.relu(h), axes: [1], keepDims: true) }
        let flags = try g.constant([true, false, true], name: "flags")
        let names = try g.constant(Tensor(shape: [2], strings: [Array("a".utf8), [0, 255, 10]]), name: "names")
        _ = try g.controlDependencies([s.op]) { try g.group([flags.op, names.op], name: "after") }
        _ = try g.globalVariablesInitializer()
        return g
    }

    private func assertSameStructure(_ a: Graph, _ b: Graph, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.operations.count, b.operations.count, file: file, line: line)
        for (p, q) in zip(a.operations, b.operations) {
            XCTAssertEqual(p.name, q.name, file: file, line: line)
            XCTAssertEqual(p.type, q.type, p.name, file: file, line: line)
            XCTAssertEqual(p.inputs.map(\.name), q.inputs.map(\.name), p.name, file: file, line: line)
            XCTAssertEqual(p.controlInputs.map(\.name), q.controlInputs.map(\.name), p.name, file: file, line: line)
            XCTAssertEqual(p.attrs, q.attrs, p.name, file: file, line: line)
            XCTAssertEqual(p.device, q.device, p.name, file: file, line: line)
            XCTAssertEqual(p.outputSpecs.map(\.shape), q.outputSpecs.map(\.shape), p.name, file: file, line: line)
        }
    }

    func testBinaryAndTextExportRoundTripNamesInputsControlsAttrsAndDevices() throws {
        let g = try sampleGraph()
        let fromBinary = Graph()
        try fromBinary.importGraphDef(serialized: try g.serializedGraphDef(), prefix: "")
        assertSameStructure(g, fromBinary)
        let fromText = Graph()
        try fromText.importGraphDef(text: g.graphDefText(), prefix: "")
        assertSameStructure(g, fromText)

        let def = g.graphDef()
        XCTAssertEqual(def.versions.producer, Graph.graphDefProducer)
        let after = try XCTUnwrap(def.node.first { $0.name == "after" })
        XCTAssertEqual(after.input, ["^head/Sum", "^flags", "^names"])
        let matmul = try XCTUnwrap(def.node.first { $0.op == "MatMul" })
        XCTAssertEqual(matmul.input, ["x", "w/read"])
        XCTAssertEqual(matmul.device, "/cpu:0")
        XCTAssertEqual(matmul.attr["transpose_b"]?.b, false)
        XCTAssertTrue(matmul.attr["transpose_b"]?.value != nil, "defaults are written explicitly")
    }

    func testSerializedGraphDefIsDeterministic() throws {
        let g = try sampleGraph()
        let first = try g.serializedGraphDef()
        for _ in 0..<5 { XCTAssertEqual(try g.serializedGraphDef(), first) }
    }

    func testWriteGraphDefPicksTextOrBinaryFromTheNameAndReadsBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-graphdef-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = try sampleGraph()
        let pb = dir.appendingPathComponent("g.pb").path
        let pbtxt = dir.appendingPathComponent("g.pbtxt").path
        try g.writeGraphDef(toFile: pb)
        try g.writeGraphDef(toFile: pbtxt)
        XCTAssertEqual(FileManager.default.contents(atPath: pb), try g.serializedGraphDef())
        XCTAssertTrue(String(decoding: FileManager.default.contents(atPath: pbtxt)!, as: UTF8.self).contains("node {"))
        for path in [pb, pbtxt] {
            let back = Graph()
            try back.importGraphDef(contentsOf: path, prefix: "")
            assertSameStructure(g, back)
        }
        assertKilnError(.notFound, contains: ["no/such/dir"]) { try g.writeGraphDef(toFile: dir.appendingPathComponent("no/such/dir/g.pb").path) }
    }

    // MARK: attribute and tensor conversion

    func testEveryAttrValueKindRoundTripsThroughItsProto() throws {
        let values: [AttrValue] = [
            .int(-7), .float(0.25), .bool(true), .string("SAME"), .type(.int64), .shape(Shape(dims: [nil, 4])),
            .shape(.unknown), .shape(.scalar), .tensor(try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Int32])),
            .ints([1, -2, 3]), .types([.float32, .bool, .string]), .floats([0.5, -1]), .bools([true, false]),
            .strings(["loc:@w", ""]), .shapes([Shape([2]), .unknown]),
            .function(name: "f", attrs: ["T": .type(.float64), "n": .int(3)]),
        ]
        for v in values {
            XCTAssertEqual(try AttrValue(proto: v.proto), v, "\(v)")
        }
        XCTAssertEqual(AttrValue.shape(.unknown).proto.shape.unknownRank, true)
    }

    func testEmptyListTakesTheKindOfTheOpsDefaultAndRefTypesMapToTheirBase() throws {
        var empty = Tensorflow_AttrValue()
        empty.list = Tensorflow_AttrValue.ListValue()
        XCTAssertEqual(try AttrValue(proto: empty), .ints([]))
        XCTAssertEqual(try AttrValue(proto: empty, emptyListLike: .strings(["x"])), .strings([]))
        XCTAssertEqual(try AttrValue(proto: empty, emptyListLike: .types([])), .types([]))
        XCTAssertEqual(AttrValue.ints([]).proto, empty)

        var ref = Tensorflow_AttrValue()
        ref.type = .dtFloatRef
        XCTAssertEqual(try AttrValue(proto: ref), .type(.float32))
        XCTAssertEqual(Tensorflow_DataType.dtInt64Ref.kilnDType, .int64)
        XCTAssertEqual(Tensorflow_DataType.dtBfloat16.kilnDType, .bfloat16)
        XCTAssertEqual(Tensorflow_DataType.dtHalfRef.kilnDType, .float16)
        XCTAssertNil(Tensorflow_DataType.dtComplex64.kilnDType)
        XCTAssertEqual(Tensorflow_DataType.dtHalfRef.tensorflowName, "DT_HALF_REF")
    }

    func testAttrKindsKilnCannotHoldAreClearErrors() {
        var placeholder = Tensorflow_AttrValue()
        placeholder.placeholder = "T"
        assertKilnError(.invalidArgument, contains: ["placeholder", "'T'"]) { _ = try AttrValue(proto: placeholder) }
        var tensors = Tensorflow_AttrValue()
        tensors.list.tensor = [Tensor(1 as Float).proto]
        assertKilnError(.unimplemented, contains: ["list(tensor)"]) { _ = try AttrValue(proto: tensors) }
        var mixed = Tensorflow_AttrValue()
        mixed.list.i = [1]
        mixed.list.f = [1]
        assertKilnError(.invalidArgument, contains: ["mixes"]) { _ = try AttrValue(proto: mixed) }
        assertKilnError(.invalidArgument, contains: ["no value"]) { _ = try AttrValue(proto: Tensorflow_AttrValue()) }
    }

    func testTensorProtoTypedFieldsRepeatTheLastValueAndContentMustMatchTheShape() throws {
        var p = Tensorflow_TensorProto()
        p.dtype = .dtInt64
        p.tensorShape = Shape([2, 3]).proto
        p.int64Val = [7, -1]
        XCTAssertEqual(try Tensor(proto: p).scalars(as: Int64.self), [7, -1, -1, -1, -1, -1])
        p.int64Val = []
        XCTAssertEqual(try Tensor(proto: p).scalars(as: Int64.self), [0, 0, 0, 0, 0, 0])
        p.int64Val = [1, 2, 3, 4, 5, 6, 7, 8]
        XCTAssertEqual(try Tensor(proto: p).scalars(as: Int64.self), [1, 2, 3, 4, 5, 6])

        var s = Tensorflow_TensorProto()
        s.dtype = .dtString
        s.tensorShape = Shape([3]).proto
        s.stringVal = [Data("ab".utf8)]
        XCTAssertEqual(try Tensor(proto: s).strings, [Array("ab".utf8), Array("ab".utf8), Array("ab".utf8)])

        var u = Tensorflow_TensorProto()
        u.dtype = .dtUint8
        u.tensorShape = Shape([2]).proto
        u.intVal = [255, 3]
        XCTAssertEqual(try Tensor(proto: u).scalars(as: UInt8.self), [255, 3])

        var c = Tensorflow_TensorProto()
        c.dtype = .dtFloat
        c.tensorShape = Shape([2]).proto
        c.tensorContent = Data([0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0])
        XCTAssertEqual(try Tensor(proto: c).scalars(as: Float.self), [1, -2])
        c.tensorContent = Data([0, 0, 0x80, 0x3F, 0, 0])
        assertKilnError(.invalidArgument, contains: ["needs 8 bytes", "got 6"]) { _ = try Tensor(proto: c) }

        var huge = Tensorflow_TensorProto()
        huge.dtype = .dtFloat
        huge.tensorShape = Shape([1 << 20, 1 << 20]).proto
        huge.floatVal = [1]
        assertKilnError(.resourceExhausted, contains: ["[1048576,1048576]", "refusing"]) { _ = try Tensor(proto: huge) }
        huge.tensorShape = Shape(dims: [nil]).proto
        assertKilnError(.invalidArgument, contains: ["fully known"]) { _ = try Tensor(proto: huge) }
        huge.tensorShape = Shape([1 << 40, 1 << 40]).proto
        assertKilnError(.invalidArgument, contains: ["too many elements"]) { _ = try Tensor(proto: huge) }
    }

    func testTensorProtoEncodingFollowsTensorFlowsPythonWriter() throws {
        let scalar = Tensor(2.5 as Float).proto
        XCTAssertEqual(scalar.floatVal, [2.5])
        XCTAssertTrue(scalar.tensorContent.isEmpty)
        XCTAssertTrue(scalar.hasTensorShape, "a scalar's shape is written as an empty message")
        let matrix = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Double]).proto
        XCTAssertEqual(matrix.tensorContent.count, 32)
        XCTAssertTrue(matrix.doubleVal.isEmpty)
        XCTAssertEqual(try Tensor(shape: [3], scalars: [true, false, true]).proto.boolVal, [true, false, true])
        for t in [try Tensor(shape: [2], scalars: [9, 200] as [UInt8]), Tensor(7 as UInt8), try Tensor(shape: [0], scalars: [Int32]()),
                  try Tensor(shape: [2], strings: [[1, 2], []]), try Tensor(shape: [1, 2], scalars: [Int64.min, Int64.max])] {
            XCTAssertEqual(try Tensor(proto: t.proto), t)
        }
    }
}

private extension Graph {
    /// The binary export of `text` imported without a prefix.
    func importGraphDefAndExport(_ text: String) throws -> Data {
        try importGraphDef(text: text, prefix: "")
        return try serializedGraphDef()
    }
}
