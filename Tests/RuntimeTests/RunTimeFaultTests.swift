import XCTest
import Kiln
import KilnTestSupport

/// Out-of-range indices and integer division by zero fail the run with TensorFlow's error, never
/// silent zeros: compiled (values fed at run time) and constant-folded (values known at compile
/// time) alike.
final class RunTimeFaultTests: XCTestCase {
    /// Runs `fetch` twice: with `value` fed to a placeholder (compiled code) and with `value` as a
    /// constant (folded while compiling). Both must throw invalidArgument containing `message`
    /// and naming the node.
    func assertFault(_ value: Tensor, node: String, _ message: String, file: StaticString = #filePath, line: UInt = #line,
                     _ build: (Graph, Output) throws -> Output) throws {
        for fed in [true, false] {
            let g = Graph()
            let input = fed ? try g.placeholder(value.dtype, shape: Shape(value.shape), name: "input") : try g.constant(value, name: "input")
            let fetch = try build(g, input)
            let sess = try Session(graph: g)
            XCTAssertThrowsError(try sess.run([fetch], feeds: fed ? [input: value] : [:]), fed ? "compiled" : "folded", file: file, line: line) { error in
                guard let e = error as? KilnError else { return XCTFail("\(error)", file: file, line: line) }
                XCTAssertEqual(e.code, .invalidArgument, e.message, file: file, line: line)
                XCTAssertTrue(e.message.contains(message), "\(fed ? "compiled" : "folded"): \(e.message)", file: file, line: line)
                XCTAssertTrue(e.message.contains("'\(node)'"), "\(fed ? "compiled" : "folded"): \(e.message)", file: file, line: line)
            }
        }
    }

    func run(_ value: Tensor, _ build: (Graph, Output) throws -> Output) throws -> Tensor {
        let g = Graph()
        let input = try g.placeholder(value.dtype, shape: Shape(value.shape), name: "input")
        return try Session(graph: g).run(try build(g, input), feeds: [input: value])
    }

    static let params = try! Tensor(shape: [5, 2], scalars: (0..<10).map(Float.init))

    func testGatherIndexPastTheEndOrNegativeIsTensorFlowsError() throws {
        for (indices, message) in [([0, 7, 1, 2], "indices[1] = 7 is not in [0, 5)"), ([0, 1, -1, 9], "indices[2] = -1 is not in [0, 5)")] {
            try assertFault(try Tensor(shape: [4], scalars: indices.map(Int32.init)), node: "lookup", message) { g, i in
                try g.gather(g.constant(Self.params), i, name: "lookup")
            }
            try assertFault(try Tensor(shape: [4], scalars: indices.map(Int64.init)), node: "lookup", message) { g, i in
                try g.gather(g.constant(Self.params), i, name: "lookup")
            }
        }
        let got = try run(try Tensor(shape: [3], scalars: [4, 0, 2] as [Int32])) { g, i in try g.gather(g.constant(Self.params), i) }
        XCTAssertEqual(try got.scalars(as: Float.self), [8, 9, 0, 1, 4, 5])
    }

    func testRandomUniformIntWithFedBoundsNeedsMinvalBelowMaxval() throws {
        for dtype in [DType.int32, .int64] {
            let g = Graph()
            let lo = try g.placeholder(dtype, shape: Shape([]), name: "lo"), hi = try g.placeholder(dtype, shape: Shape([]), name: "hi")
            let shape = try g.constant([64] as [Int32])
            let r = try g.addOperation("RandomUniformInt", name: "draw", inputs: [shape, lo, hi],
                                       attrs: ["Tout": .type(dtype), "T": .type(.int32), "seed": .int(1), "seed2": .int(2)]).output()
            let sess = try Session(graph: g)
            func scalar(_ v: Int) throws -> Tensor {
                dtype == .int32 ? try Tensor(shape: [], scalars: [Int32(v)]) : try Tensor(shape: [], scalars: [Int64(v)])
            }
            for (a, z, gap) in [(5, 3, -2), (4, 4, 0)] {
                assertKilnError(.invalidArgument, contains: ["Need minval < maxval", "= \(gap)", "'draw'"]) {
                    try sess.run(r, feeds: [lo: try scalar(a), hi: try scalar(z)])
                }
            }
            let values = try sess.run(r, feeds: [lo: try scalar(-2), hi: try scalar(3)]).converted(to: .int64).scalars(as: Int64.self)
            XCTAssertTrue(values.allSatisfy { (-2..<3).contains($0) }, "\(values)")
            XCTAssertEqual(Set(values).count, 5, "64 draws from 5 values hit each of them")
        }
    }

