import XCTest
@testable import KilnPasses
import KilnIR

/// A batch template from two lowerings of a run: what carries the batch, which constants
/// follow it, what it refuses, and that a run at another batch is checked, not assumed.
final class BatchTemplateTests: XCTestCase {
    /// `mean(x * w, axis 0)` and `sum(x, axis 1)` over a batch of `n` rows, lowered as lowering
    /// does: the mean's 1/n folded into a constant.
    func meanOfRows(_ n: Int, scale: Float? = nil) throws -> Function {
        var f = try Parser.parse("""
        func @step(%0: f32[\(n),3] feed "x", %1: f32[3] var "w") {
          %2 = var.read %1
          %3 = broadcast %2 shape=[\(n),3] dims=[1]
          %4 = mul %0, %3
          %5 = reduce.sum %4 axes=[0]
          %6 = constant f32[] \(scale ?? 1 / Float(n))
          %7 = broadcast %6 shape=[3] dims=[]
          %8 = mul %5, %7
          %9 = reduce.sum %0 axes=[1]
          return %8, %9
        }
        """)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        return f
    }

    func testCarriersAndABatchScalarFromTwoLowerings() throws {
        let t = try BatchTemplate.derive(meanOfRows(8), batch: 8, other: meanOfRows(7), otherBatch: 7).get()
        XCTAssertEqual(t.batch, 8)
        XCTAssertEqual(t.carriers, [0: 1, 3: 1, 4: 1, 9: 1])
        XCTAssertEqual(t.scalars, [6: .reciprocal(1)])
        XCTAssertEqual(t.scalar(6, batch: 5), Tensor(Float(1) / 5))
        XCTAssertEqual(t.instantiate(3).results.map { id in t.instantiate(3).typeTable()[id]! }, [TensorType(.float32, [3]), TensorType(.float32, [3])])
        XCTAssertEqual(t.instantiate(3).typeTable()[9], TensorType(.float32, [3]))
        for n in 1...8 { XCTAssertNil(t.mismatch(try meanOfRows(n), batch: n), "batch \(n)") }
    }

    func testARunAtAnotherBatchIsCheckedNotAssumed() throws {
        let t = try BatchTemplate.derive(meanOfRows(8), batch: 8, other: meanOfRows(7), otherBatch: 7).get()
        // A constant that does not follow the batch as the template's does.
        XCTAssertNotNil(t.mismatch(try meanOfRows(4, scale: 0.5), batch: 4))
        // Larger than the arena was laid out for.
        XCTAssertNotNil(t.mismatch(try meanOfRows(9), batch: 9))
        XCTAssertNotNil(t.mismatch(try meanOfRows(4), batch: 5))
    }

    func testRefusals() throws {
        // A constant that changes other than as c*N or c/N.
        XCTAssertThrowsError(try BatchTemplate.derive(meanOfRows(8, scale: 0.5), batch: 8, other: meanOfRows(7, scale: 0.25), otherBatch: 7).get())
        // Functions of different structure.
        var g = try meanOfRows(7)
        g.body.removeLast()
        XCTAssertThrowsError(try BatchTemplate.derive(meanOfRows(8), batch: 8, other: g, otherBatch: 7).get())
        // A dimension other than the leading one follows the batch.
        func transposed(_ n: Int) throws -> Function {
            var f = try Parser.parse("""
            func @step(%0: f32[\(n),3] feed "x") {
              %1 = transpose %0 perm=[1,0]
              return %1
            }
            """)
            try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
            return f
        }
        XCTAssertThrowsError(try BatchTemplate.derive(transposed(8), batch: 8, other: transposed(7), otherBatch: 7).get()) { e in
            XCTAssertTrue("\(e)".contains("f32[3,8]"), "\(e)")
        }
    }
}
