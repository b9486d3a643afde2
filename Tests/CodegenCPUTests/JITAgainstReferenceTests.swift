import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU

final class JITAgainstReferenceTests: XCTestCase {
    /// Compiles `text`, runs it on `params` through the JIT and the reference evaluator, and
    /// checks results and variable values agree.
    func assertAgrees(_ text: String, _ params: [Tensor], tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        let exe = try CPUCompiler.compile(f)
        var jitParams = params
        let got = exe.run(&jitParams)
        let (want, wantParams) = try ReferenceEvaluator.run(f, parameters: params)
        for (g, w) in zip(got + jitParams, want + wantParams) {
            XCTAssertEqual(g.dtype, w.dtype, file: file, line: line)
            XCTAssertEqual(g.shape, w.shape, file: file, line: line)
            for (a, b) in zip(g.doubles, w.doubles) where !(a.isNaN && b.isNaN) {
                XCTAssertLessThanOrEqual(abs(a - b), tolerance + tolerance * abs(b), "got \(g) want \(w)", file: file, line: line)
            }
        }
    }

    func testMatmulCallsBLASAndMatchesReference() throws {
        try assertAgrees("""
        func @m(%0: f32[2,3] feed "a", %1: f32[3,2] feed "b") {
          %2 = dot %0, %1 transpose_a=false transpose_b=false
          return %2
        }
        """, [Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float]), Tensor(shape: [3, 2], scalars: [1, 0, 0, 1, 1, 1] as [Float])])
    }

    func testFusedBiasReluMatchesReference() throws {
        try assertAgrees("""
        func @m(%0: f32[2,3] feed "x", %1: f32[3] feed "b") {
          %2 = broadcast %1 shape=[2,3] dims=[1]
          %3 = add %0, %2
          %4 = constant f32[] 0.0
          %5 = broadcast %4 shape=[2,3] dims=[]
          %6 = max %3, %5
          %7 = reduce.sum %6 axes=[1]
          return %6, %7
        }
        """, [Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -6] as [Float]), Tensor(shape: [3], scalars: [0.5, 0.5, -10] as [Float])])
    }

    func testVariableCounterUpdatesInPlace() throws {
        try assertAgrees("""
        func @m(%0: i32[] var "counter") {
          %1 = var.read %0
          %2 = constant i32[] 1
          %3 = add %1, %2
          %4 = var.write %0, %3
          return %3
        }
        """, [Tensor(Int32(41))])
    }
}
