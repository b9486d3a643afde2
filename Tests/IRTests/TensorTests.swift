import XCTest
import KilnTestSupport
import KilnIR

final class TensorLiteralTests: XCTestCase {
    func testNestedFloatArrayGivesRowMajorShapeAndScalars() throws {
        let t = try Tensor(literal: [[1, 2, 3], [4, 5, 6]] as [[Float]])
        XCTAssertEqual(t.dtype, .float32)
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(try t.scalars(as: Float.self), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.elementCount, 6)
        XCTAssertEqual(t.byteCount, 24)
    }

    func testRankThreeDoubleLiteralKeepsInnermostDimensionOfOne() throws {
        let t = try Tensor(literal: [[[1.5], [2.5]], [[3.5], [4.5]], [[5.5], [6.5]]] as [[[Double]]])
        XCTAssertEqual(t.dtype, .float64)
        XCTAssertEqual(t.shape, [3, 2, 1])
        XCTAssertEqual(try t.scalars(as: Double.self), [1.5, 2.5, 3.5, 4.5, 5.5, 6.5])
    }

    func testIntegerLiteralsKeepExtremeValuesExactly() throws {
        let a = try Tensor(literal: [[Int32.min, Int32.max], [0, -1]] as [[Int32]])
        XCTAssertEqual(a.dtype, .int32)
        XCTAssertEqual(a.shape, [2, 2])
        XCTAssertEqual(try a.scalars(as: Int32.self), [Int32.min, Int32.max, 0, -1])

        // Beyond 2^53 a trip through Double would change these values.
        let b = try Tensor(literal: [Int64.min, Int64.max, (1 << 53) + 1] as [Int64])
        XCTAssertEqual(b.dtype, .int64)
        XCTAssertEqual(b.shape, [3])
        XCTAssertEqual(try b.scalars(as: Int64.self), [Int64.min, Int64.max, (1 << 53) + 1])

        let c = try Tensor(literal: [[0, 255, 7]] as [[UInt8]])
        XCTAssertEqual(c.dtype, .uint8)
        XCTAssertEqual(c.shape, [1, 3])
        XCTAssertEqual(try c.scalars(as: UInt8.self), [0, 255, 7])
    }

    func testBoolLiteralGivesBoolTensor() throws {
        let t = try Tensor(literal: [[true, false], [false, true], [true, true]] as [[Bool]])
        XCTAssertEqual(t.dtype, .bool)
        XCTAssertEqual(t.shape, [3, 2])
        XCTAssertEqual(try t.scalars(as: Bool.self), [true, false, false, true, true, true])
        XCTAssertEqual(t.byteCount, 6)
    }

    func testScalarLiteralHasEmptyShape() throws {
        let t = try Tensor(literal: Float(2.5))
        XCTAssertEqual(t.shape, [])
        XCTAssertEqual(t.rank, 0)
        XCTAssertEqual(try t.scalar(as: Float.self), 2.5)
    }

    func testEmptyInnerListsGiveZeroSizedDimension() throws {
        let t = try Tensor(literal: [[], [], []] as [[Float]])
        XCTAssertEqual(t.shape, [3, 0])
        XCTAssertEqual(t.elementCount, 0)
        XCTAssertEqual(try t.scalars(as: Float.self), [])
    }

    func testRaggedArrayWithShortLaterRowIsInvalidArgument() {
        assertKilnError(.invalidArgument, contains: ["ragged"]) { try Tensor(literal: [[1, 2], [3]] as [[Float]]) }
    }

    func testRaggedArrayWithLongLaterRowIsInvalidArgument() {
        assertKilnError(.invalidArgument, contains: ["ragged"]) { try Tensor(literal: [[1], [2, 3]] as [[Int32]]) }
    }