    func testGatherOnAnInnerAxisAndWithBatchDimsNamesTheIndexPosition() throws {
        try assertFault(try Tensor(shape: [2, 1], scalars: [0, 2] as [Int32]), node: "GatherV2", "indices[1,0] = 2 is not in [0, 2)") { g, i in
            try g.gather(g.constant(Self.params), i, axis: 1)
        }
        let p = try Tensor(shape: [2, 3], scalars: (0..<6).map(Float.init))
        try assertFault(try Tensor(shape: [2, 2], scalars: [0, 2, 1, 3] as [Int64]), node: "GatherV2", "indices[1,1] = 3 is not in [0, 3)") { g, i in
            try g.gather(g.constant(p), i, axis: 1, batchDims: 1)
        }
        let got = try run(try Tensor(shape: [2, 2], scalars: [0, 2, 1, 1] as [Int64])) { g, i in try g.gather(g.constant(p), i, axis: 1, batchDims: 1) }
        XCTAssertEqual(try got.scalars(as: Float.self), [0, 2, 4, 4])
    }

    func testGatherNdComponentOutsideItsDimensionIsAnError() throws {
        let p = try Tensor(shape: [2, 3], scalars: (0..<6).map(Float.init))
        // [0, 4] would be element 4 of the flattened params: in range, but not an index of [2,3].
        try assertFault(try Tensor(shape: [2, 2], scalars: [1, 2, 0, 4] as [Int32]), node: "GatherNd", "indices[1,1] = 4 does not index into param shape [2,3]") { g, i in
            try g.gatherNd(g.constant(p), i)
        }
        try assertFault(try Tensor(shape: [1, 1], scalars: [-1] as [Int64]), node: "GatherNd", "indices[0,0] = -1 does not index into param shape [2,3]") { g, i in
            try g.gatherNd(g.constant(p), i)
        }
        let got = try run(try Tensor(shape: [2, 2], scalars: [1, 2, 0, 1] as [Int32])) { g, i in try g.gatherNd(g.constant(p), i) }
        XCTAssertEqual(try got.scalars(as: Float.self), [5, 1])
    }

