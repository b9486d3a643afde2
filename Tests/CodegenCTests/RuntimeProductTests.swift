import CKilnRT
import Foundation
import KilnIR
import XCTest

/// The C runtime's portable products and fault messages, in-process through CKilnRT (the same
/// source artifacts build): products against a naive loop on the worker pool, messages against
/// Check.error.
final class RuntimeProductTests: XCTestCase {
    override func setUp() { kiln_pool_start(2) }

    struct Case { var m, n, k: Int; var ta, tb: Bool; var alpha: Double; var update: Bool }

    static let cases: [Case] = {
        var all: [Case] = []
        for (m, n, k) in [(1, 1, 1), (17, 33, 65), (6, 13, 257), (120, 100, 90), (3, 5, 0)] {
            for t in 0..<4 { for v in 0..<4 { all.append(Case(m: m, n: n, k: k, ta: t & 1 != 0, tb: t & 2 != 0, alpha: v & 1 != 0 ? -0.5 : 1, update: v & 2 != 0)) } }
        }
        return all
    }()

    /// A (m x k, or k x m stored when ta), B (k x n, or n x k when tb) with padded row strides,
    /// C's old contents, and the product by definition in Double with each element's bound.
    /// Operands are floats in [-1, 1) that `operand` (C's old contents: `old`) can hold.
    static func operands(_ c: Case, seed: inout UInt64, operand: (Double) -> Double = { $0 }, old: (Double) -> Double = { $0 })
        -> (a: [Double], lda: Int, b: [Double], ldb: Int, c0: [Double], ldc: Int, want: [Double], bound: [Double]) {
        func draw() -> Double {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Double(Float(Double(seed >> 11) / 9007199254740992.0 * 2 - 1))
        }
        let lda = (c.ta ? c.m : c.k) + 3, ldb = (c.tb ? c.k : c.n) + 2, ldc = c.n + 1
        let a = (0..<((c.ta ? c.k : c.m) * lda)).map { _ in operand(draw()) }, b = (0..<((c.tb ? c.n : c.k) * ldb)).map { _ in operand(draw()) }
        let c0 = (0..<(c.m * ldc)).map { _ in old(draw()) }
        var want = c0, bound = [Double](repeating: 0, count: c0.count)
        for i in 0..<c.m {
            for j in 0..<c.n {
                var sum = 0.0, mag = 0.0
                for p in 0..<c.k {
                    let x = c.ta ? a[p * lda + i] : a[i * lda + p], y = c.tb ? b[j * ldb + p] : b[p * ldb + j]
                    sum += x * y
                    mag += abs(x * y)
                }
                want[i * ldc + j] = c.alpha * sum + (c.update ? c0[i * ldc + j] : 0)
                bound[i * ldc + j] = (abs(c.alpha) * mag + (c.update ? abs(c0[i * ldc + j]) : 0)) * Double(c.k + 2)
            }
        }
        return (a, lda, b, ldb, c0, ldc, want, bound)
    }

    func testFloat32ProductMatchesTheDefinitionForEveryTransposeAlphaAndUpdate() {
        var seed: UInt64 = 1
        for c in Self.cases {
            let o = Self.operands(c, seed: &seed)
            let a = o.a.map { Float($0) }, b = o.b.map { Float($0) }
            // Elements the product writes start as NaN unless updating: they must not be read.
            var out = (0..<o.c0.count).map { $0 % o.ldc >= c.n || c.update ? Float(o.c0[$0]) : .nan }
            kiln_gemm_f32(c.ta ? 1 : 0, c.tb ? 1 : 0, Int64(c.m), Int64(c.n), Int64(c.k), Float(c.alpha), a, Int64(o.lda), b, Int64(o.ldb), &out, Int64(o.ldc), c.update ? 1 : 0)
            for i in out.indices {
                if i % o.ldc >= c.n { XCTAssertEqual(out[i], Float(o.c0[i]), "\(c): padding \(i) written"); continue }
                XCTAssertLessThanOrEqual(abs(Double(out[i]) - o.want[i]), 2e-7 * o.bound[i], "\(c): element \(i)")
            }
        }
    }

    func testFloat64ProductMatchesTheDefinitionForEveryTransposeAlphaAndUpdate() {
        var seed: UInt64 = 2
        for c in Self.cases {
            let o = Self.operands(c, seed: &seed)
            var out = (0..<o.c0.count).map { $0 % o.ldc >= c.n || c.update ? o.c0[$0] : .nan }
            kiln_gemm_f64(c.ta ? 1 : 0, c.tb ? 1 : 0, Int64(c.m), Int64(c.n), Int64(c.k), c.alpha, o.a, Int64(o.lda), o.b, Int64(o.ldb), &out, Int64(o.ldc), c.update ? 1 : 0)
            for i in out.indices {
                if i % o.ldc >= c.n { XCTAssertEqual(out[i], o.c0[i], "\(c): padding \(i) written"); continue }
                XCTAssertLessThanOrEqual(abs(out[i] - o.want[i]), 1e-15 * o.bound[i], "\(c): element \(i)")
            }
        }
    }

    /// kiln_sgemm gives the portable product's result to within rounding on any CPU (the AVX-512
    /// kernel where there is one), so an artifact may take either.
    func testSgemmAgreesWithThePortableProduct() {
        var seed: UInt64 = 3
        for c in Self.cases where !c.update {
            let o = Self.operands(c, seed: &seed)
            let a = o.a.map { Float($0) }, b = o.b.map { Float($0) }
            var one = [Float](repeating: 0, count: o.c0.count), two = one
            kiln_sgemm(c.ta ? 1 : 0, c.tb ? 1 : 0, Int64(c.m), Int64(c.n), Int64(c.k), Float(c.alpha), a, Int64(o.lda), b, Int64(o.ldb), &one, Int64(o.ldc), 0)
            kiln_gemm_f32(c.ta ? 1 : 0, c.tb ? 1 : 0, Int64(c.m), Int64(c.n), Int64(c.k), Float(c.alpha), a, Int64(o.lda), b, Int64(o.ldb), &two, Int64(o.ldc), 0)
            for i in one.indices { XCTAssertLessThanOrEqual(abs(Double(one[i]) - Double(two[i])), 4e-7 * o.bound[i] + 1e-30, "\(c): element \(i)") }
        }
    }

    /// kiln_fault_message words a failed check exactly as Check.error does, and truncates.
    func testFaultMessageMatchesCheckError() {
        let cases: [(String, [Int], Int, Int64)] = [
            ("indices{index} = {value} is not in [0, 10)", [2, 3], 4, -7), ("value {value} at {index}!", [], 0, .min),
            ("{ind{index}x} {value", [5], 3, 9), ("at {index}", [4, 0, 5], 7, 0), ("{value}{index}", [3, 4, 5], 59, .max),
        ]
        for (template, shape, position, value) in cases {
            let want = Check(.nonzero, node: "n", opType: "Op", message: template).error(position: position, value: value, shape: shape).message
            let full = template + " for 'n' (op: 'Op')"
            let shape64 = shape.map(Int64.init)
            for size in [256, 12, 1] {
                var out = [CChar](repeating: 88, count: 300)
                kiln_fault_message(full, Int64(shape.count), shape64, Int64(position), value, &out, size)
                XCTAssertEqual(String(cString: out), String(want.utf8.prefix(size - 1))!, "\(template) size \(size)")
            }
        }
    }
}
