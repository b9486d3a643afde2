import XCTest
import KilnTestSupport
import KilnIR
import KilnPasses

final class AlgebraicSimplificationPassTests: XCTestCase {
    private func simplified(_ text: String) throws -> Function {
        var f = try Parser.parse(text)
        try ShapeInferencePass().run(&f)
        try AlgebraicSimplificationPass().run(&f)
        try Verifier.verify(f)
        return f
    }

    func testOpsThatReturnTheirOperandAreRemoved() throws {
        let f = try simplified("""
        func @f(%0: f32[2,3] feed "x") {
          %1 = reduce.sum %0 axes=[]
          %2 = reshape %1 shape=[2,3]
          %3 = transpose %2 perm=[0,1]
          %4 = broadcast %3 shape=[2,3] dims=[0,1]
          %5 = cast %4 to=f32
          %6 = neg %5
          return %6
        }
        """)
        XCTAssertEqual(f.body.map(\.op.mnemonic), ["neg"])
        XCTAssertEqual(f.body[0].operands, [0])
    }

    func testOpsThatChangeTheValueAreKept() throws {
        let f = try simplified("""
        func @f(%0: f32[2,2] feed "x") {
          %1 = reduce.sum %0 axes=[1]
          %2 = transpose %0 perm=[1,0]
          %3 = reshape %0 shape=[4]
          %4 = cast %0 to=f64
          return %1, %2, %3, %4
        }
        """)
        XCTAssertEqual(f.body.map(\.op.mnemonic), ["reduce.sum", "transpose", "reshape", "cast"])
    }

    func testAResultThatWasACopyBecomesItsSource() throws {
        let f = try simplified("""
        func @f(%0: f32[3] feed "x") {
          %1 = exp %0
          %2 = reduce.max %1 axes=[]
          return %2, %1
        }
        """)
        XCTAssertEqual(f.body.map(\.op.mnemonic), ["exp"])
        XCTAssertEqual(f.results, [1, 1])
    }
}
