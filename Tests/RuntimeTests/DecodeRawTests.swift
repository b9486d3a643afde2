import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// DecodeRaw (tf.io.decode_raw) through Session.run: every supported dtype in both byte orders,
/// TensorFlow's errors, and compiled ops (reshape, cast, arithmetic) after it.
final class DecodeRawTests: XCTestCase {
    func bytes<T>(_ values: [T], bigEndian: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        for v in values {
            let b = withUnsafeBytes(of: v) { Array($0) }
            out += bigEndian ? b.reversed() : b
        }
        return out
    }

    func decode(_ strings: [[UInt8]], shape: [Int]? = nil, _ type: DType, littleEndian: Bool = true) throws -> Tensor {
        let g = Graph()
        let s = try g.placeholder(.string, shape: .unknown)
        let d = try g.decodeRaw(s, outType: type, littleEndian: littleEndian)
        return try Session(graph: g).run(d, feeds: [s: Tensor(shape: shape ?? [strings.count], strings: strings)])
    }

    func testEveryDTypeDecodesInBothByteOrders() throws {
        let i16: [Int16] = [1, -2, Int16.max, Int16.min], i32: [Int32] = [1, -2, Int32.max, Int32.min], i64: [Int64] = [1, -2, Int64.max, Int64.min]
        let f32: [Float] = [1.5, -0.25, .infinity, 3e38], f64: [Double] = [1.5, -0.25, -.infinity, 1e300]
        for big in [false, true] {
            XCTAssertEqual(try decode([bytes(Array(i32[0..<2]), bigEndian: big), bytes(Array(i32[2..<4]), bigEndian: big)], .int32, littleEndian: !big),
                           try Tensor(shape: [2, 2], scalars: i32))
            XCTAssertEqual(try decode([bytes(i64, bigEndian: big)], shape: [], .int64, littleEndian: !big), try Tensor(shape: [4], scalars: i64))
            XCTAssertEqual(try decode([bytes(f32, bigEndian: big)], .float32, littleEndian: !big), try Tensor(shape: [1, 4], scalars: f32))
            XCTAssertEqual(try decode([bytes(f64, bigEndian: big)], .float64, littleEndian: !big), try Tensor(shape: [1, 4], scalars: f64))
            XCTAssertEqual(try decode([bytes(i16, bigEndian: big)], .int16, littleEndian: !big), try Tensor(shape: [1, 4], scalars: i16))
            XCTAssertEqual(try decode([[0, 255, 7], [1, 2, 3]], .uint8, littleEndian: !big), try Tensor(shape: [2, 3], scalars: [UInt8(0), 255, 7, 1, 2, 3]))
        }
        // Big-endian means the first byte is the most significant.
        XCTAssertEqual(try decode([[0, 0, 1, 2]], .int32, littleEndian: false), try Tensor(shape: [1, 1], scalars: [Int32(258)]))
        XCTAssertEqual(try decode([[0, 0, 1, 2]], .int32), try Tensor(shape: [1, 1], scalars: [Int32(0x0201_0000)]))
        // No input, or empty strings: one more dimension, of size 0.
        XCTAssertEqual(try decode([], .float32).shape, [0, 0])
        XCTAssertEqual(try decode([[], []], .int64).shape, [2, 0])
    }

    /// int16 from bytes worked out by hand (and checked against tf.io.decode_raw): little-endian
    /// takes the first byte of each pair as the low one, big-endian as the high one; an imported
    /// GraphDef asking for DT_INT16 decodes too.
    func testInt16DecodesInEitherByteOrder() throws {
        let raw: [UInt8] = [0x01, 0x02, 0xFF, 0xFF, 0x00, 0x80, 0xFF, 0x7F]
        XCTAssertEqual(try decode([raw], .int16), try Tensor(shape: [1, 4], scalars: [Int16(513), -1, -32768, 32767]))
        XCTAssertEqual(try decode([raw], .int16, littleEndian: false), try Tensor(shape: [1, 4], scalars: [Int16(258), -1, 128, -129]))
        let g = Graph()
        try g.importGraphDef(text: """
        node { name: "s" op: "Placeholder" attr { key: "dtype" value { type: DT_STRING } } }
        node { name: "d" op: "DecodeRaw" input: "s" attr { key: "out_type" value { type: DT_INT16 } }
          attr { key: "little_endian" value { b: false } } }
        """, prefix: "")
        let out = try Session(graph: g).run(g.tensor(named: "d:0"), feeds: [g.tensor(named: "s:0"): Tensor(shape: [2], strings: [[0, 1, 0x80, 0], [0xFF, 0xFE, 0x12, 0x34]])])
        XCTAssertEqual(out, try Tensor(shape: [2, 2], scalars: [Int16(1), -32768, -2, 0x1234]))
    }

