import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// float16 (DT_HALF) and bfloat16 (DT_BFLOAT16) as TensorFlow encodes them (TensorProto half_val
/// and tensor_content, GraphDef Consts), and arithmetic that computes in float32 and rounds each
/// op's result to half.
final class HalfDTypeTests: XCTestCase {
    func testTensorProtoCarriesHalfBitsInHalfValAndTensorContent() throws {
        for d in [DType.float16, .bfloat16] {
            let bits: [UInt16] = d == .float16 ? [0x3C00, 0xC100, 0x7C00, 0x0001] : [0x3F80, 0xC020, 0x7F80, 0x0001]
            let matrix = try Tensor(halfBits: bits, dtype: d, shape: [2, 2])
            XCTAssertEqual(matrix.proto.dtype, d == .float16 ? .dtHalf : .dtBfloat16)
            XCTAssertEqual(matrix.proto.tensorContent, Data(bits.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }), d.name)
            XCTAssertEqual(try Tensor(proto: matrix.proto), matrix, d.name)
            // A scalar goes in half_val as its bit pattern (TensorFlow's make_tensor_proto).
            let scalar = try Tensor(halfBits: [bits[1]], dtype: d, shape: [])
            XCTAssertEqual(scalar.proto.halfVal, [Int32(bits[1])], d.name)
            XCTAssertEqual(try Tensor(proto: scalar.proto), scalar, d.name)
        }
    }

    func testGraphDefConstsOfBothHalfTypesImport() throws {
        // TensorFlow's text form: the last half_val repeats to fill the shape.
        let text = """
        node { name: "h" op: "Const" attr { key: "dtype" value { type: DT_HALF } }
          attr { key: "value" value { tensor { dtype: DT_HALF tensor_shape { dim { size: 3 } } half_val: 15360 half_val: 49408 } } } }
        node { name: "b" op: "Const" attr { key: "dtype" value { type: DT_BFLOAT16 } }
          attr { key: "value" value { tensor { dtype: DT_BFLOAT16 tensor_shape { dim { size: 2 } } half_val: 16256 half_val: 49184 } } } }
        """
        let g = Graph()
        try g.importGraphDef(text: text, prefix: "")
        let got = try Session(graph: g).run([g.tensor(named: "h:0"), g.tensor(named: "b:0")])
        XCTAssertEqual(got[0].doubles, [1, -2.5, -2.5])
        XCTAssertEqual(got[1].doubles, [1, -2.5])
        // Export and import again: the same bits.
        let again = Graph()
        try again.importGraphDef(serialized: try g.serializedGraphDef(), prefix: "")
        XCTAssertEqual(try Session(graph: again).run([again.tensor(named: "h:0"), again.tensor(named: "b:0")]), got)
    }

    /// Each op rounds its result: (a + b) - a in float16 is not b when a + b rounded. With a = 2048
    /// and b = 1, 2049 rounds to 2048 (ties to even), so the difference is 0; float32 gives 1.
    func testEachOpRoundsItsResultToHalfOnEveryBackend() throws {
        for (backend, config) in GoldenOpsTests.backends {
            for d in [DType.float16, .bfloat16] {
                let g = Graph()
                let a = try g.placeholder(d, shape: [2]), b = try g.placeholder(d, shape: [2])
                let diff = try g.subtract(try g.add(a, b), a)
                // A sum of many small values accumulates in float32 and rounds once.
                let x = try g.placeholder(d, shape: [4096])
                let total = try g.reduceSum(x)
                let big: Double = d == .float16 ? 2048 : 256
                let av = try Tensor(literal: [big, 1] as [Double], dtype: d), bv = try Tensor(literal: [1, 1] as [Double], dtype: d)
                let ones = try Tensor(literal: [Double](repeating: 1, count: 4096), dtype: d)
                let got = try Session(graph: g, config: config).run([diff, total], feeds: [a: av, b: bv, x: ones])
                XCTAssertEqual(got[0].dtype, d)
                XCTAssertEqual(got[0].doubles, [0, 1], "backend \(backend) \(d.name): 2048 + 1 rounds back to 2048")
                // A half running sum would stop at 2048 (float16) or 256 (bfloat16).
                XCTAssertEqual(got[1].doubles, [4096], "backend \(backend) \(d.name)")
            }
        }
    }
}
