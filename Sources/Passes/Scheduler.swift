import KilnIR

/// The target's half of planning: tactics that depend on the machine, read from its
/// `TargetDescription`. Matrix products run on blocks small enough to stay in cache (one image's
/// rows of a convolution's input gradient, blocks of patch rows of a convolution and of its
/// weight gradient), where the target runs small products on its pool; reductions over many
/// leading rows split into parts for the pool, and floating-point sums over many rows add
/// blocks into Doubles.
public struct Scheduler: Sendable {
    public let target: TargetDescription

    public init(target: TargetDescription) {
        self.target = target
    }

    /// Rows a floating-point sum over leading axes adds in one block before widening to Double.
    static let reductionBlockRows = 128
    /// Reductions produce at most this many elements to be split (one slot per part).
    static let splitReductionMaxOutput = 4096

    // MARK: blocked products (they change fusion groups, so they run before fusion's bounds)

    /// Products computed per image or per block of patch rows: the product (and the patches)
    /// lose their buffers and the kernel computes them a block at a time.
    func scheduleBlockedProducts(_ fusion: inout Fusion) {
        guard target.ownProducts else { return }
        for i in fusion.f.body {
            guard let dot = perImageProduct(i, fusion) else { continue }
            fusion.patterns[i.id] = .perImageProduct(unpatches: i.id, dot: dot)
            fusion.materialized[dot] = nil
        }
        var accumulated = Set<Int>()
        for case .accumulatedProduct(_, _, let dot, _) in fusion.patterns.values { accumulated.insert(dot) }
        for i in fusion.f.body {
            guard let (reshape, products) = blockedPatchProducts(i, fusion, excluding: accumulated) else { continue }
            let pt = i.type!, positions = pt.shape[0] * pt.shape[1] * pt.shape[2]
            func blocks(rows: Int) -> KernelPlan.PatchBlocks { KernelPlan.PatchBlocks(patches: i.id, rows: rows, count: (positions + rows - 1) / rows) }
            // Each product walks the patches on its own: gathered blocks as fit a block of cache,
            // a convolution reading its image in place by whole images.
            let gathered = blocks(rows: patchBlockRows(patchWidth: pt.shape[3], positions: positions))
            let inPlace = blocks(rows: convolutionBlockRows(images: pt.shape[0], positionsPerImage: pt.shape[1] * pt.shape[2]))
            var readsImage = false
            for (dot, gradient) in products {
                if gradient {
                    // A gradient's scratch is allocated with the buffers.
                    let inImage = gradientReadsImageInPlace(i, fusion.inst[dot]!, fusion.types)
                    let b = inImage ? inPlace : gathered
                    fusion.patterns[dot] = .patchGradient(dot: dot, blocks: b, parts: min(target.reductionParts, b.count), scratch: 0)
                    readsImage = readsImage || inImage
                } else if readsImageInPlace(fusion.inst[dot]!.op) {
                    fusion.patterns[dot] = .patchProduct(dot: dot, blocks: inPlace)
                    readsImage = true
                } else {
                    fusion.patterns[dot] = .patchProduct(dot: dot, blocks: gathered)
                }
            }
            fusion.materialized[i.id] = nil
            fusion.productOperands.remove(i.id)
            fusion.views.remove(reshape)
            if readsImage { fusion.materializeConvolutionInput(i.operands[0]) }
        }
    }

    /// Whether a blocked convolution (a `.patchProduct`) of product `op` reads its image in place:
    /// on a target with the direct kernel, for a filter [K, CO] as stored (not transposed).
    public func readsImageInPlace(_ op: Op) -> Bool {
        guard target.directConvolutions, case .dot(false, false) = op else { return false }
        return true
    }

    /// Whether a blocked weight gradient `dot(reshape(patches(x)), dy, transpose_a)` reads its
    /// image in place (kiln_conv2d_filter_gradient_f32 over a part's images), on a target with
    /// the direct kernel: by Winograd, a 3x3 window of unit stride and dilation with 8 to 64 input
    /// channels, the input channels times the output channels rounded up to 16 at most 1024 (the
    /// kernel's bound); or directly, any window over fewer than 8 input channels (the padded
    /// kernel's, CONV_PADDED_MAX_C), where a gathered patch row is too short for a product to
    /// pay for gathering and packing it.
    public func gradientReadsImageInPlace(_ patches: Instruction, _ dot: Instruction, _ types: [Int: TensorType]) -> Bool {
        guard target.directConvolutions, case .patches(let window, let strides, let dil, _, _) = patches.op,
              let x = types[patches.operands[0]], x.rank == 4, let g = dot.type, g.rank == 2 else { return false }
        let c = x.shape[3], co = g.shape[1]
        if c < 8 { return true }
        return window == [3, 3] && strides == [1, 1] && dil == [1, 1] && c <= 64 && c * ((co + 15) / 16 * 16) <= 1024
    }

