import XCTest
import KilnIR
import KilnTestSupport
@testable import KilnFrontend

/// Graphs TensorFlow refuses when they are built are refused by Kiln too, with an
/// invalidArgument error naming the node and the bad value, through the API and GraphDef import.
final class RefusedGraphTests: XCTestCase {
    private func floatConst(_ g: Graph, _ v: [Float], name: String = "bad") throws -> Output {
        try g.constant(v, name: name)
    }

    func testFloatShapesAndAxesAreRefusedForEveryIntegerInput() throws {
        let g = Graph()
        let x = try g.constant([[1, 2], [3, 4]] as [[Float]], name: "x")
        let f2 = try floatConst(g, [2, 2], name: "f2")
        let fp = try g.constant([[0, 0], [1, 1]] as [[Float]], name: "fpairs")
        let f0 = try g.constant(0 as Float, name: "f0")
        let cases: [(String, [Output], String)] = [
            ("Reshape", [x, f2], "Tshape"), ("Tile", [x, f2], "Tmultiples"), ("Transpose", [x, f2], "Tperm"),
            ("Sum", [x, f0], "Tidx"), ("Mean", [x, f0], "Tidx"), ("ArgMax", [x, f0], "Tidx"),
            ("Pad", [x, fp], "Tpaddings"), ("Fill", [f2, f0], "index_type"), ("ExpandDims", [x, f0], "Tdim"),
            ("ConcatV2", [x, x, f0], "Tidx"), ("BroadcastTo", [x, f2], "Tidx"), ("Slice", [x, f2, f2], "Index"),
            ("RandomUniform", [f2], "T"),
        ]
        for (op, inputs, attr) in cases {
            assertKilnError(.invalidArgument, contains: ["Value for attr '\(attr)' of float32", "int32, int64", "'\(op.lowercased())_node'", op]) {
                try g.addOperation(op, name: "\(op.lowercased())_node", inputs: inputs, attrs: ["dtype": .type(.float32)])
            }
        }
    }

    func testAScalarHasNoAxisZeroToReduceSqueezeOrGather() throws {
        let g = Graph()
        let s = try g.constant(3 as Float, name: "s")
        let i = try g.constant([0] as [Int32], name: "i")
        assertKilnError(.invalidArgument, contains: ["axis 0 is out of range", "rank 0", "'am'"]) { try g.argmax(s, axis: 0, name: "am") }
        assertKilnError(.invalidArgument, contains: ["axis 0 is out of range", "rank 0", "'sq'"]) { try g.squeeze(s, axes: [0], name: "sq") }
        assertKilnError(.invalidArgument, contains: ["axis -1 is out of range", "rank 0", "'sq1'"]) { try g.squeeze(s, axes: [-1], name: "sq1") }
        assertKilnError(.invalidArgument, contains: ["axis 0 is out of range", "rank 0", "'ga'"]) { try g.gather(s, i, axis: 0, name: "ga") }
    }

    func testStringConstantUsedAsShapeIsRefused() throws {
        let g = Graph()
        let x = try g.constant([1, 2, 3, 4] as [Float])
        let s = try g.constant(Tensor(shape: [2], strings: [Array("2".utf8), Array("2".utf8)]), name: "s")
        assertKilnError(.invalidArgument, contains: ["Tshape", "string", "'r'"]) {
            try g.addOperation("Reshape", name: "r", inputs: [x, s])
        }
    }

    func testShapesAndAxesOfTheWrongRankOrEmptyAreRefused() throws {
        let g = Graph()
        let x = try g.constant([[1, 2], [3, 4]] as [[Float]])
        let empty = try g.constant(Tensor(shape: [0], scalars: [Int32]()), name: "empty")
        assertKilnError(.invalidArgument, contains: ["must be a scalar", "shape [0]", "'cat'"]) {
            try g.addOperation("ConcatV2", name: "cat", inputs: [x, x, empty])
        }
        assertKilnError(.invalidArgument, contains: ["a scalar or a vector of one element", "'ed'"]) {
            try g.addOperation("ExpandDims", name: "ed", inputs: [x, empty])
        }
        assertKilnError(.invalidArgument, contains: ["must be a scalar", "'oh'"]) {
            let idx = try g.constant([0, 1] as [Int32])
            let on = try g.constant(1 as Float), off = try g.constant(0 as Float)
            return try g.addOperation("OneHot", name: "oh", inputs: [idx, empty, on, off])
        }
        let matrixShape = try g.constant([[2, 2]] as [[Int32]], name: "m")
        assertKilnError(.invalidArgument, contains: ["must be a vector (rank 1)", "shape [1,2]", "'r'"]) {
            try g.addOperation("Reshape", name: "r", inputs: [x, matrixShape])
        }
        let flatPads = try g.constant([1, 1, 1, 1] as [Int32], name: "p")
        assertKilnError(.invalidArgument, contains: ["[n, 2] matrix", "'pad'"]) {
            try g.addOperation("Pad", name: "pad", inputs: [x, flatPads])
        }
    }