    func testRaggedArrayDeepInsideIsInvalidArgument() {
        assertKilnError(.invalidArgument) {
            try Tensor(literal: [[[1, 2], [3, 4]], [[5, 6], [7]]] as [[[Double]]])
        }
        assertKilnError(.invalidArgument) { try Tensor(literal: [[true], []] as [[Bool]]) }
        assertKilnError(.invalidArgument) { try Tensor(literal: [[], [UInt8(1)]] as [[UInt8]]) }
        assertKilnError(.invalidArgument) { try Tensor(literal: [[1], [2], [3, 4]] as [[Int64]]) }
    }

    func testLiteralWithDtypeConvertsTheValues() throws {
        let t = try Tensor(literal: [1.75, -1.75] as [Double], dtype: .int32)
        XCTAssertEqual(t.dtype, .int32)
        XCTAssertEqual(try t.scalars(as: Int32.self), [1, -1])
        let same = try Tensor(literal: [1.75] as [Double], dtype: .float64)
        XCTAssertEqual(try same.scalars(as: Double.self), [1.75])
    }
}

final class TensorConversionTests: XCTestCase {
    func testFloatToIntTruncatesTowardZero() throws {
        let t = try Tensor(shape: [6], scalars: [1.9, -1.9, 2.5, -0.5, 0.99, -2.0] as [Float])
        XCTAssertEqual(try t.converted(to: .int32).scalars(as: Int32.self), [1, -1, 2, 0, 0, -2])
        XCTAssertEqual(try t.converted(to: .int64).scalars(as: Int64.self), [1, -1, 2, 0, 0, -2])
        let d = try Tensor(shape: [3], scalars: [200.7, 0.2, 17.999] as [Double])
        XCTAssertEqual(try d.converted(to: .uint8).scalars(as: UInt8.self), [200, 0, 17])
    }

    func testNaNConvertsToZeroInteger() throws {
        let t = try Tensor(shape: [2], scalars: [Float.nan, -Float.nan])
        XCTAssertEqual(try t.converted(to: .int32).scalars(as: Int32.self), [0, 0])
        XCTAssertEqual(try t.converted(to: .int64).scalars(as: Int64.self), [0, 0])
        XCTAssertEqual(try Tensor(Double.nan).converted(to: .uint8).scalar(as: UInt8.self), 0)
    }

    func testNumbersConvertToBoolByComparingWithZero() throws {
        // C++'s static_cast<bool>, which TensorFlow's Cast uses: NaN is nonzero, -0.0 is zero.
        let f = try Tensor(shape: [5], scalars: [0, -0.0, 0.5, -2, .nan] as [Float])
        XCTAssertEqual(try f.converted(to: .bool).scalars(as: Bool.self), [false, false, true, true, true])
        let i = try Tensor(shape: [3], scalars: [0, 256, -1] as [Int64])
        // 256 must not be truncated to a byte (0) before the test against zero.
        XCTAssertEqual(try i.converted(to: .bool).scalars(as: Bool.self), [false, true, true])
    }

    func testBoolConvertsToOneAndZero() throws {
        let b = try Tensor(shape: [2], scalars: [true, false])
        XCTAssertEqual(try b.converted(to: .float32).scalars(as: Float.self), [1, 0])
        XCTAssertEqual(try b.converted(to: .float64).scalars(as: Double.self), [1, 0])
        XCTAssertEqual(try b.converted(to: .int32).scalars(as: Int32.self), [1, 0])
        XCTAssertEqual(try b.converted(to: .int64).scalars(as: Int64.self), [1, 0])
        XCTAssertEqual(try b.converted(to: .uint8).scalars(as: UInt8.self), [1, 0])
    }

    func testInt64ConversionsKeepFullPrecision() throws {
        // Going through Double would round 2^53 + 1 to 2^53 and change the low bits.
        let big: Int64 = (1 << 53) + 1
        let t = try Tensor(shape: [3], scalars: [big, Int64.max, -((1 << 40) + 3)])
        XCTAssertEqual(try t.converted(to: .int32).scalars(as: Int32.self),
                       [1, -1, Int32(truncatingIfNeeded: -((1 << 40) + 3) as Int64)])
        XCTAssertEqual(try Tensor(big).converted(to: .uint8).scalar(as: UInt8.self), 1)
        let back = try Tensor(shape: [2], scalars: [Int32.min, Int32.max]).converted(to: .int64)
        XCTAssertEqual(try back.scalars(as: Int64.self), [Int64(Int32.min), Int64(Int32.max)])
        XCTAssertEqual(try Tensor(big).converted(to: .float64).scalar(as: Double.self), 9007199254740992)
    }

