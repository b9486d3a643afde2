import Foundation
import Kiln
import KilnTestSupport
import XCTest

/// MatMul and BatchMatMul on float16 and bfloat16 through the Session on every backend: Kiln's
/// half product kernels (kiln_hgemm, or the loop that sums in float32 where a backend has no
/// runtime) give the product summed in float32 and rounded once to the half type.
final class HalfProductTests: XCTestCase {
    /// `count` values in [-1, 1) rounded to `dtype`, as bits and as the doubles they are.
    private func operand(_ count: Int, _ dtype: DType, seed: inout UInt64) -> (bits: [UInt16], values: [Double]) {
        let bits = (0..<count).map { _ -> UInt16 in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let x = Float(Double(seed >> 11) / 9007199254740992.0 * 2 - 1)
            return dtype == .float16 ? HalfFloat.float16Bits(x) : HalfFloat.bfloat16Bits(x)
        }
        return (bits, bits.map { Double(HalfFloat.float($0, dtype)) })
    }

    func testHalfMatmulsMatchTheDefinitionRoundedOnceOnEveryBackend() throws {
        // (batch, m, n, k, transpose a, transpose b): odd sizes, past a 16-row panel and a K block.
        let shapes = [(1, 37, 29, 45, false, false), (1, 20, 33, 300, true, false), (1, 17, 18, 19, false, true),
                      (1, 5, 6, 7, true, true), (3, 9, 4, 11, false, false)]
        for (backend, config) in GoldenOpsTests.backends {
            for dtype in [DType.float16, .bfloat16] {
                let ulp = dtype == .float16 ? 0x1p-11 : 0x1p-8
                var seed: UInt64 = 5
                for (batch, m, n, k, ta, tb) in shapes {
                    let lead: [Int] = batch > 1 ? [batch] : []
                    let aShape: [Int] = lead + (ta ? [k, m] : [m, k]), bShape: [Int] = lead + (tb ? [n, k] : [k, n])
                    let a = operand(aShape.reduce(1, *), dtype, seed: &seed), b = operand(bShape.reduce(1, *), dtype, seed: &seed)
                    let g = Graph()
                    let pa = try g.placeholder(dtype, shape: Shape(aShape)), pb = try g.placeholder(dtype, shape: Shape(bShape))
                    let p = batch > 1 ? try g.batchMatmul(pa, pb, adjointA: ta, adjointB: tb) : try g.matmul(pa, pb, transposeA: ta, transposeB: tb)
                    let got = try Session(graph: g, config: config).run(p, feeds: [pa: try Tensor(halfBits: a.bits, dtype: dtype, shape: aShape),
                                                                                  pb: try Tensor(halfBits: b.bits, dtype: dtype, shape: bShape)])
                    let what = "\(backend) \(dtype) batch \(batch) \(m)x\(n)x\(k) ta=\(ta) tb=\(tb)"
                    XCTAssertEqual(got.dtype, dtype, what)
                    XCTAssertEqual(got.shape, lead + [m, n], what)
                    let values = got.doubles
                    var bad = 0
                    for q in 0..<batch {
                        for i in 0..<m {
                            for j in 0..<n where bad < 3 {
                                var sum = 0.0, magnitude = 0.0
                                for l in 0..<k {
                                    let x = a.values[q * m * k + (ta ? l * m + i : i * k + l)], y = b.values[q * k * n + (tb ? j * k + l : l * n + j)]
                                    sum += x * y
                                    magnitude += abs(x * y)
                                }
                                let v = values[q * m * n + i * n + j]
                                if !(abs(v - sum) <= ulp * abs(sum) + 2e-7 * Double(k + 2) * magnitude + 0x1p-24) {
                                    bad += 1
                                    XCTFail("\(what): [\(q), \(i), \(j)] is \(v), want \(sum)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
