import CKilnRT
import Foundation
import XCTest

/// The C runtime's half-precision products (kiln_hgemm) and conversions, in-process: every method
/// this CPU can run (the portable one always, the AVX-512 conversion and the AVX512-BF16 dot
/// product where present) against the product by definition in Double, and the conversions
/// against Swift's Float16 and a nearest-even rounding computed in Double.
final class RuntimeHalfProductTests: XCTestCase {
    override func setUp() { kiln_pool_start(2) }

    private static let formats: [(name: String, code: Int32, ulp: Double)] = [
        ("float16", KILN_FORMAT_F16, 0x1p-11), ("bfloat16", KILN_FORMAT_BF16, 0x1p-8),
    ]
    private static let methods: [(name: String, code: Int32)] = [
        ("portable", KILN_HALF_PORTABLE), ("convert", KILN_HALF_CONVERT), ("dot", KILN_HALF_DOT),
    ]

    private static func toHalf(_ format: Int32, _ x: Double) -> UInt16 { kiln_f32_to_half(format, Float(x)) }
    private static func fromHalf(_ format: Int32, _ bits: UInt16) -> Double { Double(kiln_half_to_f32(format, bits)) }

    func testFloat16ConversionsMatchSwiftsFloat16() {
        for bits in 0...UInt16.max {
            let want = Float(Float16(bitPattern: bits)), got = kiln_half_to_f32(KILN_FORMAT_F16, bits)
            if want.isNaN { XCTAssertTrue(got.isNaN, "\(bits)"); continue }
            XCTAssertEqual(got.bitPattern, want.bitPattern, "float16 \(bits)")
            XCTAssertEqual(kiln_f32_to_half(KILN_FORMAT_F16, got), bits, "float16 \(bits) round trip")
        }
        // Ties, subnormals, the overflow threshold (65520 rounds to infinity), NaN, and random floats.
        var values: [Float] = [65519.99, 65520, 1e6, -1e6, .infinity, -.infinity, 0x1p-25, 0x1.8p-25, 0x1p-24, 0x1.8p-24, 0x1p-26,
                               2049, 2051, 1 + 0x1p-11, 1 + 0x3p-11, -0.0, .leastNonzeroMagnitude, 6.1e-5, 6.0e-5]
        var seed: UInt64 = 7
        for _ in 0..<20000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values.append(Float(bitPattern: UInt32(truncatingIfNeeded: seed >> 32)))
        }
        for x in values {
            let got = kiln_f32_to_half(KILN_FORMAT_F16, x)
            if x.isNaN { XCTAssertTrue(Float16(bitPattern: got).isNaN, "\(x)"); continue }
            XCTAssertEqual(got, Float16(x).bitPattern, "float16 of \(x)")
        }
    }

    /// bfloat16 keeps float32's top 16 bits: the nearer of the two neighbours (ties to the even
    /// one, past the largest finite value to infinity), NaN stays NaN.
    func testBfloat16ConversionsRoundToNearestEven() {
        var values: [Float] = [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .infinity, .leastNonzeroMagnitude, -0.0,
                               Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000), Float(bitPattern: 0x7f7f_8000), .nan]
        var seed: UInt64 = 8
        for _ in 0..<20000 {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values.append(Float(bitPattern: UInt32(truncatingIfNeeded: seed >> 32)))
        }
        for x in values {
            let got = kiln_f32_to_half(KILN_FORMAT_BF16, x)
            if x.isNaN { XCTAssertTrue(Float(bitPattern: UInt32(got) << 16).isNaN, "\(x)"); continue }
            let low = UInt16(x.bitPattern >> 16), high = low &+ 1
            // Exact (infinity among them): kept as it is.
            if x.bitPattern & 0xffff == 0 { XCTAssertEqual(got, low, "bfloat16 of \(x)"); continue }
            func value(_ b: UInt16) -> Double {
                b & 0x7fff == 0x7f80 ? (b & 0x8000 != 0 ? -0x1p128 : 0x1p128) : Double(Float(bitPattern: UInt32(b) << 16))
            }
            let below = abs(Double(x) - value(low)), above = abs(value(high) - Double(x))
            let want = below < above || (below == above && low & 1 == 0) ? low : high
            XCTAssertEqual(got, want, "bfloat16 of \(x) (\(x.bitPattern))")
            XCTAssertEqual(kiln_half_to_f32(KILN_FORMAT_BF16, got).bitPattern, UInt32(got) << 16)
        }
    }

    /// Each method this CPU runs, each format, C in float32 and in the half format: within float32
    /// summation error of the definition, plus one rounding to the half format; C's padding
    /// untouched and its old contents (NaN) unread unless updating.
    func testHalfProductsMatchTheDefinitionForEveryMethodTransposeAlphaAndUpdate() {
        var ran: [String] = []
        var cases = RuntimeProductTests.cases
        cases.append(RuntimeProductTests.Case(m: 140, n: 150, k: 300, ta: true, tb: false, alpha: 0.25, update: true))
        cases.append(RuntimeProductTests.Case(m: 33, n: 140, k: 513, ta: false, tb: true, alpha: 1, update: false))
        for method in Self.methods {
            for format in Self.formats where kiln_hgemm_method(format.code, method.code) == method.code {
                ran.append("\(method.name) \(format.name)")
                for halfC in [false, true] {
                    let cFormat = halfC ? format.code : KILN_FORMAT_F32
                    var seed: UInt64 = 11
                    for c in cases {
                        let o = RuntimeProductTests.operands(c, seed: &seed, operand: { Self.fromHalf(format.code, Self.toHalf(format.code, $0)) },
                                                             old: { halfC ? Self.fromHalf(format.code, Self.toHalf(format.code, $0)) : $0 })
                        let a = o.a.map { Self.toHalf(format.code, $0) }, b = o.b.map { Self.toHalf(format.code, $0) }
                        let what = "\(method.name) \(format.name) C \(halfC ? format.name : "float32") \(c)"
                        let unread = { (i: Int) in i % o.ldc >= c.n || c.update }
                        let got: [Double]
                        if halfC {
                            let nan = kiln_f32_to_half(format.code, .nan)
                            var out = (0..<o.c0.count).map { unread($0) ? Self.toHalf(format.code, o.c0[$0]) : nan }
                            kiln_hgemm(method.code, format.code, cFormat, c.ta ? 1 : 0, c.tb ? 1 : 0, Int64(c.m), Int64(c.n), Int64(c.k),
                                       Float(c.alpha), a, Int64(o.lda), b, Int64(o.ldb), &out, Int64(o.ldc), c.update ? 1 : 0)
                            got = out.map { Self.fromHalf(format.code, $0) }
                        } else {
                            var out = (0..<o.c0.count).map { unread($0) ? Float(o.c0[$0]) : .nan }
                            kiln_hgemm(method.code, format.code, cFormat, c.ta ? 1 : 0, c.tb ? 1 : 0, Int64(c.m), Int64(c.n), Int64(c.k),
                                       Float(c.alpha), a, Int64(o.lda), b, Int64(o.ldb), &out, Int64(o.ldc), c.update ? 1 : 0)
                            got = out.map { Double($0) }
                        }
                        var bad = 0
                        for i in got.indices where bad < 3 {
                            if i % o.ldc >= c.n {
                                if got[i] != o.c0[i] { bad += 1; XCTFail("\(what): padding \(i) written") }
                                continue
                            }
                            let tolerance = 2e-7 * o.bound[i] + (halfC ? format.ulp * abs(o.want[i]) + 0x1p-24 : 1e-30)
                            if !(abs(got[i] - o.want[i]) <= tolerance) { bad += 1; XCTFail("\(what): element \(i) is \(got[i]), want \(o.want[i])") }
                        }
                    }
                }
            }
        }
        XCTAssertTrue(ran.contains("portable float16") && ran.contains("portable bfloat16"), "\(ran)")
    }

    /// The sum is float32 and rounded once: 1 + 2048 + 1 is 2050 in float16, where summing in
    /// float16 would give 2048 (2049 ties to even twice).
    func testHalfOutputIsRoundedOnceFromFloat32Sums() {
        let format = KILN_FORMAT_F16
        let a = [1.0, 2048, 1].map { Self.toHalf(format, $0) }, b = [UInt16](repeating: Self.toHalf(format, 1), count: 3)
        for method in Self.methods where kiln_hgemm_method(format, method.code) == method.code {
            var c: [UInt16] = [0]
            kiln_hgemm(method.code, format, format, 0, 0, 1, 1, 3, 1, a, 3, b, 1, &c, 1, 0)
            XCTAssertEqual(Self.fromHalf(format, c[0]), 2050, method.name)
        }
    }

    /// Asking for a method the CPU or format lacks runs one it has: never the dot product for
    /// float16, always the portable one when asked.
    func testMethodChoiceFallsBackToOneTheCPUHas() {
        XCTAssertNotEqual(kiln_hgemm_method(KILN_FORMAT_F16, KILN_HALF_DOT), KILN_HALF_DOT)
        XCTAssertNotEqual(kiln_hgemm_method(KILN_FORMAT_F16, KILN_HALF_AUTO), KILN_HALF_DOT)
        for format in Self.formats {
            XCTAssertEqual(kiln_hgemm_method(format.code, KILN_HALF_PORTABLE), KILN_HALF_PORTABLE)
            let best = kiln_hgemm_method(format.code, KILN_HALF_AUTO)
            XCTAssertEqual(kiln_hgemm_method(format.code, best), best)
            if kiln_sgemm_available() != 0 { XCTAssertNotEqual(best, KILN_HALF_PORTABLE, format.name) }
        }
    }
}
