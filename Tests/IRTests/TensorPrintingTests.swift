import XCTest
import KilnIR

/// Tensors print their special float values as numpy does.
final class TensorPrintingTests: XCTestCase {
    func testNaNPrintsAsNanWhateverItsSignAndInfinitiesAsInf() throws {
        // x86 computes 0/0 as a NaN with the sign bit set; Swift spells it "-nan", numpy "nan".
        let zero: Float = 0
        let quotient = zero / zero
        let f = try Tensor(shape: [5], scalars: [Float.nan, -Float.nan, quotient, .infinity, -.infinity])
        XCTAssertEqual(f.description, "[nan, nan, nan, inf, -inf]")
        let d = try Tensor(shape: [2, 2], scalars: [-Double.nan, Double(Float.signalingNaN), -.infinity, 1.5])
        XCTAssertEqual(d.description, "[[nan, nan], [-inf, 1.5]]")
        XCTAssertEqual(Tensor(-Float.nan).description, "nan")
        XCTAssertEqual(Tensor.text(-Double.nan), "nan")
        XCTAssertEqual(Tensor.text(Float(-0.0)), "-0.0")
    }
}
