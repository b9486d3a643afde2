import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// int16 (TensorFlow's DT_INT16) end to end: casts with TensorFlow's wrap and truncation, compiled
/// arithmetic and comparison that wrap at 16 bits on every backend, and GraphDef Consts.
/// Expected values were checked against TensorFlow 2.21 (tf.cast, tf.add, tf.less, tf.math.floordiv).
final class Int16DTypeTests: XCTestCase {
    /// Float to int16 truncates toward zero; a value outside int16 wraps (as x86's conversion
    /// through int32 that TensorFlow's kernel compiles to does); int32 to int16 keeps the low 16
    /// bits; int16 to wider types sign-extends, to uint8 keeps the low byte.
    let floats: [Float] = [1.9, -1.9, 40000, -40000, 32767.9, -32768.5, 65541]
    let floatsAsInt16: [Int16] = [1, -1, -25536, 25536, 32767, -32768, 5]
    let int32s: [Int32] = [70000, -40000, 32768, -5]
    let int32sAsInt16: [Int16] = [4464, 25536, -32768, -5]
    let int16s: [Int16] = [-1, 300, -32768, 32767]

    func testHostCastsWrapAndTruncateAsTensorFlow() throws {
        XCTAssertEqual(try Tensor(shape: [7], scalars: floats).converted(to: .int16), try Tensor(shape: [7], scalars: floatsAsInt16))
        XCTAssertEqual(try Tensor(shape: [4], scalars: int32s).converted(to: .int16), try Tensor(shape: [4], scalars: int32sAsInt16))
        let x = try Tensor(shape: [4], scalars: int16s)
        XCTAssertEqual(try x.converted(to: .uint8), try Tensor(shape: [4], scalars: [UInt8(255), 44, 0, 255]))
        XCTAssertEqual(try x.converted(to: .int32), try Tensor(shape: [4], scalars: [Int32(-1), 300, -32768, 32767]))
        XCTAssertEqual(try x.converted(to: .float32), try Tensor(shape: [4], scalars: [Float(-1), 300, -32768, 32767]))
        XCTAssertEqual(try x.converted(to: .bool), try Tensor(shape: [4], scalars: [true, true, true, true]))
        // Round trips through every wider type give the int16 values back.
        for d in [DType.int32, .int64, .float32, .float64] {
            XCTAssertEqual(try x.converted(to: d).converted(to: .int16), x, d.name)
        }
    }

    func testCompiledCastsMatchTheHostOnEveryBackend() throws {
        for (backend, config) in GoldenOpsTests.backends {
            let g = Graph()
            let f = try g.placeholder(.float32, shape: [7])
            let i = try g.placeholder(.int32, shape: [4])
            let s = try g.placeholder(.int16, shape: [4])
            let outs = [try g.cast(f, to: .int16), try g.cast(i, to: .int16), try g.cast(s, to: .uint8), try g.cast(s, to: .int32),
                        try g.cast(s, to: .float32), try g.cast(try g.cast(s, to: .float64), to: .int16)]
            let got = try Session(graph: g, config: config).run(outs, feeds: [
                f: try Tensor(shape: [7], scalars: floats), i: try Tensor(shape: [4], scalars: int32s), s: try Tensor(shape: [4], scalars: int16s)])
            XCTAssertEqual(got, [try Tensor(shape: [7], scalars: floatsAsInt16), try Tensor(shape: [4], scalars: int32sAsInt16),
                                 try Tensor(shape: [4], scalars: [UInt8(255), 44, 0, 255]),
                                 try Tensor(shape: [4], scalars: [Int32(-1), 300, -32768, 32767]),
                                 try Tensor(shape: [4], scalars: [Float(-1), 300, -32768, 32767]),
                                 try Tensor(shape: [4], scalars: int16s)], backend)
        }
    }

    func testCompiledArithmeticWrapsAt16BitsAndComparesSigned() throws {
        for (backend, config) in GoldenOpsTests.backends {
            let g = Graph()
            let a = try g.placeholder(.int16, shape: [4])
            let b = try g.placeholder(.int16, shape: [4])
            let outs = [try g.add(a, b), try g.subtract(a, b), try g.multiply(a, b), try g.less(a, b), try g.floorDiv(a, b),
                        try g.reduceMax(a), try g.reduceMin(a), try g.reduceSum(a)]
            let got = try Session(graph: g, config: config).run(outs, feeds: [
                a: try Tensor(shape: [4], scalars: [Int16(32767), -32768, 100, -7]),
                b: try Tensor(shape: [4], scalars: [Int16(1), -1, 300, 2])])
            XCTAssertEqual(got, [try Tensor(shape: [4], scalars: [Int16(-32768), 32767, 400, -5]),
                                 try Tensor(shape: [4], scalars: [Int16(32766), -32767, -200, -9]),
                                 try Tensor(shape: [4], scalars: [Int16(32767), -32768, 30000, -14]),
                                 try Tensor(shape: [4], scalars: [false, true, true, true]),
                                 try Tensor(shape: [4], scalars: [Int16(32767), -32768, 0, -4]),
                                 Tensor(Int16(32767)), Tensor(Int16(-32768)), Tensor(Int16(32767 - 32768 + 100 - 7))], backend)
        }
    }

    func testGraphDefConstOfInt16RoundTrips() throws {
        let matrix = try Tensor(shape: [2, 2], scalars: [Int16(1), -2, 32767, -32768])
        XCTAssertEqual(matrix.proto.dtype, .dtInt16)
        XCTAssertEqual(matrix.proto.tensorContent, Data([1, 0, 0xFE, 0xFF, 0xFF, 0x7F, 0x00, 0x80]))
        // TensorFlow writes an int16 scalar in int_val.
        XCTAssertEqual(Tensor(Int16(-7)).proto.intVal, [-7])
        let g = Graph()
        _ = try g.constant(matrix, name: "m")
        _ = try g.constant(Int16(-7), name: "s")
        let imported = Graph()
        try imported.importGraphDef(serialized: try g.serializedGraphDef(), prefix: "")
        let got = try Session(graph: imported).run([imported.tensor(named: "m:0"), imported.tensor(named: "s:0")])
        XCTAssertEqual(got, [matrix, Tensor(Int16(-7))])
        // TensorFlow's text form: dtype DT_INT16, values in int_val.
        let text = """
        node { name: "c" op: "Const" attr { key: "dtype" value { type: DT_INT16 } }
          attr { key: "value" value { tensor { dtype: DT_INT16 tensor_shape { dim { size: 3 } } int_val: 5 int_val: -300 } } } }
        """
        let t = Graph()
        try t.importGraphDef(text: text, prefix: "")
        XCTAssertEqual(try Session(graph: t).run(t.tensor(named: "c:0")), try Tensor(shape: [3], scalars: [Int16(5), -300, -300]))
    }
}