    /// The product of `unpatches(reshape(dot(a, b)))` when it can be computed per image: float32,
    /// `a` not transposed (an image's rows of the product are then `a`'s rows for that image,
    /// contiguous), the reshape and product read by nothing else, one image's rows fit a block
    /// and its product is worth a call of its own (a grey 8x8 image against 16 filters is 9K
    /// multiply-adds: one product over all images is faster).
    func perImageProduct(_ u: Instruction, _ fusion: Fusion) -> Int? {
        let inst = fusion.inst, types = fusion.types, uses = fusion.uses
        guard case .unpatches = u.op, let r = inst[u.operands[0]], case .reshape = r.op, uses[r.id] == 1,
              let pt = r.type, pt.rank == 4, let d = inst[r.operands[0]], case .dot(false, _) = d.op, uses[d.id] == 1,
              let dt = d.type, dt.dtype == .float32, dt.rank == 2, types[d.operands[0]]?.rank == 2, types[d.operands[1]]?.rank == 2 else { return nil }
        let rowsPerImage = pt.shape[1] * pt.shape[2]
        guard pt.shape[0] > 0, rowsPerImage > 0, dt.shape[0] == pt.shape[0] * rowsPerImage,
              rowsPerImage * dt.shape[1] * 4 <= target.blockBytes,
              rowsPerImage * dt.shape[1] * types[d.operands[0]]!.shape[1] >= target.blockProductMinimumWork else { return nil }
        return d.id
    }

    /// Rows of patches (output positions) a blocked patch product gathers at a time: as many as
    /// fit a block, but few enough to make at least `reductionParts` blocks for the pool to
    /// share, a multiple of the product kernel's panel, at least one panel.
    public func patchBlockRows(patchWidth: Int, positions: Int) -> Int {
        let panel = target.productPanelRows, parts = target.reductionParts
        let fit = target.blockBytes / (4 * max(patchWidth, 1)) / panel * panel
        let share = (positions + parts * panel - 1) / (parts * panel) * panel
        return min(positions, max(panel, min(fit, share)))
    }

    /// Rows a convolution that reads its image in place computes per block: whole images (no
    /// 2x2 Winograd tile of the kernel straddles two blocks, and there is no buffer to fit),
    /// about `reductionParts` blocks for the pool to share.
    public func convolutionBlockRows(images: Int, positionsPerImage: Int) -> Int {
        max(1, images / target.reductionParts) * positionsPerImage
    }

    /// For patches `p` read only through one reshape to [images * positions, patch], whose every
    /// user is a float32 product that can run on blocks of patch rows, the reshape and those
    /// products, each marked whether it is a weight gradient (`dot(reshape, dy, transpose_a)`,
    /// summed over the blocks) or a convolution (`dot(reshape, w)`, the block's rows of the
    /// output). Nil when any use needs the patches in memory, when the patches would stay in
    /// cache anyway (gathering them again per block would only cost more) unless every product
    /// reads its image in place (a convolution or a weight gradient), when one panel of
    /// patch rows would not fit a block, or when a block's product is too small to be worth a call.
    func blockedPatchProducts(_ p: Instruction, _ fusion: Fusion, excluding accumulated: Set<Int>) -> (Int, [(Int, Bool)])? {
        let inst = fusion.inst, types = fusion.types, uses = fusion.uses
        guard case .patches = p.op, uses[p.id] == 1, let pt = p.type, pt.rank == 4, pt.dtype == .float32, pt.shape[0] > 0,
              target.productPanelRows * pt.shape[3] * 4 <= target.blockBytes,
              let r = (fusion.users[p.id] ?? []).compactMap({ inst[$0] }).first(where: { $0.op.isReshape && $0.operands == [p.id] }) else { return nil }
        let rows = pt.shape[0] * pt.shape[1] * pt.shape[2]
        let blockRows = patchBlockRows(patchWidth: pt.shape[3], positions: rows)
        guard r.type?.shape == [rows, pt.shape[3]] else { return nil }
        let dots = (fusion.users[r.id] ?? []).compactMap { inst[$0] }
        guard !dots.isEmpty, dots.count == uses[r.id] else { return nil }
        var products: [(Int, Bool)] = []
        for d in dots {
            guard d.operands.count == 2, d.operands[0] == r.id, d.operands[1] != r.id, !accumulated.contains(d.id),
                  let dt = d.type, dt.rank == 2, let bt = types[d.operands[1]], bt.rank == 2,
                  blockRows * pt.shape[3] * dt.shape[1] >= target.blockProductMinimumWork else { return nil }
            switch d.op {
            case .dot(false, _): products.append((d.id, false))
            case .dot(true, false) where bt.shape[0] == rows: products.append((d.id, true))
            default: return nil
            }
        }
        // Convolutions and weight gradients that read the image in place gather nothing, so they
        // qualify at any size.
        guard pt.byteCount >= target.cacheBytes || products.allSatisfy({ d, gradient in
            gradient ? gradientReadsImageInPlace(p, inst[d]!, types) : readsImageInPlace(inst[d]!.op)
        }) else { return nil }
        return (r.id, products.sorted { $0.0 < $1.0 })
    }

