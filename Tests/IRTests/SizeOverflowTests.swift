import XCTest
import KilnTestSupport
import KilnIR

/// Sizes computed from shapes never trap: an impossible shape is an invalidArgument error, memory
/// the system cannot give is a resourceExhausted error, and the Tensor API throws where it used to
/// stop the process.
final class SizeOverflowTests: XCTestCase {
    func testSizeArithmeticReportsOverflowInsteadOfTrapping() {
        XCTAssertEqual(Sizes.product([1 << 20, 1 << 20]), 1 << 40)
        XCTAssertNil(Sizes.product([1 << 32, 1 << 32]))
        XCTAssertNil(Sizes.product([-1, 3]))
        XCTAssertNil(Sizes.bytes(Int.max / 2, .float32))
        XCTAssertNil(Sizes.sum(Int.max, 1))
        let huge = TensorType(.float32, [1 << 32, 1 << 32])
        XCTAssertEqual(huge.elementCount, Int.max)   // saturates; the builder refuses such values
        XCTAssertEqual(huge.byteCount, Int.max)
        XCTAssertNil(huge.checkedByteCount)
        XCTAssertEqual(TensorType(.float64, [1 << 20, 8]).checkedByteCount, 1 << 26)
        XCTAssertNil(Shape([1 << 32, 1 << 32]).elementCount)
    }

    func testTheBuilderRefusesValuesTooLargeToAddress() throws {
        var b = FunctionBuilder(name: "f")
        let x = b.addParam("x", kind: .feed, type: f32(2))
        assertKilnError(.invalidArgument, contains: ["broadcast", "too large to address", "[4294967296, 4294967296, 2]"]) {
            try b.emit(.broadcast(shape: [1 << 32, 1 << 32, 2], dims: [2]), [x])
        }
        assertKilnError(.invalidArgument, contains: ["iota", "more than 2^63 bytes"]) {
            try b.emit(.iota(dtype: .int64, shape: [1 << 62, 4], axis: 0), [])
        }
    }

    func testPrimitiveAttributesWhoseArithmeticOverflowsAreErrors() throws {
        var b = FunctionBuilder(name: "f")
        let x = b.addParam("x", kind: .feed, type: f32(4, 4))
        let img = b.addParam("img", kind: .feed, type: f32(1, 4, 4, 1))
        let zero = b.scalar(0, .float32)
        let big = Int.max / 2
        assertKilnError(.invalidArgument, contains: ["reshape"]) { try b.emit(.reshape(shape: [1 << 32, 1 << 32, 0, -1]), [x]) }
        assertKilnError(.invalidArgument, contains: ["slice", "overflow"]) {
            try b.emit(.slice(start: [0, 0], strides: [Int.max, 1], shape: [3, 1]), [x])
        }
        assertKilnError(.invalidArgument, contains: ["pad", "overflow"]) {
            try b.emit(.pad(low: [big, 0], high: [big, 0], mode: .constant), [x, zero])
        }
        assertKilnError(.invalidArgument, contains: ["reduce_window", "overflow"]) {
            try b.emit(.reduceWindow(.max, window: [1, 1], strides: [1, 1], padLow: [Int.max, 0], padHigh: [1, 0]), [x])
        }
        assertKilnError(.invalidArgument, contains: ["patches", "overflow"]) {
            try b.emit(.patches(window: [big, 1], strides: [1, 1], dilations: [4, 1], padLow: [0, 0], padHigh: [0, 0]), [img])
        }
        assertKilnError(.invalidArgument, contains: ["unpatches"]) {
            try b.emit(.unpatches(window: [1 << 32, 1 << 32], strides: [1, 1], dilations: [1, 1], padLow: [0, 0], padHigh: [0, 0], image: [4, 4]), [img])
        }
    }

    func testTensorWithTheWrongElementCountThrows() {
        assertKilnError(.invalidArgument, contains: ["shape [2, 2] needs 4 elements, got 3"]) {
            try Tensor(shape: [2, 2], scalars: [1, 2, 3] as [Float])
        }
        assertKilnError(.invalidArgument, contains: ["[-1, 3]", "negative"]) { try Tensor(shape: [-1, 3], scalars: [Float]()) }
        assertKilnError(.invalidArgument, contains: ["needs 2 strings, got 1"]) { try Tensor(shape: [2], strings: [[65]]) }
        let t = try? Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Int32])
        assertKilnError(.invalidArgument, contains: ["[2, 3]", "[4]"]) { try t!.reshaped(to: [4]) }
        assertKilnError(.invalidArgument, contains: ["cannot hold"]) {
            try Tensor(dtype: .float64, shape: [4], buffer: TensorBuffer(byteCount: 8))
        }
    }

    func testReadingScalarsAsTheWrongTypeOrCountThrows() throws {
        let t = try Tensor(shape: [2], scalars: [1.5, 2.5] as [Float])
        assertKilnError(.invalidArgument, contains: ["holds float32, not int32"]) { try t.scalars(as: Int32.self) }
        assertKilnError(.invalidArgument, contains: ["shape [2]", "2 elements"]) { try t.scalar(as: Float.self) }
        assertKilnError(.invalidArgument, contains: ["holds float32, not float64"]) { try Tensor(1 as Float).scalar(as: Double.self) }
        XCTAssertEqual(try t.scalars(as: Float.self), [1.5, 2.5])
        XCTAssertEqual(try Tensor(7 as Int64).scalar(as: Int64.self), 7)
    }

    func testZerosOfAnImpossibleOrUnobtainableSizeThrow() {
        assertKilnError(.invalidArgument, contains: ["[1099511627776, 1099511627776]", "overflows"]) {
            try Tensor(zeros: .float32, shape: [1 << 40, 1 << 40])
        }
        // 4 PiB: more than any machine this runs on has, so the system refuses it; Kiln reports that.
        assertKilnError(.resourceExhausted, contains: ["OOM", "4503599627370496 bytes"]) {
            try Tensor(zeros: .float32, shape: [1 << 50])
        }
        assertKilnError(.resourceExhausted, contains: ["OOM"]) { try TensorBuffer(byteCount: 1 << 60) }
    }
}