    func testTensorFlowsErrors() throws {
        assertKilnError(.invalidArgument, contains: ["DecodeRaw requires input strings to all be the same size, but element 1 has size 5 != 6"]) {
            try decode([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]], .uint8)
        }
        assertKilnError(.invalidArgument, contains: ["Input to DecodeRaw has length 7 that is not a multiple of 4, the size of float"]) {
            try decode([[UInt8](repeating: 1, count: 7)], .float32)
        }
        assertKilnError(.invalidArgument, contains: ["Input to DecodeRaw has length 4 that is not a multiple of 8, the size of double"]) {
            try decode([[1, 2, 3, 4]], .float64)
        }
        let g = Graph()
        assertKilnError(.invalidArgument, contains: ["Input to DecodeRaw has length 3 that is not a multiple of 2, the size of int16"]) {
            try decode([[1, 2, 3]], .int16)
        }
        assertKilnError(.unimplemented, contains: ["out_type bool", "uint8, int16, int32, int64, float32 and float64"]) {
            try g.decodeRaw(try g.placeholder(.string), outType: .bool)
        }
        assertKilnError(.invalidArgument, contains: ["DecodeRaw takes strings"]) { try g.decodeRaw(try g.placeholder(.uint8), outType: .uint8) }
        // int8, which TensorFlow decodes, is no Kiln dtype: an imported graph asking for it is
        // refused naming the type.
        let text = """
        node { name: "s" op: "Placeholder" attr { key: "dtype" value { type: DT_STRING } } }
        node { name: "d" op: "DecodeRaw" input: "s" attr { key: "out_type" value { type: DT_INT8 } } }
        """
        assertKilnError(.unimplemented, contains: ["DT_INT8"]) { try Graph().importGraphDef(text: text) }
    }

    /// The tutorial's shape: serialised bytes fed as strings, decoded on the host, then reshaped,
    /// cast and scaled by compiled code.
    func testCompiledOpsAfterDecodeRawInOneRun() throws {
        let g = Graph()
        let s = try g.placeholder(.string, shape: Shape(dims: [nil]), name: "images")
        let pixels = try g.decodeRaw(s, outType: .uint8)
        XCTAssertEqual(pixels.shape, Shape(dims: [nil, nil]))
        let images = try g.multiply(try g.cast(try g.reshape(pixels, [-1, 2, 2]), to: .float32), try g.constant(0.5 as Float))
        let sess = try Session(graph: g)
        let out = try sess.run(images, feeds: [s: Tensor(shape: [2], strings: [[0, 2, 4, 6], [8, 10, 12, 255]])])
        XCTAssertEqual(out, try Tensor(shape: [2, 2, 2], scalars: [Float(0), 1, 2, 3, 4, 5, 6, 127.5]))
        let again = try sess.run(images, feeds: [s: Tensor(shape: [2], strings: [[1, 1, 1, 1], [2, 2, 2, 2]])])
        XCTAssertEqual(again, try Tensor(shape: [2, 2, 2], scalars: [Float(0.5), 0.5, 0.5, 0.5, 1, 1, 1, 1]))
    }

    /// A reshape of decoded bytes is answered on the host (the input pipeline's reshape costs no
    /// compiled run), with TensorFlow's element-count checks.
    func testReshapeOfDecodedBytesRunsOnTheHostWithReshapesChecks() throws {
        let g = Graph()
        let s = try g.placeholder(.string, shape: Shape(dims: [nil]), name: "images")
        let image = try g.reshape(try g.decodeRaw(s, outType: .uint8), [-1, 2])
        let square = try g.reshape(try g.decodeRaw(s, outType: .uint8), [2, 2])
        let sess = try Session(graph: g)
        let out = try sess.run([image, square], feeds: [s: Tensor(shape: [1], strings: [[0, 2, 4, 6]])])
        XCTAssertEqual(out, [try Tensor(shape: [2, 2], scalars: [UInt8(0), 2, 4, 6]), try Tensor(shape: [2, 2], scalars: [UInt8(0), 2, 4, 6])])
        XCTAssertEqual(sess.compileCount, 0)
        assertKilnError(.invalidArgument, contains: ["Input to reshape is a tensor with 6 values, but the requested shape has 4"]) {
            _ = try sess.run(square, feeds: [s: Tensor(shape: [2], strings: [[1, 2, 3], [4, 5, 6]])])
        }
        assertKilnError(.invalidArgument, contains: ["Input to reshape is a tensor with 3 values, but the requested shape [-1, 2] is not a multiple of 2"]) {
            _ = try sess.run(image, feeds: [s: Tensor(shape: [1], strings: [[1, 2, 3]])])
        }
    }
}
