import XCTest
import KilnTestSupport
import KilnIR
@testable import KilnPasses

/// HalfPrecisionPass: arithmetic on float16/bfloat16 computes in float32 and rounds its result
/// once; products keep their half operands for the half product kernels; data movement stays in
/// half; folding a constant half computation rounds the same way.
final class HalfPrecisionPassTests: XCTestCase {
    func testArithmeticOnHalfBecomesFloat32BetweenConvertsAndDataMovementStays() throws {
        var f = try Parser.parse("""
        func @f(%0: f16[3] feed "x", %1: bf16[3] feed "y") {
          %2 = add %0, %0
          %3 = reduce.sum %1 axes=[0]
          %4 = transpose %0 perm=[0]
          %5 = lt %1, %1
          return %2, %3, %4, %5
        }
        """)
        try PassManager([ShapeInferencePass(), HalfPrecisionPass(), VerifyPass()]).run(&f)
        let byId = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        // The add keeps its id as the rounding cast of a float32 add of converted operands.
        XCTAssertEqual(byId[2]?.op, .cast(.float16))
        let wide = try XCTUnwrap(byId[byId[2]!.operands[0]])
        XCTAssertEqual(wide.op, .binary(.add))
        XCTAssertEqual(wide.type, TensorType(.float32, [3]))
        XCTAssertTrue(wide.operands.allSatisfy { byId[$0]?.op == .cast(.float32) })
        // The sum accumulates in float32 and rounds once.
        XCTAssertEqual(byId[3]?.op, .cast(.bfloat16))
        XCTAssertEqual(byId[byId[3]!.operands[0]]?.type, TensorType(.float32, []))
        // Data movement is untouched; a comparison compares the float32 values.
        XCTAssertEqual(byId[4]?.op, .transpose(perm: [0]))
        XCTAssertEqual(byId[5]?.op, .compare(.lt))
        XCTAssertTrue(byId[5]!.operands.allSatisfy { byId[$0]?.type?.dtype == .float32 })
        // Running it again changes nothing: no arithmetic is left on half operands.
        let once = f
        try HalfPrecisionPass().run(&f)
        XCTAssertEqual(f, once)
    }

    /// 2048 + 1 in float16 rounds to 2048 (ties to even), so (a + b) - a folds to 0, not 1.
    func testFoldedHalfArithmeticRoundsEachOpsResult() throws {
        var f = try Parser.parse("""
        func @f() {
          %0 = constant f16[] 2048.0
          %1 = constant f16[] 1.0
          %2 = add %0, %1
          %3 = sub %2, %0
          return %3
        }
        """)
        try PassManager.standard().run(&f)
        XCTAssertEqual(f.body.map(\.op), [.constant(try Tensor(literal: 0.0, dtype: .float16))])
    }

    private func passed(_ text: String) throws -> Function {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass(), HalfPrecisionPass(), VerifyPass()]).run(&f)
        return f
    }

    func testProductsKeepHalfOperandsWhileArithmeticIsWidened() throws {
        for dtype in ["f16", "bf16"] {
            let f = try passed("""
            func @f(%0: \(dtype)[4,3] feed "a", %1: \(dtype)[3,5] feed "b") {
              %2 = dot %0, %1
              %3 = add %2, %2
              return %3
            }
            """)
            let types = f.typeTable()
            let dots = f.body.filter { if case .dot = $0.op { return true } else { return false } }
            XCTAssertEqual(dots.count, 1, dtype)
            for d in dots {
                XCTAssertEqual(d.type?.dtype.rawValue, dtype, "the product is computed in \(dtype) by the half kernel")
                XCTAssertEqual(d.operands.map { types[$0]?.dtype.rawValue }, [dtype, dtype], "its operands are not widened")
            }
            let adds = f.body.filter { if case .binary = $0.op { return true } else { return false } }
            XCTAssertEqual(adds.map { $0.type?.dtype }, [.float32], "\(dtype): the add still computes in float32")
        }
    }
}
