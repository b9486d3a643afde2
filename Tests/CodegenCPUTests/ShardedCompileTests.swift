import XCTest
import KilnIR
import KilnPasses
import KilnKernels
@testable import KilnCPU

/// An executable compiled as several modules in parallel links into the same program: every
/// kernel, whichever module defines it, computes what the reference evaluator computes.
final class ShardedCompileTests: XCTestCase {
    func testEveryShardCountComputesTheSameResults() throws {
        // Six kernels (reductions and products have their own), one of them split across the pool.
        var f = try Parser.parse("""
        func @s(%0: f32[64,48] feed "a", %1: f32[48,40] feed "b", %2: f32[256,256] feed "c") {
          %3 = dot %0, %1 transpose_a=false transpose_b=false
          %4 = reduce.sum %3 axes=[1]
          %5 = exp %3
          %6 = reduce.max %5 axes=[0]
          %7 = dot %3, %1 transpose_a=false transpose_b=true
          %8 = reduce.sum %7 axes=[0]
          %9 = tanh %2
          %10 = reduce.sum %9 axes=[1]
          return %4, %6, %8, %10
        }
        """)
        try PassManager.standard().run(&f)
        func seq(_ n: Int, _ k: Int) -> [Float] { (0..<n).map { Float(($0 * 31 + k) % 97) / 97 - 0.5 } }
        let params = [try Tensor(shape: [64, 48], scalars: seq(64 * 48, 1)), try Tensor(shape: [48, 40], scalars: seq(48 * 40, 2)),
                      try Tensor(shape: [256, 256], scalars: seq(256 * 256, 3))]
        let want = try ReferenceEvaluator.run(f, parameters: params).results
        for shards in [1, 2, 3, 8] {
            let exe = try LLVMBackend().compile(f, options: CompileOptions(shards: shards))
            XCTAssertGreaterThanOrEqual(exe.plan.kernels.count, 6)
            XCTAssertEqual(exe.stats.shards, min(shards, exe.plan.kernels.count))
            var p = params
            let got = try exe.run(&p)
            for (g, w) in zip(got, want) {
                for i in 0..<w.elementCount {
                    let (x, y) = (g.double(at: i), w.double(at: i))
                    if abs(x - y) > 1e-4 * max(1, abs(y)) { return XCTFail("\(shards) shards, element \(i): \(x) vs \(y)") }
                }
            }
        }
    }

