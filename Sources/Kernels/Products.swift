import KilnIR
import KilnPasses

/// Matrix products: plain and batched products, a gradient step accumulated into its variable,
/// products per image (a convolution's input gradient) and per block of patch rows (a
/// convolution and its weight gradient), each a call to Kiln's own kernel or to OpenBLAS.
extension KernelWriter {
    func writeDot(_ i: Instruction) {
        guard case .dot(let ta, let tb) = i.op else { preconditionFailure("product of \(i.op.mnemonic)") }
        let at = types[i.operands[0]]!, bt = types[i.operands[1]]!, t = i.type!
        let rank = at.rank
        let (m, n) = (t.shape[rank - 2], t.shape[rank - 1])
        let k = ta ? at.shape[rank - 2] : at.shape[rank - 1]
        let batch = t.shape.dropLast(2).reduce(1, *)
        guard t.dtype == .float32 || t.dtype == .float64 || t.dtype.isHalf,
              let aPtr = bufferPointer(i.operands[0]), let bPtr = bufferPointer(i.operands[1]) else {
            return writeDotLoop(i)
        }
        if m == 0 || n == 0 { return }
        let cPtr = base(i.id)!
        let elem = t.dtype.byteSize
        // From a batch template: a matrix's rows or inner dimension, or a stack's leading
        // dimension, may be the run's batch.
        let (rows, inner) = rank == 2 ? (batchExtent(i.id), batchInner(ta, tb, i.operands[0], i.operands[1])) : (nil, nil)
        let call = { (bi: RValue) in
            self.productCall(t.dtype, ta, tb, m, n, k, alpha: nil, accumulate: false,
                             a: self.advanced(aPtr, bi, stride: at.shape.suffix(2).reduce(1, *) * elem), lda: at.shape[rank - 1],
                             b: self.advanced(bPtr, bi, stride: bt.shape.suffix(2).reduce(1, *) * elem), ldb: bt.shape[rank - 1],
                             c: self.advanced(cPtr, bi, stride: m * n * elem), ldc: n, dynamicM: rows, dynamicK: inner)
        }
        if rank > 2, let lead = batchExtent(i.id) {
            r.loop(from: c64(0), to: r.int(.mul, lead, c64(t.shape.dropFirst().dropLast(2).reduce(1, *))), hints: LoopHints(), call)
        } else if batch == 1 { call(c64(0)) } else { r.loop(count: batch, hints: LoopHints(), call) }
    }

    /// Integer matrices (and anything without a buffer): a plain loop nest, one sum per output
    /// element in order; half operands are summed in float32 and the sum rounded once.
    func writeDotLoop(_ i: Instruction) {
        guard case .dot(let ta, let tb) = i.op else { preconditionFailure("product of \(i.op.mnemonic)") }
        let at = types[i.operands[0]]!, bt = types[i.operands[1]]!, t = i.type!
        let rank = at.rank
        let k = ta ? at.shape[rank - 2] : at.shape[rank - 1]
        let sum: DType = t.dtype.isHalf ? .float32 : t.dtype
        let widened = { (v: RValue) in t.dtype.isHalf ? self.halfToFloat(v, t.dtype) : v }
        // The inner dimension is the run's batch when it is a carrier's leading one.
        let inner = rank == 2 ? batchInner(ta, tb, i.operands[0], i.operands[1]) : nil
        loopNest(t.shape, rows: batchExtent(i.id)) { idx in
            let acc = r.slot(.register(sum), initial: nil)
            r.store(constValue(0, sum), acc)
            let term = { [self] (p: RValue) in
                let batchIdx = Array(idx.multi.dropLast(2))
                let (ii, jj) = (idx.multi[rank - 2], idx.multi[rank - 1])
                let av = widened(element(i.operands[0], Index(multi: batchIdx + (ta ? [p, ii] : [ii, p]), shape: at.shape, writer: self)))
                let bv = widened(element(i.operands[1], Index(multi: batchIdx + (tb ? [jj, p] : [p, jj]), shape: bt.shape, writer: self)))
                let s = r.load(acc)
                r.store(binary(.add, s, binary(.mul, av, bv, sum), sum), acc)
            }
            if let inner { r.loop(from: c64(0), to: inner, hints: LoopHints(), term) } else { r.loop(count: k, hints: LoopHints(), term) }
            let total = r.load(acc)
            store(t.dtype.isHalf ? floatToHalf(total, t.dtype) : total, base(i.id)!, idx.linear, t.dtype)
        }
    }

