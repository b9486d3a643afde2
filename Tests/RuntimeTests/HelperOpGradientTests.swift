import XCTest
import Foundation
import Kiln
import KilnFrontend

/// The gradients of the helper ops TensorFlow's gradient graphs contain (Cumsum, Cumprod, the
/// unsorted segment reductions (sum, max, min, prod), DynamicStitch, the scatters, MatrixBandPart, ReverseV2, Unpack,
/// DivNoNan) against central differences, as NumericGradientTests checks the other ops.
final class HelperOpGradientTests: XCTestCase {
    typealias Case = NumericGradientTests.Case

    static func node(_ g: Graph, _ type: String, _ inputs: [Output], _ attrs: [String: AttrValue] = [:]) throws -> KilnFrontend.Operation {
        var a = attrs
        if a["T"] == nil { a["T"] = .type(inputs[0].dtype) }
        return try g.addOperation(type, inputs: inputs, attrs: a)
    }

    static func ints(_ g: Graph, _ v: [Int], shape: [Int]? = nil) throws -> Output {
        try g.constant(Tensor(shape: shape ?? [v.count], scalars: v.map(Int32.init)))
    }

    static func cases() throws -> [Case] {
        var r = TestRandom(16)
        var c: [Case] = []
        for (exclusive, reverse) in [(false, false), (true, false), (false, true), (true, true)] {
            let flags = "exclusive \(exclusive) reverse \(reverse)"
            c.append(Case(name: "Cumsum axis 1 \(flags)", inputs: [try r.tensor([3, 5])], wrt: [0]) { g, x in
                try node(g, "Cumsum", [x[0], ints(g, [1], shape: [])], ["exclusive": .bool(exclusive), "reverse": .bool(reverse)]).output()
            })
            c.append(Case(name: "Cumprod axis -2 \(flags)", inputs: [try r.tensor([4, 3], 0.5, 1.5)], wrt: [0]) { g, x in
                try node(g, "Cumprod", [x[0], ints(g, [-2], shape: [])], ["exclusive": .bool(exclusive), "reverse": .bool(reverse)]).output()
            })
        }
        c.append(Case(name: "UnsortedSegmentSum with a dropped row", inputs: [try r.tensor([5, 2])], wrt: [0]) { g, x in
            try node(g, "UnsortedSegmentSum", [x[0], ints(g, [0, 2, -1, 2, 1]), ints(g, [3], shape: [])]).output()
        })
        for type in ["UnsortedSegmentMax", "UnsortedSegmentMin"] {
            c.append(Case(name: type, inputs: [try r.distinct([6, 2])], wrt: [0]) { g, x in
                try node(g, type, [x[0], ints(g, [0, 1, 0, 2, 1, 1]), ints(g, [3], shape: [])]).output()
            })
        }
        // Segment 0 without zeros, segment 1 with one zero, segment 2 with two; one dropped row.
        let withZeros = try Tensor(shape: [7, 2], scalars: [0.5, -1.2, 0, 0.7, 1.3, 0.9, 0, 0.4, -0.8, 0, 1.1, -0.6, 0.3, 2.0] as [Double])
        c.append(Case(name: "UnsortedSegmentProd with zeros and a dropped row", inputs: [withZeros], wrt: [0]) { g, x in
            try node(g, "UnsortedSegmentProd", [x[0], ints(g, [0, 1, 0, 2, 1, 2, -1]), ints(g, [3], shape: [])]).output()
        })
        c.append(Case(name: "UnsortedSegmentProd", inputs: [try r.tensor([5, 3], 0.5, 1.5)], wrt: [0]) { g, x in
            try node(g, "UnsortedSegmentProd", [x[0], ints(g, [1, 0, 1, 1, 0]), ints(g, [2], shape: [])]).output()
        })
        c.append(Case(name: "DynamicStitch", inputs: [try r.tensor([2, 3]), try r.tensor([3, 3])], wrt: [0, 1]) { g, x in
            try node(g, "DynamicStitch", [ints(g, [0, 4]), ints(g, [1, 3, 2]), x[0], x[1]], ["N": .int(2)]).output()
        })
        c.append(Case(name: "ScatterNd with a repeated index", inputs: [try r.tensor([3, 2])], wrt: [0]) { g, x in
            try node(g, "ScatterNd", [ints(g, [1, 3, 1], shape: [3, 1]), x[0], ints(g, [5, 2])], ["T": .type(.float64), "Tindices": .type(.int32)]).output()
        })
        c.append(Case(name: "TensorScatterUpdate", inputs: [try r.tensor([4, 2]), try r.tensor([2, 2])], wrt: [0, 1]) { g, x in
            try node(g, "TensorScatterUpdate", [x[0], ints(g, [0, 2], shape: [2, 1]), x[1]], ["Tindices": .type(.int32)]).output()
        })
        c.append(Case(name: "MatrixBandPart lower 1 upper 2", inputs: [try r.tensor([2, 4, 4])], wrt: [0]) { g, x in
            try node(g, "MatrixBandPart", [x[0], g.constant(Tensor(Int64(1))), g.constant(Tensor(Int64(2)))], ["Tindex": .type(.int64)]).output()
        })
        c.append(Case(name: "ReverseV2 both axes", inputs: [try r.tensor([3, 4])], wrt: [0]) { g, x in
            try node(g, "ReverseV2", [x[0], ints(g, [0, -1])], ["Tidx": .type(.int32)]).output()
        })
        c.append(Case(name: "Unpack axis 1", inputs: [try r.tensor([3, 2])], wrt: [0]) { g, x in
            let parts = try node(g, "Unpack", [x[0]], ["axis": .int(1), "num": .int(2)])
            return try g.concat([parts.output(0), g.multiply(parts.output(1), g.constant(3.0))], axis: 0)
        })
        c.append(Case(name: "DivNoNan broadcast", inputs: [try r.tensor([2, 3]), try r.tensor([3], 0.5, 2)], wrt: [0, 1]) { g, x in
            try node(g, "DivNoNan", x).output()
        })
        return c
    }

