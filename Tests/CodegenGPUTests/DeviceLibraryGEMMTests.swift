import XCTest
@testable import KilnOpenCL

/// The library's GEMM against a float64 reference on the CPU: every transpose, edge tiles of
/// every size, batches with strides and offsets, alpha, accumulate, k = 0; on the device's own
/// tiles and on the GPU and small-device tiles (built for PoCL, so they are tested here too).
final class DeviceLibraryGEMMTests: XCTestCase {
    /// One batched problem as the kernel's arguments describe it, with the host copies.
    struct Problem {
        var ta = false, tb = false
        var m: Int, n: Int, k: Int
        var batch = 1
        var offA = 0, offB = 0, offC = 0
        /// Extra elements per stored row beyond the minimum, and between batch items.
        var padRow = 0, padBatch = 0
        var alpha = 1.0
        var accumulate = false

        var lda: Int { (ta ? m : k) + padRow }
        var ldb: Int { (tb ? k : n) + padRow }
        var ldc: Int { n + padRow }
        var strideA: Int { (ta ? k : m) * lda + padBatch }
        var strideB: Int { (tb ? n : k) * ldb + padBatch }
        var strideC: Int { m * ldc + padBatch }
        var countA: Int { offA + batch * strideA }
        var countB: Int { offB + batch * strideB }
        var countC: Int { offC + batch * strideC }

        /// C after the product, in float64, from the stored A, B and C.
        func reference(_ A: [Double], _ B: [Double], _ C: [Double]) -> (values: [Double], magnitude: [Double]) {
            var out = C, mag = [Double](repeating: 0, count: C.count)
            for b in 0..<batch {
                for i in 0..<m {
                    for j in 0..<n {
                        var s = 0.0, a = 0.0
                        for p in 0..<k {
                            let x = A[offA + b * strideA + (ta ? p * lda + i : i * lda + p)]
                            let y = B[offB + b * strideB + (tb ? j * ldb + p : p * ldb + j)]
                            s += x * y
                            a += abs(x * y)
                        }
                        let c = offC + b * strideC + i * ldc + j
                        out[c] = alpha * s + (accumulate ? C[c] : 0)
                        mag[c] = abs(alpha) * a + (accumulate ? abs(C[c]) : 0)
                    }
                }
            }
            return (out, mag)
        }
    }

    static let sizes = [1, 3, 17, 63, 64, 65, 130]