    /// `v -= s * dot(a, b)` in the product: C (the variable) += (-s) * op(A) op(B).
    func writeAccumulatedProduct(_ d: Instruction, into target: RValue, scale: Int) {
        guard case .dot(let ta, let tb) = d.op else { return }
        let at = types[d.operands[0]]!, bt = types[d.operands[1]]!, t = d.type!
        let alpha = r.fneg(element(scale, Index(multi: [], shape: [], writer: self)))
        // The variable's shape is fixed; the inner dimension may be the run's batch.
        let inner = batchInner(ta, tb, d.operands[0], d.operands[1])
        productCall(t.dtype, ta, tb, t.shape[0], t.shape[1], ta ? at.shape[0] : at.shape[1], alpha: alpha, accumulate: true,
                    a: bufferPointer(d.operands[0])!, lda: at.shape[1], b: bufferPointer(d.operands[1])!, ldb: bt.shape[1],
                    c: target, ldc: t.shape[1], dynamicK: inner)
    }

    /// One call computing C = alpha * op(A) op(B) (+ C when `accumulate`; alpha nil means 1):
    /// Kiln's kernel for float32 products in its range (TargetDescription.ownProduct) and for every
    /// float16/bfloat16 product (kiln_hgemm, alpha f32), OpenBLAS otherwise. `lda`, `ldb` and `ldc` are row strides as stored.
    /// `dynamicM`/`dynamicK` replace m or k by a run-time count of at most m or k (the last, short
    /// block of a blocked product); the library is still chosen by the static sizes.
    func productCall(_ dtype: DType, _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, alpha: RValue?, accumulate: Bool,
                     a: RValue, lda: Int, b: RValue, ldb: Int, c: RValue, ldc: Int,
                     dynamicM: RValue? = nil, dynamicK: RValue? = nil) {
        let mArg = dynamicM ?? c64(m), kArg = dynamicK ?? c64(k)
        if dtype.isHalf {
            // Kiln's half kernel: summed in float32, C written in the half type (rounded once).
            let format = dtype == .float16 ? 1 : 2
            _ = r.callRuntime(.hgemm, [c32(0), c32(format), c32(format), c32(ta ? 1 : 0), c32(tb ? 1 : 0), mArg, c64(n), kArg,
                                       alpha ?? r.constant(float: 1, .f32), a, c64(lda), b, c64(ldb), c, c64(ldc), c32(accumulate ? 1 : 0)])
            return
        }
        let isF32 = dtype == .float32
        let scalar: ScalarType = isF32 ? .f32 : .f64
        let alpha = alpha ?? r.constant(float: 1, scalar)
        if isF32 && target.ownProduct(m: m, n: n, k: k) {
            _ = r.callRuntime(.sgemm, [c32(ta ? 1 : 0), c32(tb ? 1 : 0), mArg, c64(n), kArg, alpha,
                                       a, c64(lda), b, c64(ldb), c, c64(ldc), c32(accumulate ? 1 : 0)])
        } else {
            _ = r.callRuntime(isF32 ? .blasSgemm : .blasDgemm, [c32(ta ? 1 : 0), c32(tb ? 1 : 0), mArg, c64(n), kArg, alpha,
                                                                a, c64(lda), b, c64(ldb), r.constant(float: accumulate ? 1 : 0, scalar), c, c64(ldc)])
        }
    }

    /// `p` advanced by `i * stride` bytes.
    func advanced(_ p: RValue, _ i: RValue, stride: Int) -> RValue {
        r.offset(p, bytes: r.int(.mul, i, c64(stride)))
    }

    /// The patches of positions [first, first + rows) of [N*OH*OW] into `out`, one patch a row.
    func gatherPatchRows(_ i: Instruction, first: RValue, rows: RValue, into out: RValue) {
        guard case .patches(let window, let strides, let dil, let lo, _) = i.op else { preconditionFailure("patch rows of \(i.op.mnemonic)") }
        let t = i.type!
        r.loop(from: c64(0), to: rows, hints: LoopHints()) { row in
            let position = r.int(.add, first, row)
            let m = Index(linear: position, shape: Array(t.shape.prefix(3)), writer: self).multi
            storePatch(i, window, strides, dil, lo, n: m[0], oh: m[1], ow: m[2], into: out, at: r.int(.mul, row, c64(t.shape[3])))
        }
    }

    /// Where block `k` of patch rows starts and how many rows it has (the last block may be short).
    func patchBlockBounds(_ blocks: KernelPlan.PatchBlocks, _ k: RValue) -> (first: RValue, rows: RValue) {
        let rows = blocks.rows
        let first = r.int(.mul, k, c64(rows))
        let left = r.int(.sub, patchRowCount(blocks), first)
        let short = r.icmp(.slt, left, c64(rows))
        return (first, r.select(short, left, c64(rows)))
    }