    /// Descent steps whose product accumulates into the variable (`.accumulatedProduct`), where
    /// the target's products can take alpha from a register: not on a work-item target, whose
    /// library product takes alpha as a launch argument.
    func scheduleDescentSteps(_ fusion: inout Fusion) {
        guard !target.workItems else { return }
        fusion.fuseDescentSteps()
    }

    // MARK: kernels' tactics (once fusion is settled)

    /// `kernel`, the plan's kernel for `i`, with the target's tactics: reductions over leading
    /// axes split into parts or summed in blocks, scratch for a patch gradient's parts.
    /// `allocate` reserves arena scratch of a byte count for the kernel and returns its offset.
    func schedule(_ kernel: KernelPlan.Kernel, _ i: Instruction, types: [Int: TensorType], allocate: (Int) -> Int) -> KernelPlan.Kernel {
        if target.workItems { return scheduleWorkItems(kernel, i, types: types, allocate: allocate) }
        switch kernel {
        case .reduction(let r):
            if let parts = reductionParts(i, types: types) {
                let sum = isLeadingFloatSum(i, types: types)
                let wide = sum ? parts * i.type!.elementCount * 8 : 0
                let scratch = allocate(parts * i.type!.byteCount + wide)
                return .splitReduction(reduce: r, parts: parts, scratch: scratch,
                                       wide: sum ? KernelPlan.WideSum(offset: scratch + parts * i.type!.byteCount, blockRows: Self.reductionBlockRows) : nil)
            }
            if isLeadingFloatSum(i, types: types), leadingRows(i, types: types) > Self.reductionBlockRows {
                return .blockedReduction(reduce: r, wide: KernelPlan.WideSum(offset: allocate(i.type!.elementCount * 8), blockRows: Self.reductionBlockRows))
            }
            return kernel
        case .patchGradient(let d, let blocks, let parts, _):
            return .patchGradient(dot: d, blocks: blocks, parts: parts, scratch: allocate(parts * i.type!.byteCount))
        default:
            return kernel
        }
    }

    /// Parts a reduction over leading axes (batch statistics, bias gradients: many rows summed
    /// into a short row) is split into, each summing its share of the rows into its own slot of
    /// scratch, nil where one loop will do. The number is fixed, not the number of cores, so the
    /// sum is associated the same way on every machine and every run.
    func reductionParts(_ i: Instruction, types: [Int: TensorType]) -> Int? {
        guard case .reduce(_, let axes) = i.op, let t = i.type, let xt = types[i.operands[0]], !axes.isEmpty, !t.shape.isEmpty,
              axes == Array(0..<axes.count), t.elementCount <= Self.splitReductionMaxOutput else { return nil }
        let rows = axes.map { xt.shape[$0] }.reduce(1, *)
        guard rows >= 4 * target.reductionParts, xt.elementCount >= target.parallelThreshold else { return nil }
        return target.reductionParts
    }

    /// A floating-point sum over leading axes into a non-scalar result (the loop that streams rows).
    func isLeadingFloatSum(_ i: Instruction, types: [Int: TensorType]) -> Bool {
        guard case .reduce(.sum, let axes) = i.op, let t = i.type, t.dtype.isFloatingPoint, !axes.isEmpty, !t.shape.isEmpty,
              let xt = types[i.operands[0]], axes.count < xt.rank else { return false }
        return axes.sorted() == Array(0..<axes.count)
    }

    func leadingRows(_ i: Instruction, types: [Int: TensorType]) -> Int {
        guard case .reduce(_, let axes) = i.op, let xt = types[i.operands[0]] else { return 0 }
        return axes.map { xt.shape[$0] }.reduce(1, *)
    }

    // MARK: work-item targets

    /// On a work-item target a reduction is a work-group tree per output; one to few outputs
    /// over many inputs is split into `reductionParts` parts (a launch of trees into scratch, then
    /// a launch summing each output's parts in order), so the device has enough work-groups.
    /// No sum is widened to Double (the device may have none): the tree's error grows with the
    /// logarithm of the element count.
    func scheduleWorkItems(_ kernel: KernelPlan.Kernel, _ i: Instruction, types: [Int: TensorType], allocate: (Int) -> Int) -> KernelPlan.Kernel {
        guard case .reduction(let r) = kernel, case .reduce(_, let axes) = i.op, let t = i.type, let xt = types[i.operands[0]] else { return kernel }
        let reduced = axes.map { xt.shape[$0] }.reduce(1, *)
        let parts = target.reductionParts
        guard t.elementCount <= Self.splitWorkGroupReductionMaxOutput,
              reduced >= parts * target.reductionGroupSize * Self.itemsPerWorkItem else { return kernel }
        return .splitReduction(reduce: r, parts: parts, scratch: allocate(parts * t.byteCount), wide: nil)
    }

    /// Reductions to at most this many outputs are split (fixed, not the device's compute units,
    /// so the association is the same on every device).
    static let splitWorkGroupReductionMaxOutput = 64
    /// Inputs each work item of a split reduction's part should add at least.
    static let itemsPerWorkItem = 4
}
