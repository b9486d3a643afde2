import XCTest
import KilnIR
import KilnPasses
import KilnKernels
@testable import KilnCPU

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

    /// Code that runs once (an initialiser) gets the light pipeline, which must keep the loop
    /// vectoriser: a large variable's fill would otherwise run a scalar loop.
    func testCodeThatRunsOnceIsStillVectorized() throws {
        var f = try Parser.parse("""
        func @i(%0: f32[4096] var "v", %1: f32[4096] feed "x") {
          %2 = constant f32[] 0.25
          %3 = broadcast %2 shape=[4096] dims=[]
          %4 = mul %1, %3
          %5 = var.write %0, %4
          return
        }
        """)
        try PassManager.standard().run(&f)
        var options = CompileOptions(keepSource: true)
        options.runsOnce = true
        let exe = try LLVMBackend().compile(f, options: options)
        XCTAssertTrue(exe.stats.optimisedForOneRun)
        let ir = try XCTUnwrap(exe.stats.source)
        XCTAssertTrue(ir.contains("x float>"), "no vector instructions in:\n\(ir)")
        var params = [try Tensor(zeros: .float32, shape: [4096]), try Tensor(shape: [4096], scalars: (0..<4096).map { Float($0) })]
        _ = try exe.run(&params)
        XCTAssertEqual(try params[0].scalars(as: Float.self), (0..<4096).map { Float($0) * 0.25 })
    }
}