    func testGraphDefNodesWithFloatShapesOrMismatchedConstsAreRefused() throws {
        let floatShape = """
        node { name: "x" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } } float_val: 1 } } } }
        node { name: "s" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 2 } } float_val: 2 } } } }
        node { name: "r" op: "Reshape" input: "x" input: "s"
               attr { key: "T" value { type: DT_FLOAT } } attr { key: "Tshape" value { type: DT_FLOAT } } }
        """
        assertKilnError(.invalidArgument, contains: ["Tshape", "float32", "import/r"]) { try Graph().importGraphDef(text: floatShape) }

        let mismatched = """
        node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_INT32 } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { } float_val: 1.5 } } } }
        """
        assertKilnError(.invalidArgument, contains: ["Type mismatch between value (float32) and dtype (int32)", "import/c"]) {
            try Graph().importGraphDef(text: mismatched)
        }

        // The node's own type attr must agree with the tensor it is given.
        let wrongAttr = """
        node { name: "x" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 4 } } float_val: 1 } } } }
        node { name: "s" op: "Const" attr { key: "dtype" value { type: DT_INT64 } }
               attr { key: "value" value { tensor { dtype: DT_INT64 tensor_shape { dim { size: 2 } } int64_val: 2 } } } }
        node { name: "r" op: "Reshape" input: "x" input: "s"
               attr { key: "T" value { type: DT_FLOAT } } attr { key: "Tshape" value { type: DT_INT32 } } }
        """
        assertKilnError(.invalidArgument, contains: ["int64", "'Tshape' = int32", "import/r"]) { try Graph().importGraphDef(text: wrongAttr) }
    }

    func testConstWhoseDTypeAttrDisagreesIsRefusedThroughTheAPI() throws {
        let g = Graph()
        assertKilnError(.invalidArgument, contains: ["Type mismatch between value (int32) and dtype (float32)", "'c'"]) {
            try g.addOperation("Const", name: "c", attrs: ["value": .tensor(Tensor(3 as Int32)), "dtype": .type(.float32)])
        }
    }

    func testNegativePlaceholderDimensionsAreRefusedAndMinusOneIsUnknown() throws {
        let g = Graph()
        assertKilnError(.invalidArgument, contains: ["Dimension -2 must be >= -1", "'p'"]) {
            try g.placeholder(.float32, shape: Shape([-2, 3]), name: "p")
        }
        XCTAssertEqual(try g.placeholder(.float32, shape: Shape([-1, 3]), name: "q").shape, Shape(dims: [nil, 3]))
        assertKilnError(.invalidArgument, contains: ["Dimension -5", "'v'"]) {
            try g.addOperation("VariableV2", name: "v", attrs: ["dtype": .type(.float32), "shape": .shape(Shape([-5]))])
        }
        let pb = """
        node { name: "p" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } }
               attr { key: "shape" value { shape { dim { size: -3 } } } } }
        """
        assertKilnError(.invalidArgument, contains: ["-3"]) { try Graph().importGraphDef(text: pb) }
    }

    func testMatMulOfRankThreeIsRefusedAlsoWhenTheRankIsOnlyKnownAtRunTime() throws {
        let g = Graph()
        let a3 = try g.constant(0 as Float, shape: [2, 2, 2])
        assertKilnError(.invalidArgument, contains: ["Shape must be rank 2 but is rank 3", "'mm'"]) {
            try g.addOperation("MatMul", name: "mm", inputs: [a3, a3])
        }
        let x = try g.placeholder(.float32, name: "x"), y = try g.placeholder(.float32, name: "y")
        let p = try g.matmul(x, y, name: "late")
        assertKilnError(.invalidArgument, contains: ["Shape must be rank 2 but is rank 3", "'late'"]) {
            try Lowering.lower(fetches: [p], feeds: [(x, f32(2, 2, 2)), (y, f32(2, 2, 2))], targets: [])
        }
    }

