import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// The unrolled and direct-index paths for pooling and few-channel convolutions, against the
/// reference evaluator (values with many ties, padding on every side).
final class WindowKernelTests: XCTestCase {
    private func assertAgrees(_ text: String, _ params: [Tensor], file: StaticString = #filePath, line: UInt = #line) throws {
        var f = try Parser.parse(text)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        var jitParams = params
        let got = try LLVMBackend().compile(f).run(&jitParams)
        let (want, _) = try ReferenceEvaluator.run(f, parameters: params)
        for (g, w) in zip(got, want) {
            XCTAssertEqual(g.shape, w.shape, file: file, line: line)
            XCTAssertEqual(g.doubles, w.doubles, file: file, line: line)
        }
    }

    private func tensor(_ shape: [Int], period: Int = 5) throws -> Tensor {
        let n = shape.reduce(1, *)
        return try Tensor(shape: shape, scalars: (0..<n).map { Float(($0 * 7 + $0 / 3) % period) - 2 })
    }

    func testArgmaxOverAShortInnerAxisKeepsTheFirstOfTies() throws {
        try assertAgrees("""
        func @m(%0: f32[3,5,17] feed "x") {
          %1 = argmax %0 axis=1 output_type=i64
          %2 = argmin %0 axis=1 output_type=i32
          return %1, %2
        }
        """, [tensor([3, 5, 17], period: 3)])
    }

    func testFewChannelPatchesWithPaddingAndStride() throws {
        try assertAgrees("""
        func @m(%0: f32[2,5,6,2] feed "x", %1: f32[2,4,4,1] feed "g") {
          %2 = patches %0 window=[3,3] strides=[2,2] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %3 = patches %1 window=[3,2] strides=[1,1] dilations=[2,1] pad_low=[2,0] pad_high=[2,1]
          return %2, %3
        }
        """, [tensor([2, 5, 6, 2]), tensor([2, 4, 4, 1])])
    }

    func testPoolingGradientReadsThroughAReshapeOfItsTaps() throws {
        try assertAgrees("""
        func @m(%0: f32[2,2,3,4,3] feed "taps") {
          %1 = neg %0
          %2 = reshape %1 shape=[2,2,3,12]
          %3 = unpatches %2 window=[2,2] strides=[2,2] dilations=[1,1] pad_low=[0,0] pad_high=[0,0] image=[4,6]
          %4 = unpatches %2 window=[2,2] strides=[3,3] dilations=[1,1] pad_low=[1,0] pad_high=[0,0] image=[5,8]
          return %3, %4
        }
        """, [tensor([2, 2, 3, 4, 3])])
    }
}

final class PerImageProductTests: XCTestCase {
    /// A convolution input gradient computed image by image (on the pool: 64 images) against
    /// the reference evaluator, for both layouts of the filter product.
    func testConvolutionInputGradientMatchesTheReference() throws {
        for transposeB in [true, false] {
            let filter = transposeB ? "f32[72,32]" : "f32[32,72]"
            var f = try Parser.parse("""
            func @m(%0: f32[64,6,6,32] feed "dy", %1: \(filter) feed "w") {
              %2 = reshape %0 shape=[2304,32]
              %3 = dot %2, %1 transpose_a=false transpose_b=\(transposeB)
              %4 = reshape %3 shape=[64,6,6,72]
              %5 = unpatches %4 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1] image=[6,6]
              return %5
            }
            """)
            try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
            XCTAssertEqual(KernelPlan(f).kernels, [.perImageProduct(unpatches: 5, dot: 3)])
            let dy = try Tensor(shape: [64, 6, 6, 32], scalars: (0..<73728).map { Float(($0 * 13) % 29) / 14 - 1 })
            let w = try Tensor(shape: transposeB ? [72, 32] : [32, 72], scalars: (0..<2304).map { Float(($0 * 7) % 31) / 15 - 1 })
            var params = [dy, w]
            let got = try LLVMBackend().compile(f).run(&params)[0]
            let want = try ReferenceEvaluator.run(f, parameters: [dy, w]).0[0]
            XCTAssertEqual(got.shape, want.shape)
            let worst = zip(got.doubles, want.doubles).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThan(worst, 1e-5, "transpose_b=\(transposeB)")
        }
    }
}

