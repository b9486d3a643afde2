import XCTest
import KilnIR
import KilnPasses
import KilnKernels

/// Kernels large enough to be split across the worker pool must compute exactly what the
/// reference evaluator computes (row ranges must tile the output with no gap or overlap), and
/// must really be split: each case says how many jobs at least its run gives the pool, which
/// the C runtime counts (`kiln_parallel_jobs`), whatever the backend.
final class ParallelKernelTests: XCTestCase {
    func seq(_ n: Int, _ k: Int) -> [Float] { (0..<n).map { Float(($0 * 37 + k) % 101) / 50 - 1 } }

    /// A case whose kernels of `elements` elements or more each give the pool a job (one per
    /// entry of `splitKernels`) on a backend whose threshold they reach.
    func split(_ name: String, _ text: String, _ inputs: [Tensor], splitKernels: [Int], agreement: Agreement = .relative(1e-5),
               inspect: (@Sendable (any Executable, TargetDescription) -> String?)? = nil) throws -> KernelCase {
        KernelCase(name, try KernelCase.parse(text, passes: .standard), inputs, agreement: agreement,
                   splitJobs: { target in splitKernels.filter { $0 >= target.parallelThreshold }.count }, inspect: inspect)
    }

    func testSplitMatrixProductsMatchTheReference() throws {
        var cases: [KernelCase] = []
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = ta ? [512, 257] : [257, 512], b = tb ? [64, 512] : [512, 64]
            let f = try KernelCase.parse("""
            func @d(%0: f32[\(a[0]),\(a[1])] feed "a", %1: f32[\(b[0]),\(b[1])] feed "b") {
              %2 = dot %0, %1 transpose_a=\(ta) transpose_b=\(tb)
              return %2
            }
            """, passes: .standard)
            // Kiln's own product splits its output tiles across the pool; OpenBLAS uses its threads.
            cases.append(KernelCase("dot 257x512x64 transpose_a=\(ta) transpose_b=\(tb)", f,
                                    [try Tensor(shape: a, scalars: seq(a[0] * a[1], 1)), try Tensor(shape: b, scalars: seq(b[0] * b[1], 2))],
                                    agreement: .relative(1e-4), splitJobs: { $0.ownProduct(m: 257, n: 64, k: 512) ? 1 : 0 }))
        }
        BackendRunner.run("parallel kernels: matrix products", cases)
    }

    func testSplitElementwiseReductionAndWindowKernelsMatchTheReference() throws {
        let x = try Tensor(shape: [67, 33, 45], scalars: seq(67 * 33 * 45, 3))
        let image = try Tensor(shape: [9, 31, 30, 16], scalars: seq(9 * 31 * 30 * 16, 4))
        let cases = [
            try split("elementwise", """
            func @e(%0: f32[67,33,45] feed "x") {
              %1 = tanh %0
              %2 = mul %1, %0
              return %2
            }
            """, [x], splitKernels: [67 * 33 * 45]),
            try split("reduction over the last axis", """
            func @r(%0: f32[67,33,45] feed "x") {
              %1 = tanh %0
              %2 = mul %1, %0
              %3 = reduce.max %2 axes=[2]
              return %3
            }
            """, [x], splitKernels: [67 * 33 * 45]),
            try split("reduction and elementwise sharing a producer", """
            func @e(%0: f32[67,33,45] feed "x") {
              %1 = tanh %0
              %2 = mul %1, %0
              %3 = reduce.max %2 axes=[2]
              %4 = exp %2
              return %3, %4
            }
            """, [x], splitKernels: [67 * 33 * 45, 67 * 33 * 45]),
            try split("max pooling", """
            func @w(%0: f32[9,31,30,16] feed "x") {
              %1 = reduce_window.max %0 window=[1,3,3,1] strides=[1,2,2,1] pad_low=[0,1,1,0] pad_high=[0,1,0,0]
              return %1
            }
            """, [image], splitKernels: [9 * 16 * 15 * 16]),
            try split("patches and their adjoint", """
            func @w(%0: f32[9,31,30,16] feed "x") {
              %1 = patches %0 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
              %2 = unpatches %1 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1] image=[31,30]
              return %2
            }
            """, [image], splitKernels: [9 * 31 * 30 * 16 * 9], agreement: .relative(1e-4)),
        ]
        BackendRunner.run("parallel kernels: elementwise, reductions, windows", cases)
    }

    func testLeadingAxisReductionsSplitIntoPartsMatchTheReference() throws {
        // Batch statistics over leading axes, split into parts on the pool: sums (of a fused
        // producer), maxima with a NaN, and integer sums.
        var xs: [Float] = (0..<(64 * 64 * 24)).map { (i: Int) -> Float in Float((i * 31) % 61) / 30 - 1 }
        xs[5000] = .nan
        let ns: [Int32] = (0..<(4096 * 12)).map { (i: Int) -> Int32 in Int32((i * 7) % 23) - 11 }
        let text = """
        func @m(%0: f32[64,8,8,24] feed "x", %1: i32[4096,12] feed "n") {
          %2 = mul %0, %0
          %3 = reduce.sum %2 axes=[0,1,2]
          %4 = reduce.max %0 axes=[0,1]
          %5 = reduce.sum %1 axes=[0]
          return %3, %4, %5
        }
        """
        let c = KernelCase("split reductions", try KernelCase.parse(text), [try Tensor(shape: [64, 8, 8, 24], scalars: xs), try Tensor(shape: [4096, 12], scalars: ns)],
                           splitJobs: { $0.workItems ? 0 : 3 }, inspect: { exe, target in
            if target.workItems {
                // A device reduces each output by a work-group tree: 24, 192 and 12 outputs are
                // enough work-groups without parts.
                return exe.plan.kernels == [.reduction(3), .reduction(4), .reduction(5)] ? nil : "planned \(exe.plan.kernels), expected 3 reductions"
            }
            let split = exe.plan.kernels.filter { if case .splitReduction = $0 { return true } else { return false } }
            return split.count == 3 ? nil : "planned \(exe.plan.kernels), expected 3 split reductions"
        })
        BackendRunner.run("parallel kernels: split reductions", [c])
    }

    func testConvolutionInputGradientImageByImageMatchesTheReference() throws {
        // A convolution input gradient computed image by image (64 images), for both layouts of
        // the filter product; on the pool where the backend has Kiln's own product.
        var cases: [KernelCase] = []
        for transposeB in [true, false] {
            let filter = transposeB ? "f32[72,32]" : "f32[32,72]"
            let f = try KernelCase.parse("""
            func @m(%0: f32[64,6,6,32] feed "dy", %1: \(filter) feed "w") {
              %2 = reshape %0 shape=[2304,32]
              %3 = dot %2, %1 transpose_a=false transpose_b=\(transposeB)
              %4 = reshape %3 shape=[64,6,6,72]
              %5 = unpatches %4 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1] image=[6,6]
              return %5
            }
            """)
            let dy = try Tensor(shape: [64, 6, 6, 32], scalars: (0..<73728).map { Float(($0 * 13) % 29) / 14 - 1 })
            let w = try Tensor(shape: transposeB ? [72, 32] : [32, 72], scalars: (0..<2304).map { Float(($0 * 7) % 31) / 15 - 1 })
            cases.append(KernelCase("per-image products, transpose_b=\(transposeB)", f, [dy, w],
                                    splitJobs: { $0.ownProduct(m: 36, n: 72, k: 32) ? 1 : 0 }, inspect: { exe, target in
                // A device runs the product through its library, then unpatches.
                let want: [KernelPlan.Kernel] = target.workItems ? [.product(3), .unpatches(5)] : [.perImageProduct(unpatches: 5, dot: 3)]
                return exe.plan.kernels == want ? nil : "planned \(exe.plan.kernels), expected \(want)"
            }))
        }
        BackendRunner.run("parallel kernels: per-image products", cases)
    }

    func testConvolutionInputGradientsOfEveryGeometryMatchTheReference() throws {
        // Input gradients computed per image: with stride 1 as a convolution of dy with the
        // flipped filter where the target reads images in place (a rectangular dilated window,
        // uneven padding), with stride 2 as products and sums onto the image.
        struct Shape { let dy: [Int]; let window: [Int]; let strides: [Int]; let dilations: [Int]; let low: [Int]; let high: [Int]; let image: [Int]; let channels: Int }
        let shapes = [Shape(dy: [64, 6, 7, 40], window: [3, 2], strides: [1, 1], dilations: [2, 1], low: [2, 0], high: [2, 1], image: [6, 7], channels: 8),
                      Shape(dy: [64, 3, 3, 32], window: [3, 3], strides: [2, 2], dilations: [1, 1], low: [1, 1], high: [1, 1], image: [6, 6], channels: 32)]
        var cases: [KernelCase] = []
        for c in shapes {
            let rows = c.dy[0] * c.dy[1] * c.dy[2], k = c.window[0] * c.window[1] * c.channels
            let f = try KernelCase.parse("""
            func @m(%0: f32[\(c.dy[0]),\(c.dy[1]),\(c.dy[2]),\(c.dy[3])] feed "dy", %1: f32[\(k),\(c.dy[3])] feed "w") {
              %2 = reshape %0 shape=[\(rows),\(c.dy[3])]
              %3 = dot %2, %1 transpose_a=false transpose_b=true
              %4 = reshape %3 shape=[\(c.dy[0]),\(c.dy[1]),\(c.dy[2]),\(k)]
              %5 = unpatches %4 window=\(c.window) strides=\(c.strides) dilations=\(c.dilations) pad_low=\(c.low) pad_high=\(c.high) image=\(c.image)
              return %5
            }
            """)
            let dy = try Tensor(shape: c.dy, scalars: (0..<c.dy.reduce(1, *)).map { Float(($0 * 13) % 29) / 14 - 1 })
            let w = try Tensor(shape: [k, c.dy[3]], scalars: (0..<(k * c.dy[3])).map { Float(($0 * 7) % 31) / 15 - 1 })
            cases.append(KernelCase("input gradient window \(c.window) strides \(c.strides) dilations \(c.dilations)", f, [dy, w],
                                    agreement: .relative(1e-4), inspect: { exe, target in
                let want: [KernelPlan.Kernel] = target.workItems ? [.product(3), .unpatches(5)] : [.perImageProduct(unpatches: 5, dot: 3)]
                return exe.plan.kernels == want ? nil : "planned \(exe.plan.kernels), expected \(want)"
            }))
        }
        BackendRunner.run("parallel kernels: input gradients", cases)
    }

    func testConvolutionsAndWeightGradientsFromBlocksOfPatchRowsMatchTheReference() throws {
        // Convolutions and their weight gradients computed from blocks of patch rows (blocks that
        // span images, a short last block, on the pool) against the reference: four channels
        // (straight-line patches), sixteen with stride 2, and twelve to 40 with unit stride (where
        // the target reads the image in place, the weight gradient too: Winograd's, by whole
        // images, 10x10 outputs making partial 4x4 tiles).
        var cases: [KernelCase] = []
        let shapes: [(image: [Int], window: Int, stride: Int, pad: Int, out: Int)] = [([64, 12, 12, 4], 3, 1, 1, 64), ([64, 11, 11, 16], 3, 2, 1, 32),
                                                                                      ([24, 10, 10, 12], 3, 1, 1, 40)]
        for c in shapes {
            let (n, h, w, ch) = (c.image[0], c.image[1], c.image[2], c.image[3])
            let oh = (h + 2 * c.pad - c.window) / c.stride + 1, ow = (w + 2 * c.pad - c.window) / c.stride + 1
            let k = c.window * c.window * ch, rows = n * oh * ow
            XCTAssertNotEqual(rows % Scheduler(target: .standard).patchBlockRows(patchWidth: k, positions: rows), 0, "the last block is short")
            let f = try KernelCase.parse("""
            func @m(%0: f32[\(n),\(h),\(w),\(ch)] feed "x", %1: f32[\(k),\(c.out)] feed "w", %2: f32[\(rows),\(c.out)] feed "dy") {
              %3 = patches %0 window=[\(c.window),\(c.window)] strides=[\(c.stride),\(c.stride)] dilations=[1,1] pad_low=[\(c.pad),\(c.pad)] pad_high=[\(c.pad),\(c.pad)]
              %4 = reshape %3 shape=[\(rows),\(k)]
              %5 = dot %4, %1 transpose_a=false transpose_b=false
              %6 = dot %4, %2 transpose_a=true transpose_b=false
              return %5, %6
            }
            """)
            let xs: [Float] = (0..<(n * h * w * ch)).map { (i: Int) -> Float in Float((i * 13) % 29) / 14 - 1 }
            let ws: [Float] = (0..<(k * c.out)).map { (i: Int) -> Float in Float((i * 7) % 31) / 15 - 1 }
            let dys: [Float] = (0..<(rows * c.out)).map { (i: Int) -> Float in Float((i * 5) % 23) / 11 - 1 }
            // The gradient sums up to 9216 float32 products per element, in blocks and parts:
            // associated differently from the reference's running sum. Winograd's filter gradient
            // reassociates its 2,400 terms (magnitudes summing to ~700, an element as small as
            // 0.37) through transforms with factors up to 8: 1e-4 of 700 is its float32 rounding.
            let winograd = ch >= 8 && c.stride == 1
            cases.append(KernelCase("blocked patch products \(c.image) stride \(c.stride)", f,
                                    [try Tensor(shape: c.image, scalars: xs), try Tensor(shape: [k, c.out], scalars: ws), try Tensor(shape: [rows, c.out], scalars: dys)],
                                    agreement: .relative(winograd ? 1e-3 : 1e-4), splitJobs: { target in
                target.ownProduct(m: Scheduler(target: target).patchBlockRows(patchWidth: k, positions: rows), n: c.out, k: k) ? 1 : 0
            }, inspect: { exe, target in
                if target.workItems {
                    // A device gathers the patches once and runs both products through its library.
                    return exe.plan.kernels == [.patches(3), .product(5), .product(6)] ? nil : "planned \(exe.plan.kernels), expected patches and two products"
                }
                guard exe.plan.kernels.count == 2, case .patchProduct(5, _) = exe.plan.kernels[0], case .patchGradient(6, let blocks, _, _) = exe.plan.kernels[1] else {
                    return "planned \(exe.plan.kernels), expected a blocked patch product and a patch gradient"
                }
                // Winograd's geometry, or under 8 channels (the few-channel kernel), reads the image in place.
                let inImage = target.directConvolutions && (winograd || ch < 8)
                return (blocks.rows % (oh * ow) == 0) == inImage || blocks.rows == rows ? nil
                    : "the gradient's blocks of \(blocks.rows) rows \(inImage ? "are not" : "are") whole images"
            }))
        }
        BackendRunner.run("parallel kernels: blocked patch products", cases)
    }

    func testConvolutionsReadingTheirImageInPlaceMatchTheReference() throws {
        // Where the target reads a convolution's image in place (kiln_conv2d_f32), against the
        // reference: an image computed in the step (given a buffer for the convolution), output
        // channels past a multiple of 32 and under 16, dilation with uneven padding, a wide window
        // with a stride along one axis only.
        struct Shape { let image: [Int]; let window: [Int]; let strides: [Int]; let dilations: [Int]; let low: [Int]; let high: [Int]; let out: Int }
        let shapes = [Shape(image: [32, 10, 10, 24], window: [3, 3], strides: [1, 1], dilations: [1, 1], low: [1, 1], high: [1, 1], out: 40),
                      Shape(image: [128, 13, 13, 8], window: [3, 3], strides: [2, 2], dilations: [2, 2], low: [2, 1], high: [1, 2], out: 7),
                      Shape(image: [320, 9, 9, 5], window: [2, 3], strides: [1, 2], dilations: [1, 1], low: [0, 0], high: [0, 0], out: 16)]
        var cases: [KernelCase] = []
        for c in shapes {
            let (n, h, w, ch) = (c.image[0], c.image[1], c.image[2], c.image[3])
            let oh = (h + c.low[0] + c.high[0] - (c.window[0] - 1) * c.dilations[0] - 1) / c.strides[0] + 1
            let ow = (w + c.low[1] + c.high[1] - (c.window[1] - 1) * c.dilations[1] - 1) / c.strides[1] + 1
            let k = c.window[0] * c.window[1] * ch, rows = n * oh * ow
            let f = try KernelCase.parse("""
            func @m(%0: f32[\(n),\(h),\(w),\(ch)] feed "x", %1: f32[\(k),\(c.out)] feed "w") {
              %2 = mul %0, %0
              %3 = patches %2 window=\(c.window) strides=\(c.strides) dilations=\(c.dilations) pad_low=\(c.low) pad_high=\(c.high)
              %4 = reshape %3 shape=[\(rows),\(k)]
              %5 = dot %4, %1 transpose_a=false transpose_b=false
              return %5
            }
            """)
            let xs: [Float] = (0..<(n * h * w * ch)).map { (i: Int) -> Float in Float((i * 13) % 29) / 14 - 1 }
            let ws: [Float] = (0..<(k * c.out)).map { (i: Int) -> Float in Float((i * 7) % 31) / 15 - 1 }
            cases.append(KernelCase("convolution from the image \(c.image) window \(c.window) to \(c.out) channels", f,
                                    [try Tensor(shape: c.image, scalars: xs), try Tensor(shape: [k, c.out], scalars: ws)],
                                    agreement: .relative(1e-4), inspect: { exe, target in
                if target.workItems { return nil }
                guard case .patchProduct(5, _)? = exe.plan.kernels.last else { return "planned \(exe.plan.kernels), expected a blocked patch product" }
                // The image is a buffer of its own only where the convolution reads it in place.
                let imageKernel = exe.plan.kernels.contains(.loop(2))
                return imageKernel == target.directConvolutions ? nil : "planned \(exe.plan.kernels) for a target that \(target.directConvolutions ? "reads" : "gathers") the image"
            }))
        }
        BackendRunner.run("parallel kernels: convolutions from the image", cases)
    }
}