    func segmentSum(_ g: Graph, _ ids: Output, segments: Int) throws -> Output {
        let data = try g.constant(try Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6] as [Float]))
        return try g.addOperation("UnsortedSegmentSum", name: "segments", inputs: [data, ids, try g.constant(Int32(segments))],
                                  attrs: ["T": .type(.float32), "Tindices": .type(ids.dtype), "Tnumsegments": .type(.int32)]).output()
    }

    func testSegmentIdPastTheEndIsAnErrorAndANegativeOneDropsItsRow() throws {
        try assertFault(try Tensor(shape: [3], scalars: [0, 9, 1] as [Int32]), node: "segments", "segment_ids[1] = 9 is out of range [0, 4)") { g, ids in
            try segmentSum(g, ids, segments: 4)
        }
        try assertFault(try Tensor(shape: [3], scalars: [0, 1, 4] as [Int64]), node: "segments", "segment_ids[2] = 4 is out of range [0, 4)") { g, ids in
            try segmentSum(g, ids, segments: 4)
        }
        let got = try run(try Tensor(shape: [3], scalars: [1, -1, 1] as [Int32])) { g, ids in try segmentSum(g, ids, segments: 2) }
        XCTAssertEqual(try got.scalars(as: Float.self), [0, 0, 6, 8])
    }

    func testSparseCrossEntropyLabelOutsideTheClassesIsTensorFlowsError() throws {
        let logits = try Tensor(shape: [3, 5], scalars: (0..<15).map { Float($0 % 4) })
        for (labels, bad) in [([1, 7, 0], 7), ([-1, 0, 0], -1)] {
            try assertFault(try Tensor(shape: [3], scalars: labels.map(Int32.init)), node: "xent",
                            "Received a label value of \(bad) which is outside the valid range of [0, 5).") { g, l in
                try g.sparseSoftmaxCrossEntropyWithLogits(labels: l, logits: g.constant(logits), name: "xent")
            }
        }
        let loss = try run(try Tensor(shape: [3], scalars: [1, 4, 0] as [Int64])) { g, l in
            try g.sparseSoftmaxCrossEntropyWithLogits(labels: l, logits: g.constant(logits))
        }
        XCTAssertEqual(loss.shape, [3])
        XCTAssertTrue(try loss.scalars(as: Float.self).allSatisfy { $0.isFinite && $0 > 0 })
    }

    func testIntegerDivisionAndModuloByZeroAreErrorsForInt32AndInt64() throws {
        let ops: [(String, (Graph, Output, Output) throws -> Output)] = [
            ("Div", { g, x, y in try g.truncateDiv(x, y, name: "Div") }),
            ("FloorDiv", { g, x, y in try g.floorDiv(x, y, name: "FloorDiv") }),
            ("FloorMod", { g, x, y in try g.floorMod(x, y, name: "FloorMod") }),
        ]
        for dtype in [DType.int32, .int64] {
            func ints(_ v: [Int]) throws -> Tensor {
                dtype == .int32 ? try Tensor(shape: [v.count], scalars: v.map(Int32.init)) : try Tensor(shape: [v.count], scalars: v.map(Int64.init))
            }
            for (name, op) in ops {
                try assertFault(ints([3, 0, 2]), node: name, "Integer division by zero") { g, y in
                    try op(g, g.constant(ints([7, 7, 7])), y)
                }
                // A zero scalar divisor broadcast over the dividend.
                try assertFault(dtype == .int32 ? Tensor(Int32(0)) : Tensor(Int64(0)), node: name, "Integer division by zero") { g, y in
                    try op(g, g.constant(ints([7, -7])), y)
                }
            }
            try assertFault(ints([2, 0]), node: "Reciprocal", "Integer division by zero") { g, x in try g.reciprocal(x) }
            let want: [String: [Int64]] = ["Div": [-2, 2, -1], "FloorDiv": [-3, 2, -1], "FloorMod": [2, 1, 0]]
            for (name, op) in ops {
                let got = try run(ints([3, 3, -7])) { g, y in try op(g, g.constant(ints([-7, 7, 7])), y) }
                XCTAssertEqual(try got.converted(to: .int64).scalars(as: Int64.self), want[name], "\(name) \(dtype)")
            }
        }
        // Floating-point division by zero is IEEE's, as in TensorFlow.
        let inf = try run(try Tensor(shape: [1], scalars: [0] as [Float])) { g, y in try g.floorDiv(g.constant([1] as [Float]), y) }
        XCTAssertEqual(try inf.scalars(as: Float.self), [.infinity])
    }

    func testFusedGatherAndParallelKernelReportTheFirstBadPosition() throws {
        // The gather is computed inside its consumer's loop, split across the worker pool
        // (80,000 elements): the first bad position is reported whichever worker saw it.
        let table = try Tensor(shape: [100, 8], scalars: (0..<800).map { Float($0) })
        var idx = (0..<10_000).map { Int32($0 % 100) }
        idx[9000] = 100
        idx[500] = -3
        try assertFault(try Tensor(shape: [10_000], scalars: idx), node: "rows", "indices[500] = -3 is not in [0, 100)") { g, i in
            try g.tanh(g.gather(g.constant(table), i, name: "rows") * 2 + 1)
        }
        idx[500] = 5
        idx[9000] = 99
        let got = try run(try Tensor(shape: [10_000], scalars: idx)) { g, i in try g.gather(g.constant(table), i) * 2 + 1 }
        XCTAssertEqual(try got.scalars(as: Float.self), idx.flatMap { r in (0..<8).map { Float(2 * (8 * Int(r) + $0) + 1) } })
    }

    func testFailedTrainingStepLeavesVariablesAsTheyWereAndSessionUsable() throws {
        let g = Graph()
        let ids = try g.placeholder(.int32, shape: [nil], name: "ids")
        let embedding = try g.variable(try Tensor(shape: [4, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8] as [Float]), name: "embedding")
        let counts = try g.variable(try Tensor(shape: [3, 2], scalars: [Float](repeating: 0, count: 6)), name: "counts")
        let loss = try g.reduceSum(g.gather(embedding, ids, name: "lookup"))
        let train = try GradientDescentOptimizer(g, learningRate: 0.5).minimize(loss)
        // A write whose value gathers directly: the check must run before the variable's loop.
        let accumulate = try g.assignAdd(counts, g.gather(embedding, ids, name: "lookup2"))
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let before = try sess.run(embedding).scalars(as: Float.self)
        let bad = try Tensor(shape: [3], scalars: [0, 4, 1] as [Int32])
        // The step needs only the gather's gradient (its shape is static): the gradient's
        // segment sum finds the bad id.
        XCTAssertThrowsError(try sess.run(train, feeds: [ids: bad])) { e in
            XCTAssertTrue("\(e)".contains("segment_ids[1] = 4 is out of range [0, 4)") && "\(e)".contains("'gradients/lookup_grad/UnsortedSegmentSum'"), "\(e)")
        }
        XCTAssertThrowsError(try sess.run([accumulate], feeds: [ids: bad])) { e in
            XCTAssertTrue("\(e)".contains("indices[1] = 4 is not in [0, 4)") && "\(e)".contains("'lookup2'"), "\(e)")
        }
        XCTAssertEqual(try sess.run(embedding).scalars(as: Float.self), before)
        XCTAssertEqual(try sess.run(counts).scalars(as: Float.self), [0, 0, 0, 0, 0, 0])
        try sess.run(train, feeds: [ids: try Tensor(shape: [2], scalars: [3, 3] as [Int32])])
        XCTAssertEqual(try sess.run(embedding).scalars(as: Float.self), [1, 2, 3, 4, 5, 6, 6, 7])
    }
}
