import KilnIR
import KilnPasses
import XCTest

/// HalfPrecisionPass: arithmetic on half operands computes in float32 and rounds, but products
/// stay on their half operands, for Kiln's half product kernels (kiln_hgemm).
final class HalfPrecisionPassTests: XCTestCase {
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
