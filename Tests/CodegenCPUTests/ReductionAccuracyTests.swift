import XCTest
import Foundation
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// Compiled sums accumulate in blocks whose sums are added in Double: exact for 2^26 copies of
/// 1.5 (a float32 running sum stops at 2^25), within a few float32 ulps of a Double sum on random
/// data, and the same bits on every run whatever the worker pool does.
final class ReductionAccuracyTests: XCTestCase {
    func compiled(_ text: String) throws -> any Executable {
        var f = try Parser.parse(text)
        try PassManager.standard().run(&f)
        return try LLVMBackend().compile(f)
    }

    func run(_ exe: any Executable, _ params: [Tensor] = []) throws -> [[Float]] {
        var p = params
        return try exe.run(&p).map { try $0.scalars(as: Float.self) }
    }

    func testSumsAndMeansOfTwoToThe26FilledValuesAreExact() throws {
        // The fill is computed inside each reduction's loop: nothing of 2^26 elements is allocated.
        let r = try run(try compiled("""
        func @s() {
          %0 = constant f32[] 1.5
          %1 = broadcast %0 shape=[67108864] dims=[]
          %2 = reduce.sum %1 axes=[0]
          %3 = constant f32[] 67108864.0
          %4 = div %2, %3
          %5 = broadcast %0 shape=[8192,8192] dims=[]
          %6 = reduce.sum %5 axes=[0, 1]
          %7 = broadcast %0 shape=[4,16777216] dims=[]
          %8 = reduce.sum %7 axes=[1]
          return %2, %4, %6, %8
        }
        """))
        XCTAssertEqual(r[0], [100_663_296])
        XCTAssertEqual(r[1], [1.5])
        XCTAssertEqual(r[2], [100_663_296])
        XCTAssertEqual(r[3], [Float](repeating: 25_165_824, count: 4))
    }

    func testLeadingAxisSumsOfManyRowsStayWithinAFewUlps() throws {
        // 0.1 is inexact in float32, so a running sum drifts as it grows: 6e-5 off after 8192
        // rows, 1e-3 after 131072, against 1e-6 for a block of 128. Split (outputs of 64 and 8)
        // and one-loop (output of 8192) reductions over leading axes all sum rows in blocks.
        let r = try run(try compiled("""
        func @s() {
          %0 = constant f32[] 0.1
          %1 = broadcast %0 shape=[1048576,64] dims=[]
          %2 = reduce.sum %1 axes=[0]
          %3 = broadcast %0 shape=[8192,8192] dims=[]
          %4 = reduce.sum %3 axes=[0]
          %5 = broadcast %0 shape=[64,128,128,8] dims=[]
          %6 = reduce.sum %5 axes=[0, 1, 2]
          return %2, %4, %6
        }
        """))
        let tenth = Double(Float(0.1))
        for (values, rows) in zip(r, [1 << 20, 8192, 1 << 20]) {
            for v in values { XCTAssertEqual(Double(v), Double(rows) * tenth, accuracy: 4e-6 * Double(rows) * tenth, "\(rows) rows") }
        }
    }

    func testFedTwoToThe26ValuesSumAndAverageExactly() throws {
        let exe = try compiled("""
        func @s(%0: f32[67108864] feed "x") {
          %1 = reduce.sum %0 axes=[0]
          %2 = constant f32[] 67108864.0
          %3 = div %1, %2
          return %1, %3
        }
        """)
        let r = try run(exe, [Tensor(shape: [1 << 26], scalars: [Float](repeating: 1.5, count: 1 << 26))])
        XCTAssertEqual(r[0], [100_663_296])
        XCTAssertEqual(r[1], [1.5])
    }

    func uniform(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Float.random(in: 0..<1, using: &rng) }
    }

    func assertClose(_ got: [Float], _ want: [Double], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, file: file, line: line)
        var worst = 0.0
        for (g, w) in zip(got, want) { worst = max(worst, abs(Double(g) - w) / abs(w)) }
        XCTAssertLessThan(worst, 1e-6, what, file: file, line: line)
    }

    func testRandomRowColumnAndTotalSumsMatchDoubleSums() throws {
        let (m, n) = (256, 8192), values = uniform(m * n, seed: 11)
        let exe = try compiled("""
        func @s(%0: f32[256,8192] feed "x") {
          %1 = reduce.sum %0 axes=[1]
          %2 = reduce.sum %0 axes=[0]
          %3 = reduce.sum %0 axes=[0, 1]
          return %1, %2, %3
        }
        """)
        let r = try run(exe, [Tensor(shape: [m, n], scalars: values)])
        var rows = [Double](repeating: 0, count: m), cols = [Double](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { rows[i] += Double(values[i * n + j]); cols[j] += Double(values[i * n + j]) } }
        assertClose(r[0], rows, "rows")
        assertClose(r[1], cols, "columns")
        assertClose(r[2], [rows.reduce(0, +)], "total")
    }

    func testSplitReductionIsAccurateAndTheSameOnEveryRun() throws {
        let (m, n) = (16384, 128), values = uniform(m * n, seed: 5)
        let text = """
        func @s(%0: f32[16384,128] feed "x") {
          %1 = reduce.sum %0 axes=[0]
          return %1
        }
        """
        var probe = try Parser.parse(text)
        try PassManager.standard().run(&probe)
        guard case .splitReduction(1, _, _, _)? = KernelPlan(probe).kernels.first else { return XCTFail("expected a split reduction") }
        let x = try Tensor(shape: [m, n], scalars: values)
        let first = try run(try compiled(text), [x])[0]
        var cols = [Double](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { cols[j] += Double(values[i * n + j]) } }
        assertClose(first, cols, "columns")
        // Again, from a fresh compile, and from two executables running at once (one of them
        // finds the worker pool busy and runs its parts on its own thread).
        XCTAssertEqual(try run(try compiled(text), [x])[0], first)
        let executables = [try compiled(text), try compiled(text)]
        let results = Results()
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            var p = [x]
            let r = (try? executables[k].run(&p)[0].scalars(as: Float.self)) ?? []
            results.lock.withLock { results.values[k] = r }
        }
        XCTAssertEqual(results.values[0], first)
        XCTAssertEqual(results.values[1], first)
    }
}

private final class Results: @unchecked Sendable {
    let lock = NSLock()
    var values: [[Float]] = [[], []]
}