    /// The patch rows (positions N*OH*OW) a blocked patch kernel covers: the run's, when the
    /// patches carry the batch.
    func patchRowCount(_ blocks: KernelPlan.PatchBlocks) -> RValue {
        let ps = inst[blocks.patches]!.type!.shape
        guard let n = batchExtent(blocks.patches) else { return c64(ps[0] * ps[1] * ps[2]) }
        return r.int(.mul, n, c64(ps[1] * ps[2]))
    }

    /// The blocks of patch rows: the run's, when the patches carry the batch.
    func patchBlockCount(_ blocks: KernelPlan.PatchBlocks) -> RValue {
        guard batchExtent(blocks.patches) != nil else { return c64(blocks.count) }
        return r.int(.udiv, r.int(.add, patchRowCount(blocks), c64(blocks.rows - 1)), c64(blocks.rows))
    }

    /// A stack buffer for one block of patch rows.
    func patchBlockBuffer(_ blocks: KernelPlan.PatchBlocks) -> RValue {
        r.stackArray(.f32, count: blocks.rows * inst[blocks.patches]!.type!.shape[3], name: "patch rows of %\(blocks.patches)")
    }

    /// Rows [first, first + count) of a float32 NHWC convolution of `image` (shape `xs`) into
    /// `out` (row stride `ldc`) by kiln_conv2d_f32: output size `outSize`, filter `filter` [K, co]
    /// with row stride `ldw`.
    func convolutionCall(image: RValue, _ xs: [Int], outSize: [Int], window: [Int], strides: [Int], dilations: [Int], padLow: [Int],
                         filter: RValue, ldw: Int, co: Int, out: RValue, ldc: Int, first: RValue, count: RValue) {
        _ = r.callRuntime(.conv2d, [image, c64(xs[1]), c64(xs[2]), c64(xs[3]), c64(outSize[0]), c64(outSize[1]), c64(window[0]), c64(window[1]),
                                    c64(strides[0]), c64(strides[1]), c64(dilations[0]), c64(dilations[1]), c64(padLow[0]), c64(padLow[1]),
                                    filter, c64(ldw), c64(co), out, c64(ldc), first, count])
    }

    /// A convolution computed from blocks of patch rows (a `KernelPlan.Kernel.patchProduct`): each
    /// block's rows of the output from the image in place (`Scheduler.readsImageInPlace`), or
    /// its patches gathered into a stack buffer, then its rows of the product straight into the output.
    func writePatchProduct(_ d: Instruction, _ blocks: KernelPlan.PatchBlocks) {
        guard case .dot(_, let tb) = d.op else { preconditionFailure("patch product of \(d.op.mnemonic)") }
        let patches = inst[blocks.patches]!
        let bt = types[d.operands[1]]!, t = d.type!, k = patches.type!.shape[3], n = t.shape[1]
        let bPtr = bufferPointer(d.operands[1])!, out = base(d.id)!
        if Scheduler(target: target).readsImageInPlace(d.op), let image = bufferPointer(patches.operands[0]),
           case .patches(let window, let strides, let dil, let lo, _) = patches.op {
            let ps = patches.type!.shape
            loopNest([blocks.count], rows: batchExtent(blocks.patches).map { _ in patchBlockCount(blocks) }) { block in
                let (first, rows) = patchBlockBounds(blocks, block.multi[0])
                convolutionCall(image: image, types[patches.operands[0]]!.shape, outSize: [ps[1], ps[2]], window: window, strides: strides,
                                dilations: dil, padLow: lo, filter: bPtr, ldw: bt.shape[1], co: n, out: out, ldc: n, first: first, count: rows)
            }
            return
        }
        let buffer = patchBlockBuffer(blocks)
        loopNest([blocks.count], rows: batchExtent(blocks.patches).map { _ in patchBlockCount(blocks) }) { block in
            let (first, rows) = patchBlockBounds(blocks, block.multi[0])
            gatherPatchRows(patches, first: first, rows: rows, into: buffer)
            productCall(.float32, false, tb, blocks.rows, n, k, alpha: nil, accumulate: false,
                        a: buffer, lda: k, b: bPtr, ldb: bt.shape[1], c: advanced(out, first, stride: n * 4), ldc: n, dynamicM: rows)
        }
    }

