import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// The LLVM backend as a `Backend`: the CPU it compiles for is an explicit value, and profiling
/// reaches its slots through the constant table.
final class LLVMBackendTests: XCTestCase {
    let text = """
    func @v(%0: f32[4096] feed "x") {
      %1 = constant f32[] 0.5
      %2 = broadcast %1 shape=[4096] dims=[]
      %3 = mul %0, %2
      %4 = tanh %3
      %5 = reduce.sum %4 axes=[0]
      return %4, %5
    }
    """

    func compiled(_ backend: LLVMBackend, _ options: CompileOptions) throws -> any Executable {
        var f = try Parser.parse(text)
        try PassManager.standard().run(&f)
        return try backend.compile(f, options: options)
    }

    func check(_ exe: any Executable, file: StaticString = #filePath, line: UInt = #line) throws {
        var params = [try Tensor(shape: [4096], scalars: (0..<4096).map { Float($0 % 10) / 4 })]
        let got = try exe.run(&params)
        let want = (0..<4096).map { tanh(Float($0 % 10) / 8) }
        let values = try got[0].scalars(as: Float.self)
        XCTAssertEqual(values.count, want.count, file: file, line: line)
        for (a, b) in zip(values, want) where abs(a - b) > 1e-6 { return XCTFail("tanh: \(a), want \(b)", file: file, line: line) }
        XCTAssertEqual(try got[1].scalar(as: Float.self), want.reduce(0, +), accuracy: 1e-2, file: file, line: line)
    }

    /// Code compiled for an AVX2 CPU uses 8-float vectors and no 512-bit preference, and runs
    /// here (any AVX2 machine can run it).
    func testCodeIsCompiledForTheCPUTargetGiven() throws {
        try XCTSkipUnless(CPUTarget.host.featureSet.isSuperset(of: ["avx2", "fma"]), "needs an AVX2 host")
        let haswell = CPUTarget(triple: CPUTarget.host.triple, name: "haswell",
                                features: "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+movbe,+popcnt,+sse4.2,-avx512f")
        XCTAssertEqual(haswell.description.vectorBytes, 32)
        let exe = try compiled(LLVMBackend(cpu: haswell), CompileOptions(keepSource: true))
        let ir = try XCTUnwrap(exe.stats.source)
        XCTAssertTrue(ir.contains("\"target-cpu\"=\"haswell\""), ir)
        XCTAssertTrue(ir.contains("<8 x float>"), ir)
        XCTAssertFalse(ir.contains("<16 x float>"), ir)
        XCTAssertFalse(ir.contains("prefer-vector-width"), ir)
        try check(exe)
    }

    func testAnotherArchitectureIsRefused() throws {
        var arm = CPUTarget.host
        arm.triple = "aarch64-unknown-linux-gnu"
        XCTAssertThrowsError(try compiled(LLVMBackend(cpu: arm), CompileOptions()))
    }

    /// With profiling, every run adds each kernel's time; the slots are reached through the
    /// constant table, so the code holds no address.
    func testProfiledRunsAccumulateKernelTimes() throws {
        let exe = try compiled(LLVMBackend(), CompileOptions(keepSource: true, profile: true))
        XCTAssertFalse(try XCTUnwrap(exe.stats.source).contains("inttoptr"))
        try check(exe)
        try check(exe)
        XCTAssertEqual(exe.profiledRuns, 2)
        XCTAssertEqual(exe.kernelNanoseconds.count, exe.plan.kernels.count)
        XCTAssertGreaterThan(exe.kernelNanoseconds.reduce(0, +), 0)
        XCTAssertEqual(exe.backendName, "llvm")
    }
}
