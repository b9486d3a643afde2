import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// Casts to and from float16 and bfloat16 with TensorFlow's rounding: nearest even, overflow to
/// infinity, underflow to zero through the subnormal halves, NaN stays NaN. The compiled kernels
/// (integer sequences or native conversions) must agree bit for bit with the host conversion,
/// whose float16 side is Swift's own Float16 (an independent implementation).
final class HalfCastTests: XCTestCase {
    /// Values TensorFlow 2.21 gave for tf.cast(float32 -> float16 / bfloat16).
    func testHostConversionMatchesTensorFlowsEdgeCases() {
        let x: [Float] = [0.1, 1.0009766, 65519.0, 65520.0, 100000.0, -100000.0, 6e-08, 1e-09, 3.1415927, -2.5, 0.33333334]
        let f16: [Float] = [0.0999755859375, 1.0009765625, 65504.0, .infinity, .infinity, -.infinity, 5.960464477539063e-08, 0.0,
                            3.140625, -2.5, 0.333251953125]
        let bf16: [Float] = [0.10009765625, 1.0, 65536.0, 65536.0, 99840.0, -99840.0, 6.007030606269836e-08, 9.968061931431293e-10,
                             3.140625, -2.5, 0.333984375]
        for (i, v) in x.enumerated() {
            XCTAssertEqual(HalfFloat.float(float16Bits: HalfFloat.float16Bits(v)), f16[i], "float16(\(v))")
            XCTAssertEqual(HalfFloat.float(bfloat16Bits: HalfFloat.bfloat16Bits(v)), bf16[i], "bfloat16(\(v))")
        }
        // Ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
        XCTAssertEqual(HalfFloat.float16Bits(1 + 0x1p-11), 0x3C00)
        XCTAssertEqual(HalfFloat.float16Bits(1 + 3 * 0x1p-11), 0x3C02)
        XCTAssertEqual(HalfFloat.bfloat16Bits(1 + 0x1p-8), 0x3F80)
        XCTAssertEqual(HalfFloat.bfloat16Bits(1 + 3 * 0x1p-8), 0x3F82)
        // Half of the smallest subnormal rounds to zero (even); a little more rounds up.
        XCTAssertEqual(HalfFloat.float16Bits(0x1p-25), 0)
        XCTAssertEqual(HalfFloat.float16Bits(0x1.01p-25), 1)
        XCTAssertEqual(HalfFloat.float16Bits(-0x1p-30), 0x8000)
        // bfloat16 overflows to infinity only past float32's own largest values.
        XCTAssertEqual(HalfFloat.bfloat16Bits(.greatestFiniteMagnitude), 0x7F80)
        XCTAssertTrue(HalfFloat.float(float16Bits: HalfFloat.float16Bits(.nan)).isNaN)
        XCTAssertTrue(HalfFloat.float(bfloat16Bits: HalfFloat.bfloat16Bits(-.nan)).isNaN)
    }

    /// float32 values that probe every rounding path: ties and near-ties at several exponents,
    /// the overflow threshold, every subnormal binade, signed zeros, infinities and NaN.
    static var probes: [Float] {
        var v: [Float] = [0, -0, .infinity, -.infinity, .nan, 65504, 65519.99, 65520, 65535, 1e30, .greatestFiniteMagnitude,
                          .leastNormalMagnitude, 0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 3.4e38, -3.4e38, 1e-45]
        for e in [-30, -24, -20, -15, -14, -13, -1, 0, 1, 10, 15, 16, 100, 127] {
            for m in [1.0, 1 + 0x1p-11, 1 + 3 * 0x1p-11, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-9 + 0x1p-20, 1.9990234375, 1.99999] {
                let x = Float(m * pow(2.0, Double(e)))
                v += [x, -x, x.nextUp, x.nextDown]
            }
        }
        return v
    }

    func testCompiledCastsAgreeWithTheHostBitForBit() throws {
        let probes = Self.probes
        // Every float16 and bfloat16 bit pattern, to float32.
        let allBits = (0...0xFFFF).map { UInt16($0) }
        for (backend, config) in GoldenOpsTests.backends {
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [probes.count])
            let h = try g.placeholder(.float16, shape: [allBits.count])
            let b = try g.placeholder(.bfloat16, shape: [allBits.count])
            let d = try g.placeholder(.float64, shape: [3])
            let i = try g.placeholder(.int32, shape: [5])
            let outs = [try g.cast(x, to: .float16), try g.cast(x, to: .bfloat16), try g.cast(h, to: .float32), try g.cast(b, to: .float32),
                        try g.cast(d, to: .float16), try g.cast(i, to: .float16), try g.cast(i, to: .bfloat16), try g.cast(h, to: .int32),
                        try g.cast(h, to: .bfloat16)]
            let xs = try Tensor(shape: [probes.count], scalars: probes)
            let hs = try Tensor(halfBits: allBits, dtype: .float16, shape: [allBits.count])
            let bs = try Tensor(halfBits: allBits, dtype: .bfloat16, shape: [allBits.count])
            let ds = try Tensor(shape: [3], scalars: [1.0 + 0x1p-11 + 0x1p-40, 1e300, -1e-300])
            let ints = try Tensor(shape: [5], scalars: [Int32(1), 255, 2049, -70000, 123456789])
            let got = try Session(graph: g, config: config).run(outs, feeds: [x: xs, h: hs, b: bs, d: ds, i: ints])
            let label = "backend \(backend)"
            XCTAssertEqual(got[0].halfBits, probes.map { HalfFloat.float16Bits($0) }, label)
            XCTAssertEqual(got[1].halfBits, probes.map { HalfFloat.bfloat16Bits($0) }, label)
            let wide16 = try got[2].scalars(as: Float.self), wideB = try got[3].scalars(as: Float.self)
            for k in allBits.indices {
                let want16 = HalfFloat.float(float16Bits: allBits[k]), wantB = HalfFloat.float(bfloat16Bits: allBits[k])
                XCTAssert(want16.isNaN ? wide16[k].isNaN : wide16[k].bitPattern == want16.bitPattern, "\(label): float16 bits \(allBits[k])")
                XCTAssert(wantB.isNaN ? wideB[k].isNaN : wideB[k].bitPattern == wantB.bitPattern, "\(label): bfloat16 bits \(allBits[k])")
            }
            // double -> half goes through float32 (Eigen's half(double)): the tie 1 + 2^-11 + 2^-40 rounds to
            // float32 1 + 2^-11 first, then to even: 1.
            XCTAssertEqual(got[4].doubles, [1, .infinity, -0.0], label)
            XCTAssertEqual(got[5].doubles, [1, 255, 2048, -.infinity, .infinity], label)
            XCTAssertEqual(got[6].doubles, [1, 255, 2048, -70144, 123207680], label)
            XCTAssertEqual(got[7].elementCount, allBits.count, label)
            XCTAssertEqual(got[8].halfBits, allBits.map { HalfFloat.bfloat16Bits(HalfFloat.float(float16Bits: $0)) }, label)
        }
    }
}
