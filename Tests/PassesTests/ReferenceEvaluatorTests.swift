import XCTest
import KilnIR
import KilnPasses

private func eval(_ op: Op, _ x: Tensor...) throws -> Tensor { try ReferenceEvaluator.evaluate(op, x) }
private func vec<T: TensorScalar>(_ v: [T]) throws -> Tensor { try Tensor(shape: [v.count], scalars: v) }

final class ReferenceEvaluatorElementTests: XCTestCase {
    func testIntegerFloorDivisionRoundsTowardNegativeInfinity() throws {
        let a = try vec([7, -7, 7, -7, 6, -6, 0] as [Int32]), b = try vec([2, 2, -2, -2, 3, 3, -4] as [Int32])
        XCTAssertEqual(try eval(.binary(.floordiv), a, b).scalars(as: Int32.self), [3, -4, -4, 3, 2, -2, 0])
        let a64 = try vec([7, -7, 7, -7, Int64.min] as [Int64]), b64 = try vec([2, 2, -2, -2, 2] as [Int64])
        XCTAssertEqual(try eval(.binary(.floordiv), a64, b64).scalars(as: Int64.self), [3, -4, -4, 3, Int64.min / 2])
    }

    func testIntegerFloorModTakesTheSignOfTheDivisor() throws {
        let a = try vec([7, -7, 7, -7, 6, -6] as [Int32]), b = try vec([2, 2, -2, -2, 3, -3] as [Int32])
        XCTAssertEqual(try eval(.binary(.floormod), a, b).scalars(as: Int32.self), [1, 1, -1, -1, 0, 0])
        let a64 = try vec([-1, 1, -13] as [Int64]), b64 = try vec([5, -5, 4] as [Int64])
        XCTAssertEqual(try eval(.binary(.floormod), a64, b64).scalars(as: Int64.self), [4, -4, 3])
    }

    func testFloatFloorDivisionAndModFollowTensorFlow() throws {
        let a = try vec([7, -7, 7, -7, 5.5, -5.5, 5.5] as [Double]), b = try vec([2, 2, -2, -2, -2, 2, 2] as [Double])
        XCTAssertEqual(try eval(.binary(.floordiv), a, b).scalars(as: Double.self), [3, -4, -4, 3, -3, -3, 2])
        XCTAssertEqual(try eval(.binary(.floormod), a, b).scalars(as: Double.self), [1, 1, -1, -1, -0.5, 0.5, 1.5])
        let af = try vec([7, -7, 7, -7, -0.75] as [Float]), bf = try vec([2, 2, -2, -2, 0.5] as [Float])
        XCTAssertEqual(try eval(.binary(.floordiv), af, bf).scalars(as: Float.self), [3, -4, -4, 3, -2])
        XCTAssertEqual(try eval(.binary(.floormod), af, bf).scalars(as: Float.self), [1, 1, -1, -1, 0.25])
    }

    func testIntegerDivisionByZeroGivesZero() throws {
        let a = try vec([7, -7, 0] as [Int32]), z = try vec([0, 0, 0] as [Int32])
        for op in [BinaryOp.div, .floordiv, .floormod] {
            XCTAssertEqual(try eval(.binary(op), a, z).scalars(as: Int32.self), [0, 0, 0], "\(op)")
        }
        XCTAssertEqual(try eval(.binary(.div), vec([9] as [UInt8]), vec([0] as [UInt8])).scalars(as: UInt8.self), [0])
        XCTAssertEqual(try eval(.binary(.div), vec([Int64.min] as [Int64]), vec([0] as [Int64])).scalars(as: Int64.self), [0])
    }

    func testIntegerDivisionTruncatesTowardZero() throws {
        XCTAssertEqual(try eval(.binary(.div), vec([7, -7, 7, -7] as [Int32]), vec([2, 2, -2, -2] as [Int32])).scalars(as: Int32.self),
                       [3, -3, -3, 3])
    }

    func testRoundIsHalfToEven() throws {
        let x = try vec([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6, 3.5] as [Float])
        XCTAssertEqual(try eval(.unary(.round), x).scalars(as: Float.self), [0, 2, 2, 0, -2, -2, 2, 3, 4])
        XCTAssertEqual(try eval(.unary(.round), vec([0.5, 1.5, -2.5] as [Double])).scalars(as: Double.self), [0, 2, -2])
    }