    func testNarrowingIntegerConversionWrapsLikeC() throws {
        let t = try Tensor(shape: [3], scalars: [300, -1, 2_147_483_648] as [Int64])
        XCTAssertEqual(try t.converted(to: .uint8).scalars(as: UInt8.self), [44, 255, 0])
        XCTAssertEqual(try t.converted(to: .int32).scalars(as: Int32.self), [300, -1, Int32.min])
    }

    func testConversionToSameDtypeIsIdentity() throws {
        let t = try Tensor(shape: [2], scalars: [Float.nan, -0.0])
        XCTAssertEqual(try t.converted(to: .float32), t)
    }

    func testStringConversionIsUnimplemented() {
        assertKilnError(.unimplemented) { try Tensor("7").converted(to: .int32) }
        assertKilnError(.unimplemented) { try Tensor(Int32(7)).converted(to: .string) }
    }

    func testElementKeepsIntegerPrecision() throws {
        let t = try Tensor(shape: [2], scalars: [Int64.max, Int64.min])
        XCTAssertEqual(t.element(at: 0), .i(Int64.max))
        XCTAssertEqual(t.element(at: 1), .i(Int64.min))
        XCTAssertEqual(Tensor(true).element(at: 0), .b(true))
        XCTAssertEqual(Tensor(Float(0.5)).element(at: 0), .f(0.5))
    }
}

final class TensorDescriptionTests: XCTestCase {
    func testDescriptionNestsLikeNumpy() throws {
        XCTAssertEqual(try Tensor(literal: [[12]] as [[Float]]).description, "[[12.0]]")
        XCTAssertEqual(try Tensor(literal: [[1, 2], [3, 4]] as [[Int32]]).description, "[[1, 2], [3, 4]]")
        XCTAssertEqual(try Tensor(literal: [[[1], [2]]] as [[[Int64]]]).description, "[[[1], [2]]]")
        XCTAssertEqual(try Tensor(shape: [2], scalars: [true, false]).description, "[true, false]")
        XCTAssertEqual(Tensor(Int32(3)).description, "3")
        XCTAssertEqual(Tensor(Double(-0.5)).description, "-0.5")
        XCTAssertEqual(Tensor(UInt8(255)).description, "255")
    }

    func testDescriptionOfEmptyTensorsShowsTheEmptyLists() {
        XCTAssertEqual(try Tensor(zeros: .float32, shape: [2, 0]).description, "[[], []]")
        XCTAssertEqual(try Tensor(zeros: .int32, shape: [0]).description, "[]")
    }

    func testDescriptionQuotesStrings() {
        XCTAssertEqual(Tensor("hi").description, "\"hi\"")
        XCTAssertEqual(try Tensor(shape: [2], strings: [Array("a\"b".utf8), []]).description, "[\"a\\\"b\", \"\"]")
    }
}

final class TensorEqualityTests: XCTestCase {
    func testIdenticalNaNsAreEqual() throws {
        let a = try Tensor(shape: [2], scalars: [Float.nan, 1])
        let b = try Tensor(shape: [2], scalars: [Float.nan, 1])
        XCTAssertEqual(a, b)
        XCTAssertEqual(Set([a, b]).count, 1)
    }

    func testEqualityComparesBitsNotValues() {
        XCTAssertNotEqual(Tensor(Float(0)), Tensor(Float(-0.0)))
        XCTAssertNotEqual(Tensor(Float(bitPattern: 0x7fc0_0000)), Tensor(Float(bitPattern: 0x7fc0_0001)))
        XCTAssertNotEqual(Tensor(Double.nan), Tensor(-Double.nan))
    }