    func testEveryHelperOpGradientMatchesCentralDifferences() throws {
        let cases = try Self.cases()
        var failed = 0
        for c in cases {
            let problems = try NumericGradientTests.check(c)
            if !problems.isEmpty { failed += 1 }
            for p in problems.prefix(4) { XCTFail("\(c.name): \(p)") }
        }
        print("helper op gradients: \(cases.count - failed) passed, \(failed) failed")
    }

    /// Values the golden file has no case for, worked out by TensorFlow's definitions.
    func testHelperOpValuesOutsideTheGoldenFile() throws {
        let g = Graph()
        func f32(_ v: [Float]) throws -> Output { try g.constant(Tensor(shape: [v.count], scalars: v)) }
        let reciprocalGrad = try Self.node(g, "ReciprocalGrad", [f32([2, 0.5]), f32([1, 3])]).output()
        let divNoNan = try Self.node(g, "DivNoNan", [f32([1, .nan, 3]), f32([0, 0, 2])]).output()
        let segMin = try Self.node(g, "UnsortedSegmentMin", [f32([4, 1, 3]), Self.ints(g, [1, 1, 0]), Self.ints(g, [3], shape: [])]).output()
        let segProd = try Self.node(g, "UnsortedSegmentProd", [Self.ints(g, [2, 3, 4]), Self.ints(g, [0, 0, 2]), Self.ints(g, [3], shape: [])]).output()
        let cumsum = try Self.node(g, "Cumsum", [Self.ints(g, [1, 2, 3, 4]), Self.ints(g, [0], shape: [])],
                                   ["exclusive": .bool(true), "reverse": .bool(true)]).output()
        let unpack = try Self.node(g, "Unpack", [Self.ints(g, [1, 2, 3, 4], shape: [2, 2])], ["num": .int(2)])
        let got = try Session(graph: g).run([reciprocalGrad, divNoNan, segMin, segProd, cumsum, unpack.output(0), unpack.output(1)])
        XCTAssertEqual(try got[0].scalars(as: Float.self), [-4, -0.75])
        XCTAssertEqual(try got[1].scalars(as: Float.self), [0, 0, 1.5])
        XCTAssertEqual(try got[2].scalars(as: Float.self), [3, 1, .greatestFiniteMagnitude])
        XCTAssertEqual(try got[3].scalars(as: Int32.self), [6, 1, 4])
        XCTAssertEqual(try got[4].scalars(as: Int32.self), [9, 7, 4, 0])
        XCTAssertEqual(try got[5].scalars(as: Int32.self), [1, 2])
        XCTAssertEqual(try got[6].scalars(as: Int32.self), [3, 4])
    }