    /// Parts [begin, end) (all parts when not split) of a weight gradient `dot(patches, dy,
    /// transpose_a)` computed from blocks of patch rows (a `KernelPlan.Kernel.patchGradient`): part q
    /// adds patches' x dy for its blocks' rows into slot q of the scratch, from the image in place
    /// (`Scheduler.gradientReadsImageInPlace`: one kiln_conv2d_filter_gradient_f32 call for the
    /// part's images) or gathering each block's patches into a stack buffer for a product.
    func writePatchGradientParts(_ d: Instruction, _ blocks: KernelPlan.PatchBlocks, parts: Int, scratch offset: Int) {
        let patches = inst[blocks.patches]!
        let t = d.type!, k = patches.type!.shape[3], n = t.shape[1]
        let partials = scratch(offset, "scratch\(d.id)"), dy = bufferPointer(d.operands[1])!
        let (begin, end) = splitRange ?? (c64(0), c64(parts))
        splitRange = nil
        let image = Scheduler(target: target).gradientReadsImageInPlace(patches, d, types) ? bufferPointer(patches.operands[0]) : nil
        let buffer = image == nil ? patchBlockBuffer(blocks) : nil
        r.loop(from: begin, to: end, hints: LoopHints()) { part in
            let slot = r.int(.mul, part, c64(k * n))
            r.loop(count: k * n, hints: LoopHints()) { e in store(constValue(0, .float32), partials, r.int(.add, slot, e), .float32) }
            let (firstBlock, endBlock) = partRange(part, of: patchBlockCount(blocks), parts: parts)
            if let image, case .patches(let window, let strides, let dil, let lo, _) = patches.op {
                let ps = patches.type!.shape, xs = types[patches.operands[0]]!.shape, total = patchRowCount(blocks)
                let first = r.int(.mul, firstBlock, c64(blocks.rows))
                let last = r.int(.mul, endBlock, c64(blocks.rows))
                let stop = r.select(r.icmp(.slt, last, total), last, total)
                _ = r.callRuntime(.conv2dFilterGradient, [image, c64(xs[1]), c64(xs[2]), c64(xs[3]), c64(ps[1]), c64(ps[2]),
                                                          c64(window[0]), c64(window[1]), c64(strides[0]), c64(strides[1]), c64(dil[0]),
                                                          c64(dil[1]), c64(lo[0]), c64(lo[1]), dy, c64(n), c64(n),
                                                          advanced(partials, part, stride: k * n * 4), c64(n), first, r.int(.sub, stop, first)])
                return
            }
            let buffer = buffer!
            r.loop(from: firstBlock, to: endBlock, hints: LoopHints()) { block in
                let (first, rows) = patchBlockBounds(blocks, block)
                gatherPatchRows(patches, first: first, rows: rows, into: buffer)
                productCall(.float32, true, false, k, n, blocks.rows, alpha: nil, accumulate: true,
                            a: buffer, lda: k, b: advanced(dy, first, stride: n * 4), ldb: n,
                            c: advanced(partials, part, stride: k * n * 4), ldc: n, dynamicK: rows)
            }
        }
    }

    /// Unpatches of a product computed per image (a `KernelPlan.Kernel.perImageProduct`): for each image,
    /// its rows of the product into a stack buffer, then `body` for each of the image's elements
    /// (multi-index and linear index), reading the product from that buffer.
    func writePerImageProduct(_ u: Instruction, _ d: Instruction, _ body: ([RValue], RValue) -> Void) {
        guard case .dot(_, let tb) = d.op else { preconditionFailure("per-image product of \(d.op.mnemonic)") }
        let t = u.type!, ps = types[u.operands[0]]!.shape
        let at = types[d.operands[0]]!, bt = types[d.operands[1]]!
        let rows = ps[1] * ps[2], cols = ps[3], k = at.shape[1]
        let imageElements = t.shape.dropFirst().reduce(1, *)
        let local = r.stackArray(.f32, count: rows * cols, name: "image rows of %\(d.id)")
        let aPtr = bufferPointer(d.operands[0])!, bPtr = bufferPointer(d.operands[1])!
        loopNest([t.shape[0]]) { image in
            let n = image.multi[0]
            productCall(.float32, false, tb, rows, cols, k, alpha: nil, accumulate: false,
                        a: advanced(aPtr, n, stride: rows * k * 4), lda: k, b: bPtr, ldb: bt.shape[1], c: local, ldc: cols)
            // Indexed like the whole product: the buffer sits where this image's rows would.
            localBuffers[d.id] = advanced(local, n, stride: -rows * cols * 4)
            loopNest(Array(t.shape.dropFirst())) { idx in
                body([n] + idx.multi, r.int(.add, r.int(.mul, n, c64(imageElements)), idx.linear))
            }
            localBuffers[d.id] = nil
        }
    }
}