    func testMaxAndMinPropagateNaNFromEitherSide() throws {
        let a = try vec([.nan, 1, 2, .nan] as [Float]), b = try vec([1, .nan, 3, .nan] as [Float])
        for op in [BinaryOp.max, .min] {
            let r = try eval(.binary(op), a, b).scalars(as: Float.self)
            XCTAssertTrue(r[0].isNaN && r[1].isNaN && r[3].isNaN, "\(op): \(r)")
            XCTAssertEqual(r[2], op == .max ? 3 : 2)
        }
        let d = try eval(.binary(.max), vec([1] as [Double]), vec([.nan] as [Double])).scalar(as: Double.self)
        XCTAssertTrue(d.isNaN)
    }

    func testReduceMaxPropagatesNaN() throws {
        let r = try eval(.reduce(.max, axes: [0]), vec([1, .nan, 3] as [Float])).scalar(as: Float.self)
        XCTAssertTrue(r.isNaN)
    }

    func testInt32ArithmeticWrapsAround() throws {
        XCTAssertEqual(try eval(.binary(.add), Tensor(Int32.max), Tensor(Int32(1))), Tensor(Int32.min))
        XCTAssertEqual(try eval(.binary(.sub), Tensor(Int32.min), Tensor(Int32(1))), Tensor(Int32.max))
        XCTAssertEqual(try eval(.binary(.mul), Tensor(Int32(65536)), Tensor(Int32(65536))), Tensor(Int32(0)))
        XCTAssertEqual(try eval(.unary(.neg), Tensor(Int32.min)), Tensor(Int32.min))
        XCTAssertEqual(try eval(.unary(.abs), Tensor(Int32.min)), Tensor(Int32.min))
        XCTAssertEqual(try eval(.binary(.add), Tensor(UInt8(255)), Tensor(UInt8(1))), Tensor(UInt8(0)))
        XCTAssertEqual(try eval(.binary(.add), Tensor(Int64.max), Tensor(Int64(1))), Tensor(Int64.min))
        XCTAssertEqual(try eval(.reduce(.sum, axes: [0]), vec([Int32.max, 1, 1] as [Int32])), Tensor(Int32.min + 1))
    }

    func testFloat32ArithmeticRoundsToFloat32() throws {
        // 2^24 + 1 is not a float32: the sum must round as float32 hardware does.
        XCTAssertEqual(try eval(.binary(.add), Tensor(Float(16_777_216)), Tensor(Float(1))), Tensor(Float(16_777_216)))
        XCTAssertEqual(try eval(.binary(.div), Tensor(Float(1)), Tensor(Float(3))), Tensor(Float(1) / 3))
    }

    func testComparisonsTreatNaNAsUnordered() throws {
        let a = try vec([.nan, 1, 2] as [Float]), b = try vec([.nan, 1, 3] as [Float])
        XCTAssertEqual(try eval(.compare(.eq), a, b).scalars(as: Bool.self), [false, true, false])
        XCTAssertEqual(try eval(.compare(.ne), a, b).scalars(as: Bool.self), [true, false, true])
        XCTAssertEqual(try eval(.compare(.le), a, b).scalars(as: Bool.self), [false, true, true])
        XCTAssertEqual(try eval(.compare(.gt), a, b).scalars(as: Bool.self), [false, false, false])
    }

    func testInt64ComparisonsAreExactBeyondDoublePrecision() throws {
        let a = Tensor((Int64(1) << 53) + 1), b = Tensor(Int64(1) << 53)
        XCTAssertEqual(try eval(.compare(.gt), a, b), Tensor(true))
        XCTAssertEqual(try eval(.compare(.eq), a, b), Tensor(false))
    }

    func testSelectSignAndLogicalOps() throws {
        let c = try vec([true, false, true])
        XCTAssertEqual(try eval(.select, c, vec([1, 2, 3] as [Int64]), vec([-1, -2, -3] as [Int64])).scalars(as: Int64.self), [1, -2, 3])
        XCTAssertEqual(try eval(.unary(.sign), vec([-2, 0, 5] as [Int32])).scalars(as: Int32.self), [-1, 0, 1])
        XCTAssertEqual(try eval(.unary(.sign), vec([-2.5, -0.0, 5] as [Float])).doubles, [-1, 0, 1])
        XCTAssertEqual(try eval(.binary(.and), c, vec([true, true, false])).scalars(as: Bool.self), [true, false, false])
        XCTAssertEqual(try eval(.binary(.or), c, vec([false, true, false])).scalars(as: Bool.self), [true, true, true])
        XCTAssertEqual(try eval(.unary(.not), c).scalars(as: Bool.self), [false, true, false])
    }