final class SplitReductionTests: XCTestCase {
    /// Batch statistics over leading axes, split into parts on the pool: sums (of a fused
    /// producer), maxima with a NaN, and integer sums against the reference evaluator.
    func testLeadingAxisReductionsSplitIntoPartsMatchTheReference() throws {
        var f = try Parser.parse("""
        func @m(%0: f32[64,8,8,24] feed "x", %1: i32[4096,12] feed "n") {
          %2 = mul %0, %0
          %3 = reduce.sum %2 axes=[0,1,2]
          %4 = reduce.max %0 axes=[0,1]
          %5 = reduce.sum %1 axes=[0]
          return %3, %4, %5
        }
        """)
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        let split = KernelPlan(f).kernels.map { k -> Int? in if case .splitReduction(let r, _, _, _) = k { return r } else { return nil } }
        XCTAssertEqual(split, [3, 4, 5])
        var xs: [Float] = (0..<(64 * 64 * 24)).map { (i: Int) -> Float in Float((i * 31) % 61) / 30 - 1 }
        xs[5000] = .nan
        let x = try Tensor(shape: [64, 8, 8, 24], scalars: xs)
        let ns: [Int32] = (0..<(4096 * 12)).map { (i: Int) -> Int32 in Int32((i * 7) % 23) - 11 }
        let n = try Tensor(shape: [4096, 12], scalars: ns)
        var params = [x, n]
        let got = try LLVMBackend().compile(f).run(&params)
        let want = try ReferenceEvaluator.run(f, parameters: [x, n]).0
        for (g, w) in zip(got, want) {
            XCTAssertEqual(g.shape, w.shape)
            for (a, b) in zip(g.doubles, w.doubles) {
                if b.isNaN { XCTAssertTrue(a.isNaN); continue }
                XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)))
            }
        }
    }
}

final class BlockedPatchProductTests: XCTestCase {
    /// Convolutions and their weight gradients computed from blocks of patch rows (blocks that
    /// span images, a short last block, on the pool) against the reference: four channels
    /// (straight-line patches) and sixteen with stride 2.
    func testConvolutionsAndWeightGradientsMatchTheReference() throws {
        let cases: [(image: [Int], window: Int, stride: Int, pad: Int, out: Int)] = [([64, 12, 12, 4], 3, 1, 1, 64), ([64, 11, 11, 16], 3, 2, 1, 32)]
        for c in cases {
            let (n, h, w, ch) = (c.image[0], c.image[1], c.image[2], c.image[3])
            let oh = (h + 2 * c.pad - c.window) / c.stride + 1, ow = (w + 2 * c.pad - c.window) / c.stride + 1
            let k = c.window * c.window * ch, rows = n * oh * ow
            XCTAssertNotEqual(rows % Scheduler(target: .standard).patchBlockRows(patchWidth: k, positions: rows), 0, "the last block is short")
            var f = try Parser.parse("""
            func @m(%0: f32[\(n),\(h),\(w),\(ch)] feed "x", %1: f32[\(k),\(c.out)] feed "w", %2: f32[\(rows),\(c.out)] feed "dy") {
              %3 = patches %0 window=[\(c.window),\(c.window)] strides=[\(c.stride),\(c.stride)] dilations=[1,1] pad_low=[\(c.pad),\(c.pad)] pad_high=[\(c.pad),\(c.pad)]
              %4 = reshape %3 shape=[\(rows),\(k)]
              %5 = dot %4, %1 transpose_a=false transpose_b=false
              %6 = dot %4, %2 transpose_a=true transpose_b=false
              return %5, %6
            }
            """)
            try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
            let plan = KernelPlan(f)
            guard plan.kernels.count == 2, case .patchProduct(5, _) = plan.kernels[0], case .patchGradient(6, _, _, _) = plan.kernels[1] else {
                return XCTFail("\(c): \(plan.kernels)")
            }
            let xs: [Float] = (0..<(n * h * w * ch)).map { (i: Int) -> Float in Float((i * 13) % 29) / 14 - 1 }
            let ws: [Float] = (0..<(k * c.out)).map { (i: Int) -> Float in Float((i * 7) % 31) / 15 - 1 }
            let dys: [Float] = (0..<(rows * c.out)).map { (i: Int) -> Float in Float((i * 5) % 23) / 11 - 1 }
            let params0 = [try Tensor(shape: c.image, scalars: xs), try Tensor(shape: [k, c.out], scalars: ws), try Tensor(shape: [rows, c.out], scalars: dys)]
            var params = params0
            let got = try LLVMBackend().compile(f).run(&params)
            let want = try ReferenceEvaluator.run(f, parameters: params0).0
            for (g, r) in zip(got, want) {
                XCTAssertEqual(g.shape, r.shape)
                // The gradient sums up to 9216 float32 products per element, in blocks and parts:
                // associated differently from the reference's running sum.
                let worst = zip(g.doubles, r.doubles).map { abs($0 - $1) / max(1, abs($1)) }.max()!
                XCTAssertLessThan(worst, 1e-4, "\(c)")
            }
        }
    }
}
