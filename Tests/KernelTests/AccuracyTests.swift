import XCTest
import Foundation
import KilnIR
import KilnPasses
import KilnKernels

/// The float32 exp/log/tanh/log1p/erf/erfc element rules against double-precision libm over wide ranges,
/// on every backend (each renders the same polynomials; a C compiler that contracted or
/// reassociated them would show here).
final class TranscendentalAccuracyTests: XCTestCase {
    /// A case computing `op` over `xs`, within `bound` relative error of `truth` rounded to float32.
    func accuracy(_ op: UnaryOp, _ xs: [Float], bound: Double, _ truth: @escaping @Sendable (Double) -> Double) throws -> KernelCase {
        var b = FunctionBuilder(name: "acc")
        let p = b.addParam("x", kind: .feed, type: TensorType(.float32, [xs.count]))
        b.setResults([try b.emit(.unary(op), [p])])
        return KernelCase("\(op.rawValue) within \(bound) of libm", b.function, [try Tensor(shape: [xs.count], scalars: xs)], expected: { results in
            guard let got = try? results[0].scalars(as: Float.self) else { return "not float32" }
            var worst = 0.0
            for (x, y) in zip(xs, got) {
                let want = Double(Float(truth(Double(x))))
                if want.isNaN { if !y.isNaN { return "\(op)(\(x)) = \(y), want NaN" }; continue }
                if want.isInfinite { if Double(y) != want { return "\(op)(\(x)) = \(y), want \(want)" }; continue }
                worst = max(worst, abs(Double(y) - want) / max(abs(want), Double(Float.leastNormalMagnitude)))
            }
            return worst < bound ? nil : "largest relative error \(worst)"
        })
    }

    func spread(_ lo: Float, _ hi: Float, _ n: Int = 20000) -> [Float] { (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) } }

    func testExpLogTanhAndLog1pAreWithinFourUlp() throws {
        BackendRunner.run("transcendental accuracy", [
            try accuracy(.exp, spread(-87, 88) + [0, -0.0, .infinity, -.infinity, .nan, 100, -200], bound: 5e-7, Foundation.exp),
            try accuracy(.log, spread(1e-6, 10) + spread(10, 1e6) + [Float.leastNonzeroMagnitude, Float.leastNormalMagnitude / 1000, 0, -1, .infinity, .nan, 1],
                         bound: 5e-7, Foundation.log),
            try accuracy(.tanh, spread(-12, 12) + [1e-5, -1e-5, 0, .nan, .infinity], bound: 5e-7, Foundation.tanh),
            try accuracy(.log1p, spread(-0.99, 5) + [1e-7, -1e-7, 1e-3, 0], bound: 5e-7, Foundation.log1p),
        ])
    }

    /// Distance in float32 steps (ulps) between two floats of the same sign or zero.
    static func ulps(_ a: Float, _ b: Float) -> Int64 {
        func ordered(_ x: Float) -> Int64 { let i = Int64(Int32(bitPattern: x.bitPattern)); return i < 0 ? Int64(Int32.min) - i : i }
        return abs(ordered(a) - ordered(b))
    }

    func testErfAndErfcAreWithinTwoUlpOfLibm() throws {
        // Every 211th float from 0 to 12 (erf is 1 and erfc underflows beyond), both signs, and specials.
        let positive = stride(from: UInt32(0), to: Float(12).bitPattern, by: 211).map { Float(bitPattern: $0) }
        var xs = positive + positive.map { -$0 }
        xs += [.infinity, -.infinity, .nan, 2.5, -2.5, 2.4999998, 1e-40, -0.0]
        let input = try Tensor(shape: [xs.count], scalars: xs)
        var cases: [KernelCase] = []
        for (op, truth) in [(UnaryOp.erf, Foundation.erf), (.erfc, Foundation.erfc)] as [(UnaryOp, @Sendable (Double) -> Double)] {
            var b = FunctionBuilder(name: "erf")
            let p = b.addParam("x", kind: .feed, type: TensorType(.float32, [xs.count]))
            b.setResults([try b.emit(.unary(op), [p])])
            // libm's answers once, for every backend.
            let wants = xs.map { Float(truth(Double($0))) }
            cases.append(KernelCase("\(op.rawValue) within 2 ulp of libm", b.function, [input], expected: { [xs] results in
                guard let got = try? results[0].scalars(as: Float.self), got.count == xs.count else { return "not \(xs.count) float32 values" }
                // Ten million values: buffer pointers and a bit-pattern shortcut keep a debug build quick.
                var worst: (Int64, Int) = (0, 0)
                got.withUnsafeBufferPointer { g in
                    wants.withUnsafeBufferPointer { w in
                        for i in 0..<g.count where g[i].bitPattern != w[i].bitPattern {
                            let d = w[i].isNaN ? (g[i].isNaN ? 0 : Int64.max) : Self.ulps(g[i], w[i])
                            if d > worst.0 { worst = (d, i) }
                        }
                    }
                }
                return worst.0 <= 2 ? nil : "\(op)(\(xs[worst.1])) = \(got[worst.1]), libm \(wants[worst.1]): \(worst.0) ulp off"
            }))
        }
        BackendRunner.run("transcendental accuracy: erf", cases)
    }
}

/// Compiled sums accumulate in blocks whose sums are added in Double: exact for 2^26 copies of
/// 1.5 (a float32 running sum stops at 2^25), within a few float32 ulps of a Double sum on random
/// data, and the same bits on every run whatever the worker pool does, on every backend.
final class ReductionAccuracyTests: XCTestCase {
    static func sums(_ text: String) throws -> Function { try KernelCase.parse(text, passes: .standard) }

