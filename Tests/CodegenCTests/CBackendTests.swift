import XCTest
import Foundation
import KilnIR
import KilnPasses
import KilnKernels
import KilnTestSupport
@testable import KilnC

/// The C99 backend on IR functions: KernelWriter's kernels rendered as C, compiled by cc, loaded
/// with dlopen and run through NativeExecutable, against the reference evaluator; and its errors.
final class CBackendTests: XCTestCase {
    func function(_ text: String) throws -> Function {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        return f
    }

    /// Runs `text` on `params` compiled by the C backend and in the reference evaluator; results
    /// and variables agree within `tolerance` (NaN where the reference has NaN).
    func assertAgrees(_ text: String, _ params: [Tensor], tolerance: Double = 1e-5, options: CompileOptions = CompileOptions(),
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let f = try function(text)
        let exe = try CBackend().compile(f, options: options)
        XCTAssertEqual(exe.backendName, "c", file: file, line: line)
        var cParams = params
        let got = try exe.run(&cParams)
        let (want, wantParams) = try ReferenceEvaluator.run(f, parameters: params)
        for (g, w) in zip(got + cParams, want + wantParams) {
            XCTAssertEqual(g.dtype, w.dtype, file: file, line: line)
            XCTAssertEqual(g.shape, w.shape, file: file, line: line)
            for (a, b) in zip(g.doubles, w.doubles) where !(a.isNaN && b.isNaN) {
                XCTAssertLessThanOrEqual(abs(a - b), tolerance + tolerance * abs(b), "got \(g) want \(w)", file: file, line: line)
            }
        }
    }

    func testFusedElementwiseReductionProductAndVariableWrite() throws {
        try assertAgrees("""
        func @m(%0: f32[2,3] feed "x", %1: f32[3] feed "b", %2: f32[3,2] var "w") {
          %3 = broadcast %1 shape=[2,3] dims=[1]
          %4 = add %0, %3
          %5 = constant f32[] 0.0
          %6 = broadcast %5 shape=[2,3] dims=[]
          %7 = max %4, %6
          %8 = tanh %7
          %9 = reduce.sum %8 axes=[1]
          %10 = var.read %2
          %11 = dot %7, %10 transpose_a=false transpose_b=false
          %12 = transpose %7 perm=[1,0]
          %13 = var.write %2, %12
          return %8, %9, %11
        }
        """, [Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, .nan] as [Float]), Tensor(shape: [3], scalars: [0.5, 0.5, -10] as [Float]),
              Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6] as [Float])])
    }

    func testIntegerDivisionByZeroIsAFaultLikeTheReference() throws {
        let f = try function("""
        func @m(%0: i32[4] feed "a", %1: i32[4] feed "b") {
          %2 = check.nonzero %1 node="div" op="FloorDiv" message="division by zero"
          %3 = floordiv %0, %2
          return %3
        }
        """)
        let exe = try CBackend().compile(f)
        var ok = [try Tensor(shape: [4], scalars: [7, -7, Int32.min, 9] as [Int32]), try Tensor(shape: [4], scalars: [2, 2, -1, -4] as [Int32])]
        XCTAssertEqual(try exe.run(&ok)[0], try ReferenceEvaluator.run(f, parameters: ok).results[0])
        var bad = [ok[0], try Tensor(shape: [4], scalars: [2, 0, 1, 1] as [Int32])]
        let reference = Result { try ReferenceEvaluator.run(f, parameters: bad) }
        XCTAssertThrowsError(try exe.run(&bad)) { e in
            guard case .failure(let r) = reference else { return XCTFail("the reference does not fault") }
            XCTAssertEqual(e as? KilnError, r as? KilnError)
        }
    }

    func testStatsKeepTheSourceAndAssemblyAndTimeEachPhase() throws {
        let f = try function("""
        func @m(%0: f32[4096] feed "x") {
          %1 = exp %0
          %2 = reduce.sum %1 axes=[0]
          return %2
        }
        """)
        let exe = try CBackend().compile(f, options: CompileOptions(keepSource: true, keepAssembly: true, profile: true))
        let source = try XCTUnwrap(exe.stats.source)
        XCTAssertTrue(source.hasPrefix("/* Kiln: @m, rendered as C99. */"), source)
        XCTAssertTrue(source.contains("#pragma omp simd reduction(+: "), "the sum runs in vector accumulators:\n\(source)")
        XCTAssertTrue(source.contains("kiln_rt->profile_tick("), source)
        XCTAssertTrue(try XCTUnwrap(exe.stats.assembly).contains("ps\t%"), "packed float instructions")
        XCTAssertGreaterThan(exe.stats.emitMs, 0)
        XCTAssertGreaterThan(exe.stats.optimizeMs, 0)
        XCTAssertGreaterThan(exe.stats.loadMs, 0)
        var params = [try Tensor(shape: [4096], scalars: (0..<4096).map { Float($0 % 10) * 0.01 })]
        let got = try exe.run(&params)[0].scalar(as: Float.self)
        let want = (0..<4096).reduce(0.0) { $0 + Foundation.exp(Double($1 % 10) * 0.01) }
        XCTAssertEqual(Double(got), want, accuracy: want * 1e-6)
        XCTAssertEqual(exe.profiledRuns, 1, "the profile slots are reached through the constant table")
    }

    func testAMissingCompilerIsUnavailable() {
        assertKilnError(.unavailable, contains: ["/nonexistent", "apt-get install gcc"]) {
            try CBackend(environment: ["KILN_CC": "/nonexistent", "PATH": "/usr/bin:/bin"])
        }
    }

    func testACompilerFailureIsAnInternalErrorQuotingTheCompiler() throws {
        let backend = try CBackend(environment: ["KILN_CC": "cc -include /nonexistent/kiln.h", "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin"])
        let f = try function("""
        func @m(%0: f32[3] feed "x") {
          %1 = neg %0
          return %1
        }
        """)
        let e = assertKilnError(.internal, contains: ["/nonexistent/kiln.h", "kept for inspection"]) { try backend.compile(f) }
        if let kept = e?.message.split(separator: " ").first(where: { $0.hasSuffix("kernels.c") }) {
            try? FileManager.default.removeItem(atPath: (String(kept) as NSString).deletingLastPathComponent)
        }
    }

    func testTheTargetIsThisMachine() throws {
        let backend = try CBackend()
        XCTAssertEqual(backend.name, "c")
        XCTAssertTrue(backend.target.name.hasPrefix("c99 /"), backend.target.name)
        XCTAssertTrue([16, 32, 64].contains(backend.target.vectorBytes))
    }
}
