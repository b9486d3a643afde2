import XCTest
import KilnTestSupport
import KilnIR
import KilnPasses

final class BroadcastSinkingTests: XCTestCase {
    /// The function after shape inference and the pass, checked, with what both compute on `feeds`.
    private func sunk(_ text: String, feeds: [Tensor]) throws -> (Function, before: [Tensor], after: [Tensor]) {
        var f = try Parser.parse(text)
        try ShapeInferencePass().run(&f)
        let before = try ReferenceEvaluator.run(f, parameters: feeds).results
        try BroadcastSinkingPass().run(&f)
        try Verifier.verify(f)
        return (f, before, try ReferenceEvaluator.run(f, parameters: feeds).results)
    }

    private func values(_ n: Int, _ shape: [Int]) throws -> Tensor {
        try Tensor(shape: shape, scalars: (0..<n).map { Float($0 % 7) * 0.37 + 0.5 })
    }

    func testOpsOnBroadcastsOfOneShapeAndScalarsRunBeforeTheBroadcast() throws {
        // Batch norm's backward: a broadcast per-channel sum over a broadcast element count.
        let (f, before, after) = try sunk("""
        func @f(%0: f32[1,1,1,4] feed "sum", %1: f32[] feed "n", %2: f32[2,3,3,4] feed "x") {
          %3 = broadcast %0 shape=[2,3,3,4] dims=[0,1,2,3]
          %4 = broadcast %1 shape=[2,3,3,4] dims=[]
          %5 = div %3, %4
          %6 = neg %5
          %7 = mul %6, %2
          return %7
        }
        """, feeds: [try values(4, [1, 1, 1, 4]), Tensor(Float(18)), try values(72, [2, 3, 3, 4])])
        XCTAssertEqual(after[0], before[0])
        let byID = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        // The division and the negation on four values; %5 and %6 are their broadcasts.
        guard case .broadcast(_, let dims)? = byID[6]?.op, let neg = byID[byID[6]!.operands[0]],
              let div = byID[neg.operands[0]] else { return XCTFail("%6 is not a broadcast of a negation: \(f.body)") }
        XCTAssertEqual(dims, [0, 1, 2, 3])
        XCTAssertEqual(neg.op, .unary(.neg))
        XCTAssertEqual(neg.type, TensorType(.float32, [1, 1, 1, 4]))
        XCTAssertEqual(div.op, .binary(.div))
        XCTAssertEqual(div.operands[0], 0)
        // The scalar is spread over the small shape, not the large one.
        XCTAssertEqual(byID[div.operands[1]]?.op, .broadcast(shape: [1, 1, 1, 4], dims: []))
        // The product with the full-size x stays after the broadcast.
        XCTAssertEqual(byID[7]?.operands, [6, 2])
    }

    func testScalarsAloneGiveAScalarOp() throws {
        let (f, before, after) = try sunk("""
        func @f(%0: f32[] feed "a", %1: f32[] feed "b") {
          %2 = broadcast %0 shape=[3,5] dims=[]
          %3 = broadcast %1 shape=[3,5] dims=[]
          %4 = sub %2, %3
          return %4
        }
        """, feeds: [Tensor(Float(2.5)), Tensor(Float(0.75))])
        XCTAssertEqual(after[0], before[0])
        let byID = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        XCTAssertEqual(byID[4]?.op, .broadcast(shape: [3, 5], dims: []))
        XCTAssertEqual(byID[byID[4]!.operands[0]]?.type, TensorType(.float32, []))
    }

    func testDifferentReplicationsAndFullSizeOperandsStayAfter() throws {
        let text = """
        func @f(%0: f32[3] feed "r", %1: f32[4] feed "c", %2: f32[3,4] feed "x") {
          %3 = broadcast %0 shape=[3,4] dims=[0]
          %4 = broadcast %1 shape=[3,4] dims=[1]
          %5 = add %3, %4
          %6 = mul %4, %2
          return %5, %6
        }
        """
        let (f, before, after) = try sunk(text, feeds: [try values(3, [3]), try values(4, [4]), try values(12, [3, 4])])
        XCTAssertEqual(after, before)
        var g = try Parser.parse(text)
        try ShapeInferencePass().run(&g)
        XCTAssertEqual(f, g)
    }
}