    func testEqualityRequiresSameDtypeAndShape() {
        XCTAssertNotEqual(try Tensor(shape: [4], scalars: [1, 2, 3, 4] as [Float]), try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float]))
        // Same bytes (all zero), different dtype.
        XCTAssertNotEqual(Tensor(Int32(0)), Tensor(Float(0)))
        XCTAssertEqual(try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Int64]), try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Int64]))
    }

    func testStringTensorsCompareTheirBytes() {
        XCTAssertEqual(Tensor("abc"), Tensor("abc"))
        XCTAssertNotEqual(Tensor("abc"), Tensor("abd"))
        XCTAssertNotEqual(try Tensor(shape: [2], strings: [[1], [2]]), try Tensor(shape: [2], strings: [[1], [3]]))
    }

    func testReshapedSharesValuesButNotShape() throws {
        let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let r = try t.reshaped(to: [3, 2])
        XCTAssertEqual(r.shape, [3, 2])
        XCTAssertEqual(try r.scalars(as: Float.self), try t.scalars(as: Float.self))
        XCTAssertNotEqual(r, t)
        let s = try Tensor(shape: [2], strings: [[1], [2]]).reshaped(to: [1, 2])
        XCTAssertEqual(s, try Tensor(shape: [1, 2], strings: [[1], [2]]))
    }
}

final class TensorCopyOnWriteTests: XCTestCase {
    func testMutatingBytesOfACopyLeavesTheOriginalAlone() throws {
        var a = try Tensor(shape: [3], scalars: [1, 2, 3] as [Float])
        let b = a
        try a.withUnsafeMutableBytes { $0.storeBytes(of: Float(99), toByteOffset: 4, as: Float.self) }
        XCTAssertEqual(try a.scalars(as: Float.self), [1, 99, 3])
        XCTAssertEqual(try b.scalars(as: Float.self), [1, 2, 3])
    }

    func testMutatingTheOriginalLeavesACopyAlone() throws {
        let original = try Tensor(shape: [2], scalars: [5, 6] as [Int32])
        var copy = original
        try copy.setElement(.i(-7), at: 0)
        XCTAssertEqual(try copy.scalars(as: Int32.self), [-7, 6])
        XCTAssertEqual(try original.scalars(as: Int32.self), [5, 6])
    }

    func testMutatingAReshapedViewLeavesTheSourceAlone() throws {
        let t = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Double])
        var r = try t.reshaped(to: [4])
        try r.withUnsafeMutableBytes { $0.storeBytes(of: Double(0), toByteOffset: 0, as: Double.self) }
        XCTAssertEqual(try r.scalars(as: Double.self), [0, 2, 3, 4])
        XCTAssertEqual(try t.scalars(as: Double.self), [1, 2, 3, 4])
    }

    func testUniquelyOwnedTensorIsMutatedInPlace() throws {
        var a = try Tensor(shape: [2], scalars: [1, 2] as [Float])
        let before = a.buffer.pointer
        try a.withUnsafeMutableBytes { $0.storeBytes(of: Float(3), toByteOffset: 0, as: Float.self) }
        // No needless copy when nobody else can see the buffer.
        XCTAssertEqual(a.buffer.pointer, before)
        XCTAssertEqual(try a.scalars(as: Float.self), [3, 2])
    }

    func testBuffersAre64ByteAligned() throws {
        for n in [1, 3, 17, 1000] {
            let t = try Tensor(zeros: .uint8, shape: [n])
            XCTAssertEqual(Int(bitPattern: t.buffer.pointer) % TensorBuffer.alignment, 0)
        }
    }

    func testZerosOfEveryDtype() throws {
        for d in DType.allCases {
            let t = try Tensor(zeros: d, shape: [2, 2])
            XCTAssertEqual(t.dtype, d)
            if d == .string {
                XCTAssertEqual(t, try Tensor(shape: [2, 2], strings: [[], [], [], []]))
            } else {
                XCTAssertEqual(t.doubles, [0, 0, 0, 0])
            }
        }
    }
}
