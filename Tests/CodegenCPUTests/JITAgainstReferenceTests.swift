import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

final class JITAgainstReferenceTests: XCTestCase {
    /// Compiles `text`, runs it on `params` through the JIT and the reference evaluator, and
    /// checks results and variable values agree.
    func assertAgrees(_ text: String, _ params: [Tensor], tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        let exe = try LLVMBackend().compile(f)
        var jitParams = params
        let got = try exe.run(&jitParams)
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

final class VectorizationTests: XCTestCase {
    /// Elementwise chains and reductions must come out of LLVM as vector code on this CPU; a
    /// scalar loop here would be a silent 8-16x slowdown.
    func testFusedElementwiseAndReductionLoopsAreVectorized() throws {
        var f = try Parser.parse("""
        func @v(%0: f32[4096] feed "x") {
          %1 = constant f32[] 0.5
          %2 = broadcast %1 shape=[4096] dims=[]
          %3 = mul %0, %2
          %4 = add %3, %0
          %5 = reduce.sum %4 axes=[0]
          return %5
        }
        """)
        try PassManager.standard().run(&f)
        let exe = try LLVMBackend().compile(f, options: CompileOptions(keepSource: true))
        let ir = try XCTUnwrap(exe.stats.source)
        XCTAssertTrue(ir.contains("x float>"), "no vector instructions in:\n\(ir)")
        var params = [try Tensor(shape: [4096], scalars: (0..<4096).map { Float($0 % 10) })]
        let got = try exe.run(&params)[0].scalar(as: Float.self)
        let want = (0..<4096).reduce(Float(0)) { $0 + Float($1 % 10) * 1.5 }
        XCTAssertEqual(got, want, accuracy: want * 1e-6)
    }
}