    /// FusedBatchNormGradV3, the op TensorFlow's graphs carry, agrees with the symbolic gradient
    /// of FusedBatchNormV3 (itself checked against TensorFlow's golden gradients), in training
    /// and in inference mode.
    func testFusedBatchNormGradV3MatchesTheSymbolicGradient() throws {
        var r = TestRandom(3)
        for training in [true, false] {
            let g = Graph()
            let x = try g.constant(r.tensor([2, 3, 2, 4]))
            let scale = try g.constant(r.tensor([4], 0.5, 1.5)), offset = try g.constant(r.tensor([4]))
            let mean = try g.constant(r.tensor([4])), variance = try g.constant(r.tensor([4], 0.5, 2))
            let weights = try g.constant(r.tensor([2, 3, 2, 4]))
            let bn = try g.fusedBatchNorm(x, scale: scale, offset: offset, mean: training ? nil : mean, variance: training ? nil : variance,
                                          epsilon: 0.01, isTraining: training)
            let symbolic = try g.gradients([g.reduceSum(g.multiply(bn.y, weights))], [x, scale, offset]).map { $0! }
            let reserve1 = training ? bn.mean : mean, reserve2 = training ? bn.variance : variance
            let op = try Self.node(g, "FusedBatchNormGradV3", [weights, x, scale, reserve1, reserve2, reserve1],
                                   ["U": .type(.float64), "epsilon": .float(0.01), "is_training": .bool(training)])
            let sess = try Session(graph: g)
            let want = try sess.run(symbolic)
            let got = try sess.run((0..<3).map { op.output($0) })
            for k in 0..<3 {
                if let m = Golden.mismatch(got[k], want[k], rtol: 1e-9, atol: 1e-12) { XCTFail("training \(training), output \(k): \(m)") }
            }
            XCTAssertEqual(try sess.run(op.output(3)).shape, [0])
        }
    }