    static func values(_ count: Int, seed: UInt64) -> [Double] {
        var g = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<count).map { _ in
            g = g &* 6364136223846793005 &+ 1442695040888963407
            return Double(Int((g >> 33) % 2001) - 1000) / 256
        }
    }

    /// Runs `p` in float32 (or float64) and compares every element of C, the ones the product
    /// must leave alone included; returns the first mismatch.
    func run(_ h: LibraryHarness, _ p: Problem, float64: Bool = false, limits: OpenCLLibrary.Limits? = nil) throws -> String? {
        let A = Self.values(p.countA, seed: 1), B = Self.values(p.countB, seed: 2), C0 = Self.values(p.countC, seed: 3)
        let (expected, magnitude) = p.reference(A, B, C0)
        let scalars: [LibraryHarness.Argument] = [.int32(p.ta ? 1 : 0), .int32(p.tb ? 1 : 0), .int64(Int64(p.m)), .int64(Int64(p.n)), .int64(Int64(p.k))]
        let got: [Double]
        if float64 {
            let a = try h.upload(A), b = try h.upload(B), c = try h.upload(C0)
            try h.launch(OpenCLLibrary.gemmF64, logical: [p.n, p.m, p.batch], scalars + [
                .buffer(a), .int64(Int64(p.offA)), .int64(Int64(p.lda)), .int64(Int64(p.strideA)),
                .buffer(b), .int64(Int64(p.offB)), .int64(Int64(p.ldb)), .int64(Int64(p.strideB)),
                .buffer(c), .int64(Int64(p.offC)), .int64(Int64(p.ldc)), .int64(Int64(p.strideC)),
                .float64(p.alpha), .int32(p.accumulate ? 1 : 0)], limits: limits)
            got = try h.download(c, count: p.countC, as: Double.self)
        } else {
            let a = try h.upload(A.map { Float($0) }), b = try h.upload(B.map { Float($0) }), c = try h.upload(C0.map { Float($0) })
            try h.launch(OpenCLLibrary.gemmF32, logical: [p.n, p.m, p.batch], scalars + [
                .buffer(a), .int64(Int64(p.offA)), .int64(Int64(p.lda)), .int64(Int64(p.strideA)),
                .buffer(b), .int64(Int64(p.offB)), .int64(Int64(p.ldb)), .int64(Int64(p.strideB)),
                .buffer(c), .int64(Int64(p.offC)), .int64(Int64(p.ldc)), .int64(Int64(p.strideC)),
                .float32(Float(p.alpha)), .int32(p.accumulate ? 1 : 0)], limits: limits)
            got = try h.download(c, count: p.countC, as: Float.self).map { Double($0) }
        }
        // The inputs are multiples of 1/256 (exact in float32); the sum's rounding is bounded by
        // k ulps of the sum of magnitudes.
        let eps = float64 ? Double.ulpOfOne : Double(Float.ulpOfOne)
        for e in 0..<expected.count where abs(got[e] - expected[e]) > Double(p.k + 2) * eps * magnitude[e] {
            return "\(p): C[\(e)] is \(got[e]), expected \(expected[e])"
        }
        return nil
    }

    /// Every size on every dimension (m and n over all pairs, k cycling), every transpose.
    func checkShapes(float64: Bool, limits: OpenCLLibrary.Limits? = nil) throws {
        let h = try LibraryHarness()
        if float64 && !h.hasFloat64 { throw LibraryHarness.skip("the device has no cl_khr_fp64") }
        var failures: [String] = []
        for ta in [false, true] {
            for tb in [false, true] {
                for (i, m) in Self.sizes.enumerated() {
                    for (j, n) in Self.sizes.enumerated() {
                        let k = Self.sizes[(i + 2 * j + (ta ? 1 : 0) + (tb ? 3 : 0)) % Self.sizes.count]
                        if let f = try run(h, Problem(ta: ta, tb: tb, m: m, n: n, k: k), float64: float64, limits: limits) { failures.append(f) }
                    }
                }
            }
        }
        XCTAssertEqual(failures.count, 0, "first mismatches:\n" + failures.prefix(5).joined(separator: "\n"))
    }

    func testEveryTransposeAndEdgeTileInFloat32() throws { try checkShapes(float64: false) }

    func testEveryTransposeAndEdgeTileInFloat64() throws { try checkShapes(float64: true) }

    /// The 128x128 tiles with 8x8 register blocks read as float4 a GPU gets, run here on PoCL.
    func testGPUTilesAreCorrect() throws {
        let gpu = OpenCLLibrary.Limits(maxWorkGroupSize: 1024, localMemoryBytes: 48 << 10, isCPU: false)
        XCTAssertEqual(GEMMKernel.tiles(float64: false, limits: gpu), GEMMKernel.Tiles(tm: 128, tn: 128, tk: 16, wm: 8, wn: 8, vector: true))
        try checkShapes(float64: false, limits: gpu)
    }

    /// A device with 64 work items and 4 KiB of local memory gets tiles that fit, and they are correct.
    func testSmallDeviceTilesFitAndAreCorrect() throws {
        let small = OpenCLLibrary.Limits(maxWorkGroupSize: 64, localMemoryBytes: 4 << 10, isCPU: false)
        for float64 in [false, true] {
            let t = GEMMKernel.tiles(float64: float64, limits: small)
            XCTAssertLessThanOrEqual(t.threads, 64)
            XCTAssertLessThanOrEqual(t.localBytes(float64: float64), 4 << 10)
        }
        try checkShapes(float64: false, limits: small)
    }

    func testBatchWithStridesOffsetsAlphaAndAccumulate() throws {
        let h = try LibraryHarness()
        for float64 in h.hasFloat64 ? [false, true] : [false] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for accumulate in [false, true] {
                        let p = Problem(ta: ta, tb: tb, m: 17, n: 65, k: 63, batch: 3, offA: 5, offB: 7, offC: 11,
                                        padRow: 3, padBatch: 13, alpha: -0.75, accumulate: accumulate)
                        if let f = try run(h, p, float64: float64) { XCTFail(f) }
                    }
                }
            }
        }
    }

    /// k = 0: C = alpha * 0, plus C when accumulating.
    func testEmptyDepthGivesZeroOrLeavesC() throws {
        let h = try LibraryHarness()
        for accumulate in [false, true] {
            let p = Problem(m: 5, n: 7, k: 0, batch: 2, padBatch: 1, alpha: 2, accumulate: accumulate)
            if let f = try run(h, p) { XCTFail(f) }
        }
    }

    /// m, n or batch of 0 has nothing to launch: the range says so and C is untouched.
    func testEmptyOutputLaunchesNothing() throws {
        let limits = OpenCLLibrary.Limits(maxWorkGroupSize: 256, localMemoryBytes: 32 << 10, isCPU: false)
        for logical in [[0, 5, 1], [5, 0, 1], [5, 5, 0]] {
            XCTAssertTrue(try OpenCLLibrary.ndRange(kernel: OpenCLLibrary.gemmF32, logical: logical, limits: limits).global.contains(0), "\(logical)")
        }
        let h = try LibraryHarness()
        if let f = try run(h, Problem(m: 0, n: 4, k: 3)) { XCTFail(f) }
        if let f = try run(h, Problem(m: 4, n: 3, k: 2, batch: 0)) { XCTFail(f) }
    }

    func testUnknownKernelsAndFloat64WithoutTheExtensionAreErrors() {
        let limits = OpenCLLibrary.Limits(maxWorkGroupSize: 256, localMemoryBytes: 32 << 10, isCPU: false)
        XCTAssertThrowsError(try OpenCLLibrary.source(for: ["kiln_nope"], float64: true, limits: limits))
        XCTAssertThrowsError(try OpenCLLibrary.source(for: [OpenCLLibrary.gemmF64], float64: false, limits: limits))
        XCTAssertThrowsError(try OpenCLLibrary.ndRange(kernel: OpenCLLibrary.gemmF32, logical: [4, 4], limits: limits))
    }
}