    func testSizeAndShapeWithInt32OutputRefuseCountsBeyondInt32() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, name: "x")
        let size = try g.size(x, name: "n"), shape = try g.shape(x, name: "s")
        let big = f32(65536, 32769)   // 2^31 + 65536 elements: never allocated, only typed
        assertKilnError(.invalidArgument, contains: ["larger than representable by 32-bit output type", "2147549184", "'n'"]) {
            try Lowering.lower(fetches: [size], feeds: [(x, big)], targets: [])
        }
        let wide = try g.size(x, outType: .int64, name: "n64")
        let lowered = try Lowering.lower(fetches: [wide], feeds: [(x, big)], targets: [])
        guard case .constant(let t)? = lowered.function.body.last?.op else { return XCTFail("Size should lower to a constant") }
        XCTAssertEqual(try t.scalars(as: Int64.self), [2_147_549_184])
        assertKilnError(.invalidArgument, contains: ["Shape output type is 32-bit but dim 0 is 3000000000", "'s'"]) {
            try Lowering.lower(fetches: [shape], feeds: [(x, f32(3_000_000_000))], targets: [])
        }
        assertKilnError(.invalidArgument, contains: ["out_type", "float32"]) { try g.size(x, outType: .float32) }
    }

    func testConcatenatingScalarsIsRefused() throws {
        let g = Graph()
        let a = try g.constant(1 as Float), b = try g.constant(2 as Float)
        assertKilnError(.invalidArgument, contains: ["Can't concatenate scalars (use tf.stack instead)", "'cat'"]) {
            try g.concat([a, b], axis: 0, name: "cat")
        }
        let x = try g.placeholder(.float32, name: "x"), y = try g.placeholder(.float32, name: "y")
        let late = try g.concat([x, y], axis: 0, name: "late")
        assertKilnError(.invalidArgument, contains: ["Can't concatenate scalars", "'late'"]) {
            try Lowering.lower(fetches: [late], feeds: [(x, f32()), (y, f32())], targets: [])
        }
    }

    func testZeroStridesAndWindowsLargerThanTheInputAreRefused() throws {
        let g = Graph()
        let img = try g.constant(0 as Float, shape: [1, 4, 4, 1])
        let w = try g.constant(0 as Float, shape: [2, 2, 1, 1])
        assertKilnError(.invalidArgument, contains: ["strides", "at least 1", "'conv'"]) {
            try g.conv2d(img, w, strides: [1, 0, 1, 1], padding: "SAME", name: "conv")
        }
        assertKilnError(.invalidArgument, contains: ["strides", "'pool'"]) {
            try g.maxPool(img, ksize: [1, 2, 2, 1], strides: [1, 1, 0, 1], padding: "VALID", name: "pool")
        }
        assertKilnError(.invalidArgument, contains: ["ksize", "'pool0'"]) {
            try g.maxPool(img, ksize: [1, 0, 2, 1], strides: [1, 1, 1, 1], padding: "SAME", name: "pool0")
        }
        assertKilnError(.invalidArgument, contains: ["Computed output size would be negative", "input_size: 4, effective_filter_size: 6", "'big'"]) {
            try g.maxPool(img, ksize: [1, 6, 6, 1], strides: [1, 1, 1, 1], padding: "VALID", name: "big")
        }
        assertKilnError(.invalidArgument, contains: ["Attr ksize has value 4611686018427387904 out of range for an int32", "'huge'"]) {
            try g.maxPool(img, ksize: [1, 1 << 62, 2, 1], strides: [1, 1, 1, 1], padding: "SAME", name: "huge")
        }
    }

    func testShapeArithmeticThatOverflowsIsAnErrorNamingTheNode() throws {
        let g = Graph()
        let x = try g.constant(0 as Float, shape: [4, 4])
        // The API's int32 constants refuse what int32 cannot hold; int64 shapes reach the shape functions.
        assertKilnError(.invalidArgument, contains: ["does not fit in int32", "'t/multiples'"]) { try g.tile(x, multiples: [1 << 62, 1 << 62], name: "t") }
        assertKilnError(.invalidArgument, contains: ["does not fit in int32", "'r/shape'"]) { try g.reshape(x, [1 << 40, 1 << 40, -1], name: "r") }
        let multiples = try g.constant([1 << 62, 1 << 62] as [Int64])
        assertKilnError(.invalidArgument, contains: ["Tiling dimension 4 by 4611686018427387904 overflows", "'t64'"]) {
            try g.addOperation("Tile", name: "t64", inputs: [x, multiples])
        }
        let dims = try g.constant([1 << 40, 1 << 40, -1] as [Int64])
        assertKilnError(.invalidArgument, contains: ["more elements than can be addressed", "'r64'"]) {
            try g.addOperation("Reshape", name: "r64", inputs: [x, dims])
        }
        assertKilnError(.invalidArgument, contains: ["does not fit in int32", "'pad/paddings'"]) { try g.pad(x, paddings: [[Int.max, 1], [0, 0]], name: "pad") }
        let pads = try g.constant([[Int64.max, 1], [0, 0]] as [[Int64]], name: "pads")
        assertKilnError(.invalidArgument, contains: ["overflows", "'pad64'"]) { try g.addOperation("Pad", name: "pad64", inputs: [x, pads]) }
        assertKilnError(.invalidArgument, contains: ["overflows", "'p'"]) {
            try g.placeholder(.float32, shape: Shape([1 << 40, 1 << 40, 1 << 40]), name: "p")
        }
        assertKilnError(.invalidArgument, contains: ["does not fit in int32", "'f/dims'"]) { try g.fill([1 << 31, 1 << 31, 4], 0, name: "f") }
        let fillDims = try g.constant([1 << 31, 1 << 31, 4] as [Int64], name: "fill_dims")
        assertKilnError(.invalidArgument, contains: ["more than 2^63 bytes", "'f64'"]) {
            try g.addOperation("Fill", name: "f64", inputs: [fillDims, g.constant(0 as Float)])
        }
        assertKilnError(.invalidArgument, contains: ["overflows", "'cat'"]) {
            let a = try g.placeholder(.uint8, shape: Shape([Int.max / 2 + 1]))
            return try g.concat([a, a], axis: 0, name: "cat")
        }
        // The largest int64 axis is out of range, not a trap converting it.
        let axis = try g.constant(Int64.max, name: "axis")
        assertKilnError(.invalidArgument, contains: ["Invalid reduction dimension 9223372036854775807", "'sum'"]) {
            try g.addOperation("Sum", name: "sum", inputs: [x, axis])
        }
        assertKilnError(.invalidArgument, contains: ["finite", "'range'"]) { try g.range(0, .infinity, 1, dtype: .float32, name: "range") }
        assertKilnError(.invalidArgument, contains: ["addressable", "'range2'"]) { try g.range(0, 1e300, 1, dtype: .float64, name: "range2") }
        let flag = try g.constant(true)
        assertKilnError(.invalidArgument, contains: ["'Tidx' of bool", "'range3'"]) { try g.addOperation("Range", name: "range3", inputs: [flag, flag, flag]) }
        let two = try g.constant([0, 1] as [Int32]), one = try g.constant(1 as Int32)
        assertKilnError(.invalidArgument, contains: ["must be scalars", "'range4'"]) { try g.addOperation("Range", name: "range4", inputs: [two, one, one]) }
    }

    func testShapesKnownOnlyWhenLoweredAreCheckedByTheShapeFunction() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, name: "x")
        let w = try g.constant(0 as Float, shape: [2, 2, 1, 1])
        let conv = try g.conv2d(x, w, strides: [1, 1, 1, 1], padding: "VALID", name: "conv")
        assertKilnError(.invalidArgument, contains: ["rank-4", "'conv'"]) {
            try Lowering.lower(fetches: [conv], feeds: [(x, f32(4, 4))], targets: [])
        }
        assertKilnError(.invalidArgument, contains: ["Computed output size would be negative", "'conv'"]) {
            try Lowering.lower(fetches: [conv], feeds: [(x, f32(1, 1, 1, 1))], targets: [])
        }
        let p = try g.constant([1, 2, 3] as [Float]), i = try g.placeholder(.int32, name: "i")
        let gathered = try g.addOperation("GatherNd", name: "gnd", inputs: [p, i]).output()
        assertKilnError(.invalidArgument, contains: ["at least rank 1", "'gnd'"]) {
            try Lowering.lower(fetches: [gathered], feeds: [(i, i32())], targets: [])
        }
    }

    func testHugeConstantsAreRefusedAndLargeZerosAreFills() throws {
        let g = Graph()
        assertKilnError(.invalidArgument, contains: ["larger than 2GB", "'big'"]) {
            try g.constant(0 as Float, shape: [100_000, 100_000], name: "big")
        }
        // Nothing of 40 GB is made while building: zeros of that shape is a Fill, as in TensorFlow.
        let z = try g.zeros([100_000, 100_000], name: "z")
        XCTAssertEqual(z.op.type, "Fill")
        XCTAssertEqual(z.shape, Shape([100_000, 100_000]))
        XCTAssertEqual(try g.ones([3, 3]).op.type, "Const")
    }

    func testValuesTooLargeToAddressAreRefusedWhenLowered() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, name: "x")
        // The input's shape is known only when lowered; the IR builder checks every value's size.
        let big = try g.addOperation("Tile", name: "big", inputs: [x, g.constant([1 << 40, 1 << 40] as [Int64])]).output()
        assertKilnError(.invalidArgument, contains: ["too large to address", "'big'"]) {
            try Lowering.lower(fetches: [big], feeds: [(x, f32(4, 4))], targets: [])
        }
    }
}