    /// Hostile input: TensorFlow's errors, when the node is made where shapes and values are
    /// known, else when the run meets them; never a crash.
    func testBadShapesAndIndicesAreTensorFlowErrors() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [4, 3])
        XCTAssertThrowsError(try Self.node(g, "InvertPermutation", [Self.ints(g, [0, 0, 1])])) { e in
            XCTAssertTrue("\(e)".contains("0 is duplicated in the input"), "\(e)")
        }
        XCTAssertThrowsError(try Self.node(g, "ConcatOffset", [Self.ints(g, [1], shape: []), Self.ints(g, [2, 3]), Self.ints(g, [3, 3])])) { e in
            XCTAssertTrue("\(e)".contains("All dimensions except 1 must match"), "\(e)")
        }
        XCTAssertThrowsError(try Self.node(g, "Cumsum", [x, Self.ints(g, [2], shape: [])])) { e in
            XCTAssertTrue("\(e)".contains("axis must be in range [-2, 2), but received: 2"), "\(e)")
        }
        XCTAssertThrowsError(try Self.node(g, "ScatterNd", [Self.ints(g, [1, 2], shape: [2, 1]), g.constant(Tensor(shape: [3], scalars: [1, 2, 3] as [Float])),
                                                            Self.ints(g, [5])], ["T": .type(.float32), "Tindices": .type(.int32)])) { e in
            XCTAssertTrue("\(e)".contains("Dimensions of updates"), "\(e)")
        }
        XCTAssertThrowsError(try Self.node(g, "UnsortedSegmentMax", [x, g.placeholder(.int32, shape: [5]), Self.ints(g, [2], shape: [])])) { e in
            XCTAssertTrue("\(e)".contains("does not start with segment_ids.shape"), "\(e)")
        }
        XCTAssertThrowsError(try Self.node(g, "DynamicStitch", [Self.ints(g, [0, -1]), g.constant(Tensor(shape: [2], scalars: [1, 2] as [Float]))], ["N": .int(1)])) { e in
            XCTAssertTrue("\(e)".contains("negative"), "\(e)")
        }

        // Fed indices out of range: InvalidArgument when the run reaches them.
        let ids = try g.placeholder(.int32, shape: [4])
        let seg = try Self.node(g, "UnsortedSegmentMax", [x, ids, Self.ints(g, [3], shape: [])]).output()
        let idx = try g.placeholder(.int32, shape: [2, 1])
        let upd = try g.placeholder(.float32, shape: [2, 3])
        let scattered = try Self.node(g, "TensorScatterUpdate", [x, idx, upd], ["Tindices": .type(.int32)]).output()
        let sess = try Session(graph: g)
        let data = try Tensor(zeros: .float32, shape: [4, 3])
        XCTAssertThrowsError(try sess.run(seg, feeds: [x: data, ids: Tensor(shape: [4], scalars: [0, 1, 7, 2] as [Int32])])) { e in
            XCTAssertEqual((e as? KilnError)?.code, .invalidArgument)
            XCTAssertTrue("\(e)".contains("segment_ids[2] = 7 is out of range [0, 3)"), "\(e)")
        }
        XCTAssertThrowsError(try sess.run(scattered, feeds: [x: data, idx: Tensor(shape: [2, 1], scalars: [1, 4] as [Int32]),
                                                             upd: Tensor(zeros: .float32, shape: [2, 3])])) { e in
            XCTAssertEqual((e as? KilnError)?.code, .invalidArgument)
            XCTAssertTrue("\(e)".contains("indices[1,0] = 4 does not index into shape [4,3]"), "\(e)")
        }
        // Sizes no memory holds, and value-dependent lengths of fed data: errors, not crashes.
        let huge = try Self.node(g, "UnsortedSegmentMax", [x, Self.ints(g, [0, 1, 2, 3]), Self.ints(g, [1 << 30], shape: [])]).output()
        XCTAssertThrowsError(try sess.run(huge, feeds: [x: data]))
        let wide = try Self.node(g, "ScatterNd", [Self.ints(g, [1, 2], shape: [2, 1]), g.constant(Tensor(shape: [2], scalars: [1, 2] as [Float])),
                                                  g.constant(Tensor(shape: [1], scalars: [Int64(1) << 50]))], ["T": .type(.float32), "Tindices": .type(.int32)]).output()
        XCTAssertThrowsError(try sess.run(wide))
        let far = try Self.node(g, "DynamicStitch", [Self.ints(g, [0, Int(Int32.max)]), g.constant(Tensor(shape: [2], scalars: [1, 2] as [Float]))], ["N": .int(1)]).output()
        XCTAssertThrowsError(try sess.run(far))
        let fedList = try g.placeholder(.int32, shape: [4])
        let diff = try Self.node(g, "ListDiff", [fedList, Self.ints(g, [1])], ["out_idx": .type(.int32)]).output()
        XCTAssertThrowsError(try sess.run(diff, feeds: [fedList: Tensor(shape: [4], scalars: [1, 2, 3, 4] as [Int32])])) { e in
            XCTAssertEqual((e as? KilnError)?.code, .unimplemented, "\(e)")
        }
        let perm = try g.placeholder(.int32, shape: [3])
        let inverse = try Self.node(g, "InvertPermutation", [perm]).output()
        XCTAssertEqual(try sess.run(inverse, feeds: [perm: Tensor(shape: [3], scalars: [2, 0, 1] as [Int32])]).scalars(as: Int32.self), [1, 2, 0])
        XCTAssertThrowsError(try sess.run(inverse, feeds: [perm: Tensor(shape: [3], scalars: [2, 0, 3] as [Int32])])) { e in
            XCTAssertTrue("\(e)".contains("x[2] = 3 is not between 0 and 3"), "\(e)")
        }
    }
}