    /// Small kernels (scalars, a few elements, calls into the runtime's products) and the sums of
    /// a split sum's parts into a few elements (the column sum of `c`) go to a module of their
    /// own, optimised lightly and code-generated the quick way, beside the modules of the rest;
    /// code that runs once has one too.
    func testColdKernelsCompileInAModuleOfTheirOwnAndComputeTheSame() throws {
        var f = try Parser.parse("""
        func @c(%0: f32[64,48] feed "a", %1: f32[48,40] feed "b", %2: f32[256,256] feed "c", %3: f32[10] feed "d") {
          %4 = dot %0, %1 transpose_a=false transpose_b=false
          %5 = reduce.sum %4 axes=[1]
          %6 = exp %3
          %7 = reduce.max %6 axes=[0]
          %8 = broadcast %7 shape=[10] dims=[]
          %9 = sub %6, %8
          %10 = reduce.sum %9 axes=[0]
          %11 = tanh %2
          %12 = reduce.sum %11 axes=[1]
          %13 = dot %4, %1 transpose_a=false transpose_b=true
          %14 = reduce.sum %11 axes=[0]
          return %5, %9, %10, %12, %13, %14
        }
        """)
        try PassManager.standard().run(&f)
        func seq(_ n: Int, _ k: Int) -> [Float] { (0..<n).map { Float(($0 * 31 + k) % 97) / 97 - 0.5 } }
        let params = [try Tensor(shape: [64, 48], scalars: seq(64 * 48, 1)), try Tensor(shape: [48, 40], scalars: seq(48 * 40, 2)),
                      try Tensor(shape: [256, 256], scalars: seq(256 * 256, 3)), try Tensor(shape: [10], scalars: seq(10, 4))]
        let want = try ReferenceEvaluator.run(f, parameters: params).results
        let exe = try LLVMBackend().compile(f, options: CompileOptions(shards: 2))
        let cold = exe.plan.coldKernels(f)
        XCTAssertGreaterThanOrEqual(cold.filter { $0 }.count, LLVMBackend.minimumColdKernels, "\(exe.plan.kernels)")
        XCTAssert(cold.contains(false), "\(exe.plan.kernels)")
        XCTAssertEqual(exe.stats.shards, 3, "two modules of hot kernels and one of cold")
        XCTAssert(exe.plan.kernels.contains { if case .splitReduction = $0 { return true } else { return false } }, "\(exe.plan.kernels)")
        var p = params
        let got = try exe.run(&p)
        for (r, (g, w)) in zip(got, want).enumerated() {
            for i in 0..<w.elementCount {
                let (x, y) = (g.double(at: i), w.double(at: i))
                if abs(x - y) > 1e-4 * max(1, abs(y)) { return XCTFail("result \(r), element \(i): \(x) vs \(y)") }
            }
        }
        var once = CompileOptions(shards: 2)
        once.runsOnce = true
        XCTAssertEqual(LLVMBackend.layout(exe.plan, f, once), ShardLayout(hot: 2, cold: true))
        let initialiser = try LLVMBackend().compile(f, options: once)
        XCTAssertEqual(initialiser.stats.shards, 3)
        var q = params
        let again = try initialiser.run(&q)
        for (r, (g, w)) in zip(again, want).enumerated() {
            for i in 0..<w.elementCount where abs(g.double(at: i) - w.double(at: i)) > 1e-4 * max(1, abs(w.double(at: i))) {
                return XCTFail("run once, result \(r), element \(i): \(g.double(at: i)) vs \(w.double(at: i))")
            }
        }
    }
    /// The cold module vectorises only the loops that ask: an exp over 640 elements (a costly
    /// element function, scalar several times slower) is vectorised there; sums and products of
    /// 640 elements are not. Both compute what the reference evaluator does.
    func testTheColdModuleVectorisesOnlyItsCostlyLoops() throws {
        func coldModule(_ cold: String, results: String) throws -> String {
            var f = try Parser.parse("""
            func @v(%0: f32[640] feed "a", %1: f32[640] feed "b", %2: f32[256,256] feed "c") {
              \(cold)
              %10 = tanh %2
              %11 = reduce.sum %10 axes=[1]
              %12 = exp %2
              return \(results), %11, %12
            }
            """)
            try PassManager.standard().run(&f)
            let params = [try Tensor(shape: [640], scalars: (0..<640).map { Float($0 % 37) / 37 - 0.5 }),
                          try Tensor(shape: [640], scalars: (0..<640).map { Float($0 % 23) / 23 }),
                          try Tensor(shape: [256, 256], scalars: (0..<65536).map { Float($0 % 97) / 97 - 0.5 })]
            let want = try ReferenceEvaluator.run(f, parameters: params).results
            let exe = try LLVMBackend().compile(f, options: CompileOptions(keepSource: true, shards: 2))
            XCTAssertEqual(exe.stats.shards, 3, "\(exe.plan.kernels)")
            var p = params
            for (r, (g, w)) in zip(try exe.run(&p), want).enumerated() {
                for i in 0..<w.elementCount where abs(g.double(at: i) - w.double(at: i)) > 1e-5 * max(1, abs(w.double(at: i))) {
                    XCTFail("result \(r), element \(i): \(g.double(at: i)) vs \(w.double(at: i))")
                    break
                }
            }
            let modules = (exe.stats.source ?? "").components(separatedBy: "; ModuleID")
            return modules.last ?? ""
        }
        let costly = try coldModule("%3 = exp %0\n  %4 = add %0, %1\n  %5 = mul %0, %1\n  %6 = sub %1, %0", results: "%3, %4, %5, %6")
        XCTAssert(costly.contains("<16 x float>") || costly.contains("<8 x float>"), "the exp is not vectorised:\n\(costly)")
        let cheap = try coldModule("%3 = add %0, %1\n  %4 = mul %0, %1\n  %5 = sub %1, %0\n  %6 = div %0, %1", results: "%3, %4, %5, %6")
        XCTAssertFalse(cheap.contains("x float>"), "cheap cold loops vectorised:\n\(cheap)")
    }

    /// The entry (a call per kernel, run once a run) is defined in the cold module, compiled the
    /// quick way, and the hot modules define kernels only.
    func testTheEntryIsDefinedInTheColdModule() throws {
        var f = try Parser.parse("""
        func @e(%0: f32[640] feed "a", %1: f32[640] feed "b", %2: f32[256,256] feed "c") {
          %3 = add %0, %1
          %4 = mul %0, %1
          %5 = sub %1, %0
          %6 = div %0, %1
          %7 = tanh %2
          %8 = reduce.sum %7 axes=[1]
          %9 = exp %2
          return %3, %4, %5, %6, %8, %9
        }
        """)
        try PassManager.standard().run(&f)
        let exe = try LLVMBackend().compile(f, options: CompileOptions(keepSource: true, shards: 2))
        XCTAssertEqual(exe.stats.shards, 3, "\(exe.plan.kernels)")
        let modules = (exe.stats.source ?? "").components(separatedBy: "; ModuleID").filter { $0.contains("define") }
        XCTAssertEqual(modules.count, 3)
        // Kernels are named after the entry: NAME_kN (and NAME_kN_sum).
        func defined(_ module: String) -> [String] {
            module.split(separator: "\n").filter { $0.hasPrefix("define") }.compactMap { line in
                line.split(separator: "@").dropFirst().first?.split(separator: "(").first.map(String.init)
            }
        }
        let entries = modules.map { defined($0).filter { !$0.contains("_k") } }
        XCTAssertEqual(entries.map(\.count), [0, 0, 1], "\(modules.map(defined))")
    }
}
