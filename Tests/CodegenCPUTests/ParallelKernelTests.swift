import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// Kernels large enough to be split across the worker pool must compute exactly what the
/// reference evaluator computes (row ranges must tile the output with no gap or overlap).
final class ParallelKernelTests: XCTestCase {
    func run(_ text: String, _ params: [Tensor], rtol: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) throws {
        var f = try Parser.parse(text)
        try PassManager.standard().run(&f)
        let exe = try LLVMBackend().compile(f)
        var p = params
        let got = try exe.run(&p)
        let want = try ReferenceEvaluator.run(f, parameters: params).results
        for (g, w) in zip(got, want) {
            XCTAssertEqual(g.shape, w.shape, file: file, line: line)
            for i in 0..<w.elementCount {
                let (a, b) = (g.double(at: i), w.double(at: i))
                if abs(a - b) > rtol * max(1, abs(b)) { return XCTFail("element \(i): \(a) vs \(b)", file: file, line: line) }
            }
        }
    }

    func seq(_ n: Int, _ k: Int) -> [Float] { (0..<n).map { Float(($0 * 37 + k) % 101) / 50 - 1 } }

    func testSplitMatrixProductsMatchTheReference() throws {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = ta ? [512, 257] : [257, 512], b = tb ? [64, 512] : [512, 64]
            try run("""
            func @d(%0: f32[\(a[0]),\(a[1])] feed "a", %1: f32[\(b[0]),\(b[1])] feed "b") {
              %2 = dot %0, %1 transpose_a=\(ta) transpose_b=\(tb)
              return %2
            }
            """, [Tensor(shape: a, scalars: seq(a[0] * a[1], 1)), Tensor(shape: b, scalars: seq(b[0] * b[1], 2))], rtol: 1e-4)
        }
    }

    func testSplitElementwiseReductionAndWindowKernelsMatchTheReference() throws {
        try run("""
        func @e(%0: f32[67,33,45] feed "x") {
          %1 = tanh %0
          %2 = mul %1, %0
          %3 = reduce.max %2 axes=[2]
          %4 = exp %2
          return %3, %4
        }
        """, [Tensor(shape: [67, 33, 45], scalars: seq(67 * 33 * 45, 3))])
        try run("""
        func @w(%0: f32[9,31,30,16] feed "x") {
          %1 = reduce_window.max %0 window=[1,3,3,1] strides=[1,2,2,1] pad_low=[0,1,1,0] pad_high=[0,1,0,0]
          %2 = patches %0 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %3 = unpatches %2 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1] image=[31,30]
          return %1, %3
        }
        """, [Tensor(shape: [9, 31, 30, 16], scalars: seq(9 * 31 * 30 * 16, 4))], rtol: 1e-4)
    }
}

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
}