    func testIntegerPowerIsExact() throws {
        XCTAssertEqual(try eval(.binary(.pow), vec([3, -2, 2, 1, -1] as [Int64]), vec([4, 3, 62, -5, -3] as [Int64])).scalars(as: Int64.self),
                       [81, -8, 1 << 62, 1, -1])
    }

    func testCastTruncatesTowardZero() throws {
        XCTAssertEqual(try eval(.cast(.int32), vec([2.9, -2.9, .nan] as [Float])).scalars(as: Int32.self), [2, -2, 0])
    }
}

final class ReferenceEvaluatorStructureTests: XCTestCase {
    /// x[i][j][k] = 100i + 10j + k for shape [2,3,4]: every element tells where it came from.
    let x: Tensor = {
        var v: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { v.append(Float(100 * i + 10 * j + k)) } } }
        return try! Tensor(shape: [2, 3, 4], scalars: v)
    }()

    func testReduceOverTwoAxesKeepsTheOtherInOrder() throws {
        let sum = try eval(.reduce(.sum, axes: [0, 2]), x)
        XCTAssertEqual(sum.shape, [3])
        // For each j: sum over i in 0..<2, k in 0..<4 of 100i + 10j + k = 400 + 80j + 12.
        XCTAssertEqual(try sum.scalars(as: Float.self), [412, 492, 572])
        let mx = try eval(.reduce(.max, axes: [1, 2]), x)
        XCTAssertEqual(try mx.scalars(as: Float.self), [23, 123])
        let mn = try eval(.reduce(.min, axes: [0, 1]), x)
        XCTAssertEqual(try mn.scalars(as: Float.self), [0, 1, 2, 3])
        let all = try eval(.reduce(.sum, axes: [0, 1, 2]), x)
        XCTAssertEqual(all.shape, [Int]())
        XCTAssertEqual(try all.scalar(as: Float.self), try x.scalars(as: Float.self).reduce(0, +))
    }

    func testReduceProductOfIntegers() throws {
        let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Int32])
        XCTAssertEqual(try eval(.reduce(.prod, axes: [1]), t).scalars(as: Int32.self), [6, 120])
        XCTAssertEqual(try eval(.reduce(.prod, axes: [0]), t).scalars(as: Int32.self), [4, 10, 18])
    }

    func testReduceOverNoAxesIsACopy() throws {
        XCTAssertEqual(try eval(.reduce(.sum, axes: []), x), x)
    }

    func testReduceOfAnEmptyDimensionGivesTheIdentity() throws {
        let e = try Tensor(zeros: .float32, shape: [0, 2])
        XCTAssertEqual(try eval(.reduce(.sum, axes: [0]), e).scalars(as: Float.self), [0, 0])
        XCTAssertEqual(try eval(.reduce(.prod, axes: [0]), e).scalars(as: Float.self), [1, 1])
        XCTAssertEqual(try eval(.reduce(.max, axes: [0]), e).scalars(as: Float.self), [-.infinity, -.infinity])
        let ei = try Tensor(zeros: .int32, shape: [2, 0])
        XCTAssertEqual(try eval(.reduce(.min, axes: [1]), ei).scalars(as: Int32.self), [Int32.max, Int32.max])
        XCTAssertEqual(try eval(.reduce(.max, axes: [1]), ei).scalars(as: Int32.self), [Int32.min, Int32.min])
    }

    func testTransposeMovesEachElementToItsPermutedIndex() throws {
        let t = try eval(.transpose(perm: [2, 0, 1]), x)
        XCTAssertEqual(t.shape, [4, 2, 3])
        // Result dimension d is operand dimension perm[d]: out[k][i][j] = x[i][j][k].
        var want: [Float] = []
        for k in 0..<4 { for i in 0..<2 { for j in 0..<3 { want.append(Float(100 * i + 10 * j + k)) } } }
        XCTAssertEqual(try t.scalars(as: Float.self), want)
        XCTAssertEqual(try eval(.transpose(perm: [1, 0]), Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Int32])).scalars(as: Int32.self),
                       [1, 4, 2, 5, 3, 6])
    }

    func testBroadcastReplicatesSizeOneDimensions() throws {
        let col = try Tensor(shape: [3, 1], scalars: [1, 2, 3] as [Int32])
        let b = try eval(.broadcast(shape: [2, 3, 4], dims: [1, 2]), col)
        XCTAssertEqual(b.shape, [2, 3, 4])
        var want: [Int32] = []
        for _ in 0..<2 { for j in 0..<3 { for _ in 0..<4 { want.append(Int32(j + 1)) } } }
        XCTAssertEqual(try b.scalars(as: Int32.self), want)
    }

    func testBroadcastIntoALeadingDimension() throws {
        let v = try vec([5, 6] as [Float])
        XCTAssertEqual(try eval(.broadcast(shape: [2, 3], dims: [0]), v).scalars(as: Float.self), [5, 5, 5, 6, 6, 6])
        XCTAssertEqual(try eval(.broadcast(shape: [3, 2], dims: [1]), v).scalars(as: Float.self), [5, 6, 5, 6, 5, 6])
        XCTAssertEqual(try eval(.broadcast(shape: [2, 2], dims: []), Tensor(true)).scalars(as: Bool.self), [true, true, true, true])
    }

    func testReshapeKeepsRowMajorOrder() throws {
        let r = try eval(.reshape(shape: [6, 4]), x)
        XCTAssertEqual(r.shape, [6, 4])
        XCTAssertEqual(try r.scalars(as: Float.self), try x.scalars(as: Float.self))
    }

    /// Batch of two; logical A_b is 2x3 and B_b is 3x2, products worked by hand:
    /// A_0 = [[1,2,3],[4,5,6]], B_0 = [[1,2],[0,1],[1,0]] -> [[4,4],[10,13]]
    /// A_1 = [[1,0,-1],[2,1,0]], B_1 = [[2,0],[1,1],[0,3]] -> [[2,-3],[5,1]]
    let a = try! Tensor(shape: [2, 2, 3], scalars: [1, 2, 3, 4, 5, 6, 1, 0, -1, 2, 1, 0] as [Float])
    let aT = try! Tensor(shape: [2, 3, 2], scalars: [1, 4, 2, 5, 3, 6, 1, 2, 0, 1, -1, 0] as [Float])
    let b = try! Tensor(shape: [2, 3, 2], scalars: [1, 2, 0, 1, 1, 0, 2, 0, 1, 1, 0, 3] as [Float])
    let bT = try! Tensor(shape: [2, 2, 3], scalars: [1, 0, 1, 2, 1, 0, 2, 1, 0, 0, 1, 3] as [Float])
    let product = try! Tensor(shape: [2, 2, 2], scalars: [4, 4, 10, 13, 2, -3, 5, 1] as [Float])

    func testBatchDotWithoutTransposes() throws {
        XCTAssertEqual(try eval(.dot(transposeA: false, transposeB: false), a, b), product)
    }

    func testBatchDotWithTransposedOperands() throws {
        XCTAssertEqual(try eval(.dot(transposeA: true, transposeB: false), aT, b), product)
        XCTAssertEqual(try eval(.dot(transposeA: false, transposeB: true), a, bT), product)
        XCTAssertEqual(try eval(.dot(transposeA: true, transposeB: true), aT, bT), product)
    }

    func testIntegerDotWrapsLikeTheDtype() throws {
        let p = try eval(.dot(transposeA: false, transposeB: false),
                         Tensor(shape: [1, 2], scalars: [200, 100] as [UInt8]), Tensor(shape: [2, 1], scalars: [2, 1] as [UInt8]))
        XCTAssertEqual(try p.scalars(as: UInt8.self), [UInt8((400 + 100) % 256)])
        let q = try eval(.dot(transposeA: true, transposeB: false),
                         Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Int32]), Tensor(shape: [2, 2], scalars: [5, 6, 7, 8] as [Int32]))
        // A^T = [[1,3],[2,4]]
        XCTAssertEqual(try q.scalars(as: Int32.self), [26, 30, 38, 44])
    }

    func testRunThreadsVariableStateThroughTheBody() throws {
        let f = try Parser.parse("""
        func @step(%0: i32[] var "n", %1: i32[] feed "by") {
          %2 = var.read %0 : i32[]
          %3 = add %2, %1 : i32[]
          %4 = var.write %0, %3
          %5 = var.read %0 : i32[]
          %6 = mul %5, %1 : i32[]
          %7 = var.write %0, %6
          return %2, %5
        }
        """)
        let (results, params) = try ReferenceEvaluator.run(f, parameters: [Tensor(Int32(10)), Tensor(Int32(3))])
        XCTAssertEqual(results, [Tensor(Int32(10)), Tensor(Int32(13))], "each read sees the writes before it, and only those")
        XCTAssertEqual(params, [Tensor(Int32(39)), Tensor(Int32(3))])
    }
}