    /// Every float32 result equals `want`'s (one array per result).
    static func exactly(_ want: [[Float]]) -> @Sendable ([Tensor]) -> String? {
        { results in
            for (k, (r, w)) in zip(results, want).enumerated() {
                let got = (try? r.scalars(as: Float.self)) ?? []
                if got != w { return "result \(k): \(got.prefix(8)), expected \(w.prefix(8))" }
            }
            return nil
        }
    }

    /// Every element of result k within `relative` of `want[k]`.
    static func close(_ want: [[Double]], relative: Double) -> @Sendable ([Tensor]) -> String? {
        { results in
            for (k, (r, w)) in zip(results, want).enumerated() {
                let got = (try? r.scalars(as: Float.self)) ?? []
                guard got.count == w.count else { return "result \(k): \(got.count) elements, expected \(w.count)" }
                for (i, (g, v)) in zip(got, w).enumerated() where abs(Double(g) - v) > relative * abs(v) {
                    return "result \(k) element \(i): \(g), expected \(v) within \(relative)"
                }
            }
            return nil
        }
    }

    static func uniform(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Float.random(in: 0..<1, using: &rng) }
    }

    func testSumsStayAccurate() throws {
        var cases: [KernelCase] = []
        // The fill is computed inside each reduction's loop: nothing of 2^26 elements is allocated.
        cases.append(KernelCase("sums and means of 2^26 filled values are exact", try Self.sums("""
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
        """), [], expected: Self.exactly([[100_663_296], [1.5], [100_663_296], [Float](repeating: 25_165_824, count: 4)])))

        // 0.1 is inexact in float32, so a running sum drifts as it grows: 6e-5 off after 8192
        // rows, 1e-3 after 131072, against 1e-6 for a block of 128. Split (outputs of 64 and 8)
        // and one-loop (output of 8192) reductions over leading axes all sum rows in blocks.
        let tenth = Double(Float(0.1))
        cases.append(KernelCase("leading-axis sums of many rows stay within a few ulps", try Self.sums("""
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
        """), [], expected: Self.close([[Double](repeating: 1048576 * tenth, count: 64), [Double](repeating: 8192 * tenth, count: 8192),
                                         [Double](repeating: 1048576 * tenth, count: 8)], relative: 4e-6)))

        cases.append(KernelCase("fed 2^26 values sum and average exactly", try Self.sums("""
        func @s(%0: f32[67108864] feed "x") {
          %1 = reduce.sum %0 axes=[0]
          %2 = constant f32[] 67108864.0
          %3 = div %1, %2
          return %1, %3
        }
        """), [try Tensor(shape: [1 << 26], scalars: [Float](repeating: 1.5, count: 1 << 26))], expected: Self.exactly([[100_663_296], [1.5]])))

        let (m, n) = (256, 8192), values = Self.uniform(m * n, seed: 11)
        var rows = [Double](repeating: 0, count: m), cols = [Double](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { rows[i] += Double(values[i * n + j]); cols[j] += Double(values[i * n + j]) } }
        cases.append(KernelCase("random row, column and total sums match Double sums", try Self.sums("""
        func @s(%0: f32[256,8192] feed "x") {
          %1 = reduce.sum %0 axes=[1]
          %2 = reduce.sum %0 axes=[0]
          %3 = reduce.sum %0 axes=[0, 1]
          return %1, %2, %3
        }
        """), [try Tensor(shape: [m, n], scalars: values)], expected: Self.close([rows, cols, [rows.reduce(0, +)]], relative: 1e-6)))
        BackendRunner.run("reduction accuracy", cases)
    }

    func testSplitReductionIsAccurateAndTheSameOnEveryRun() throws {
        let (m, n) = (16384, 128), values = Self.uniform(m * n, seed: 5)
        let f = try Self.sums("""
        func @s(%0: f32[16384,128] feed "x") {
          %1 = reduce.sum %0 axes=[0]
          return %1
        }
        """)
        let x = try Tensor(shape: [m, n], scalars: values)
        var cols = [Double](repeating: 0, count: n)
        for i in 0..<m { for j in 0..<n { cols[j] += Double(values[i * n + j]) } }
        let close = Self.close([cols], relative: 1e-6)
        BackendRunner.run("reduction accuracy", check: "a split sum is accurate and the same on every run") { backend in
            func compiled() throws -> any Executable { try backend.compile(f, options: CompileOptions()) }
            @Sendable func run(_ exe: any Executable) throws -> [Float] {
                var p = [x]
                return try exe.run(&p)[0].scalars(as: Float.self)
            }
            let first = try compiled()
            // A device has a work-group tree per output (128 outputs need no parts).
            if !backend.target.workItems {
                guard case .splitReduction(1, _, _, _)? = first.plan.kernels.first else { return "the sum is not a split reduction: \(first.plan.kernels)" }
            }
            let want = try run(first)
            if let problem = close([try Tensor(shape: [n], scalars: want)]) { return problem }
            // Again, from a fresh compile, and from two executables running at once (one of them
            // finds the worker pool busy and runs its parts on its own thread).
            if try run(try compiled()) != want { return "a second executable sums differently" }
            let executables = [try compiled(), try compiled()]
            let results = ConcurrentResults()
            DispatchQueue.concurrentPerform(iterations: 2) { k in
                let r = (try? run(executables[k])) ?? []
                results.lock.withLock { results.values[k] = r }
            }
            return results.values.allSatisfy({ $0 == want }) ? nil : "two executables running at once sum differently"
        }
    }
}

private final class ConcurrentResults: @unchecked Sendable {
    let lock = NSLock()
    var values: [[Float]] = [[], []]
}
