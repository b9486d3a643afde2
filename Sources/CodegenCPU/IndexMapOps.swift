import CLLVM
import KilnIR
import KilnPasses

/// Element generators for the index-map primitives (pad, concat, gather, patches) and the
/// window reductions. Out-of-range positions are clamped before loading, then replaced by a
/// select, so no load ever leaves its buffer and the loops stay vectorisable.
extension Emitter {
    func clamp(_ v: LLVMValueRef, _ n: Int) -> LLVMValueRef {
        let lo = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, v, constI64(0), ""), constI64(0), v, "")!
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSGT, lo, constI64(n - 1), ""), constI64(n - 1), lo, "")!
    }

    func inRange(_ v: LLVMValueRef, _ n: Int) -> LLVMValueRef {
        LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGE, v, constI64(0), ""), LLVMBuildICmp(b, LLVMIntSLT, v, constI64(n), ""), "")!
    }

    func emitPad(_ i: Instruction, _ idx: Index, _ low: [Int], _ mode: PadMode) -> LLVMValueRef {
        let x = i.operands[0], xs = types[x]!.shape
        var inside = LLVMConstInt(i1, 1, 0)!
        var multi: [LLVMValueRef] = []
        for d in 0..<xs.count {
            let p = LLVMBuildSub(b, idx.multi[d], constI64(low[d]), "")!
            let n = xs[d]
            switch mode {
            case .constant:
                inside = LLVMBuildAnd(b, inside, inRange(p, n), "")
                multi.append(clamp(p, n))
            case .reflect, .symmetric:
                let neg = LLVMBuildICmp(b, LLVMIntSLT, p, constI64(0), "")
                let over = LLVMBuildICmp(b, LLVMIntSGE, p, constI64(n), "")
                let below = mode == .reflect ? LLVMBuildNeg(b, p, "")! : LLVMBuildSub(b, constI64(-1), p, "")!
                let above = LLVMBuildSub(b, constI64(mode == .reflect ? 2 * (n - 1) : 2 * n - 1), p, "")!
                let src = LLVMBuildSelect(b, neg, below, LLVMBuildSelect(b, over, above, p, ""), "")!
                multi.append(clamp(src, n))
            }
        }
        let v = element(x, Index(multi: multi, shape: xs, emitter: self))
        if mode != .constant { return v }
        let border = element(i.operands[1], Index(multi: [], linear: constI64(0), shape: [], emitter: self))
        return LLVMBuildSelect(b, inside, v, border, "")
    }

    func emitConcat(_ i: Instruction, _ idx: Index, _ axis: Int) -> LLVMValueRef {
        var result: LLVMValueRef?
        var offset = 0
        for o in i.operands {
            let s = types[o]!.shape
            var multi = idx.multi
            let local = LLVMBuildSub(b, multi[axis], constI64(offset), "")!
            multi[axis] = clamp(local, s[axis])
            let v = element(o, Index(multi: multi, shape: s, emitter: self))
            if let r = result {
                let mine = LLVMBuildICmp(b, LLVMIntSGE, idx.multi[axis], constI64(offset), "")
                result = LLVMBuildSelect(b, mine, v, r, "")
            } else { result = v }
            offset += s[axis]
        }
        return result!
    }

    func emitGather(_ i: Instruction, _ idx: Index, _ axis: Int, _ batchDims: Int) -> LLVMValueRef {
        let p = i.operands[0], ind = i.operands[1]
        let ps = types[p]!.shape, isShape = types[ind]!.shape
        let idxRank = isShape.count - batchDims
        let o = idx.multi
        let position = Array(o.prefix(batchDims)) + Array(o[axis..<(axis + idxRank)])
        let raw = element(ind, Index(multi: position, shape: isShape, emitter: self))
        let k = types[ind]!.dtype == .int64 ? raw : LLVMBuildSExt(b, raw, i64, "")!
        let src = Array(o.prefix(axis)) + [clamp(k, ps[axis])] + Array(o.dropFirst(axis + idxRank))
        let v = element(p, Index(multi: src, shape: ps, emitter: self))
        return LLVMBuildSelect(b, inRange(k, ps[axis]), v, constValue(0, types[p]!.dtype), "")
    }

    func emitPatches(_ i: Instruction, _ idx: Index, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int]) -> LLVMValueRef {
        let x = i.operands[0], xs = types[x]!.shape
        let c = xs[3], o = idx.multi
        let q = o[3]
        let kh = LLVMBuildUDiv(b, q, constI64(window[1] * c), "")!
        let kw = LLVMBuildURem(b, LLVMBuildUDiv(b, q, constI64(c), ""), constI64(window[1]), "")!
        let ci = LLVMBuildURem(b, q, constI64(c), "")!
        func coord(_ out: LLVMValueRef, _ k: LLVMValueRef, _ d: Int) -> LLVMValueRef {
            let base = LLVMBuildMul(b, out, constI64(strides[d]), "")!
            return LLVMBuildSub(b, LLVMBuildAdd(b, base, LLVMBuildMul(b, k, constI64(dil[d]), ""), ""), constI64(lo[d]), "")!
        }
        let y = coord(o[1], kh, 0), xx = coord(o[2], kw, 1)
        let inside = LLVMBuildAnd(b, inRange(y, xs[1]), inRange(xx, xs[2]), "")
        let v = element(x, Index(multi: [o[0], clamp(y, xs[1]), clamp(xx, xs[2]), ci], shape: xs, emitter: self))
        return LLVMBuildSelect(b, inside, v, constValue(0, xs.isEmpty ? .float32 : types[x]!.dtype), "")
    }

    // MARK: kernels with an inner reduction

    func emitArgReduce(_ i: Instruction, _ a: ArgReduceOp, _ axis: Int) {
        let x = i.operands[0], xt = types[x]!, t = i.type!
        if axis < xt.rank - 1 && xt.shape[axis] <= Self.unrolledReductionExtent {
            // A short reduced axis with contiguous elements after it (pooling's window taps):
            // unrolled, so the loop over those elements is innermost and vectorises.
            loopNest(t.shape) { outIdx in
                func at(_ k: Int) -> LLVMValueRef {
                    var m = outIdx.multi
                    m.insert(constI64(k), at: axis)
                    return element(x, Index(multi: m, shape: xt.shape, emitter: self))
                }
                var best = at(0), bestK = constI64(0)
                for k in 1..<max(xt.shape[axis], 1) {
                    let v = at(k)
                    let better = compare(a == .argmax ? .gt : .lt, v, best, xt.dtype)
                    best = LLVMBuildSelect(b, better, v, best, "")
                    bestK = LLVMBuildSelect(b, better, constI64(k), bestK, "")
                }
                store(cast(bestK, .int64, t.dtype), base(i.id)!, outIdx.linear, t.dtype)
            }
            return
        }
        let bestV = entryAlloca(registerType(xt.dtype)), bestK = entryAlloca(i64)
        loopNest(t.shape) { outIdx in
            var first = outIdx.multi
            first.insert(constI64(0), at: axis)
            LLVMBuildStore(b, element(x, Index(multi: first, shape: xt.shape, emitter: self)), bestV)
            LLVMBuildStore(b, constI64(0), bestK)
            loop(xt.shape[axis]) { k in
                var m = outIdx.multi
                m.insert(k, at: axis)
                let v = element(x, Index(multi: m, shape: xt.shape, emitter: self))
                let best = LLVMBuildLoad2(b, registerType(xt.dtype), bestV, "")!
                // Strictly better only, so ties keep the first index.
                let better = compare(a == .argmax ? .gt : .lt, v, best, xt.dtype)
                LLVMBuildStore(b, LLVMBuildSelect(b, better, v, best, ""), bestV)
                LLVMBuildStore(b, LLVMBuildSelect(b, better, k, LLVMBuildLoad2(b, i64, bestK, ""), ""), bestK)
            }
            store(cast(LLVMBuildLoad2(b, i64, bestK, "")!, .int64, t.dtype), base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    func emitReduceWindow(_ i: Instruction, _ r: ReduceOp, _ window: [Int], _ strides: [Int], _ lo: [Int]) {
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let op = r.combiner
        // Windows are small and fixed: unroll them; without padding no bound can be crossed.
        let unpadded = lo.allSatisfy { $0 == 0 } && (0..<xt.rank).allSatisfy { d in (t.shape[d] - 1) * strides[d] + window[d] <= xt.shape[d] }
        let taps = (0..<window.reduce(1, *)).map { k -> [Int] in
            var rest = k
            return window.reversed().map { w -> Int in defer { rest /= w }; return rest % w }.reversed()
        }
        loopNest(t.shape) { outIdx in
            var acc: LLVMValueRef? = nil
            for w in taps {
                var inside = LLVMConstInt(i1, 1, 0)!
                var multi: [LLVMValueRef] = []
                for d in 0..<xt.rank {
                    let base = LLVMBuildMul(b, outIdx.multi[d], constI64(strides[d]), "")!
                    let p = LLVMBuildAdd(b, base, constI64(w[d] - lo[d]), "")!
                    if unpadded { multi.append(p); continue }
                    inside = LLVMBuildAnd(b, inside, inRange(p, xt.shape[d]), "")
                    multi.append(clamp(p, xt.shape[d]))
                }
                let v = element(x, Index(multi: multi, shape: xt.shape, emitter: self))
                let a = acc ?? reduceIdentity(r, t.dtype)
                acc = unpadded ? binary(op, a, v, t.dtype) : LLVMBuildSelect(b, inside, binary(op, a, v, t.dtype), a, "")
            }
            store(acc!, base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    /// Patches as a loop nest over (n, oh, ow, kh, kw, c): the destination is contiguous in c and
    /// no index needs dividing.
    func emitPatchesKernel(_ i: Instruction, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int]) {
        let t = i.type!, out = base(i.id)!
        loopNest(Array(t.shape.prefix(3))) { idx in
            let m = idx.multi
            storePatch(i, window, strides, dil, lo, n: m[0], oh: m[1], ow: m[2], into: out, at: LLVMBuildMul(b, idx.linear, constI64(t.shape[3]), "")!)
        }
    }

    /// Writes the patch at output position (n, oh, ow), KH*KW*C values, to out[at...].
    func storePatch(_ i: Instruction, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int],
                    n: LLVMValueRef, oh: LLVMValueRef, ow: LLVMValueRef, into out: LLVMValueRef, at rowBase: LLVMValueRef) {
        let x = i.operands[0], xs = types[x]!.shape, t = i.type!
        func coord(_ o: LLVMValueRef, _ k: LLVMValueRef, _ d: Int) -> LLVMValueRef {
            LLVMBuildSub(b, LLVMBuildAdd(b, LLVMBuildMul(b, o, constI64(strides[d]), "")!, LLVMBuildMul(b, k, constI64(dil[d]), "")!, "")!,
                         constI64(lo[d]), "")!
        }
        func value(_ y: LLVMValueRef, _ xx: LLVMValueRef, _ c: LLVMValueRef) -> LLVMValueRef {
            let inside = LLVMBuildAnd(b, inRange(y, xs[1]), inRange(xx, xs[2]), "")
            let v = element(x, Index(multi: [n, clamp(y, xs[1]), clamp(xx, xs[2]), c], shape: xs, emitter: self))
            return LLVMBuildSelect(b, inside, v, constValue(0, t.dtype), "")!
        }
        if xs[3] < Self.shortInnerExtent && t.shape[3] <= Self.unrolledPatchWidth {
            // Few channels (a grey image: 9 values per patch): loops over kh, kw and c would be
            // too short to vectorise and cost more than the copies, so a patch is straight-line code.
            for kh in 0..<window[0] {
                let y = coord(oh, constI64(kh), 0)
                for kw in 0..<window[1] {
                    let xx = coord(ow, constI64(kw), 1)
                    for ci in 0..<xs[3] {
                        let k = (kh * window[1] + kw) * xs[3] + ci
                        store(value(y, xx, constI64(ci)), out, LLVMBuildAdd(b, rowBase, constI64(k), "")!, t.dtype)
                    }
                }
            }
            return
        }
        loopNest([window[0], window[1], xs[3]]) { idx in
            let m = idx.multi
            store(value(coord(oh, m[0], 0), coord(ow, m[1], 1), m[2]), out, LLVMBuildAdd(b, rowBase, idx.linear, "")!, t.dtype)
        }
    }

    /// The patches of positions [first, first + rows) of [N*OH*OW] into `out`, one patch a row.
    func gatherPatchRows(_ i: Instruction, first: LLVMValueRef, rows: LLVMValueRef, into out: LLVMValueRef) {
        guard case .patches(let window, let strides, let dil, let lo, _) = i.op else { preconditionFailure("patch rows of \(i.op.mnemonic)") }
        let t = i.type!
        loop(from: constI64(0), to: rows) { r in
            let position = LLVMBuildAdd(b, first, r, "")!
            let m = Index(linear: position, shape: Array(t.shape.prefix(3)), emitter: self).multi
            storePatch(i, window, strides, dil, lo, n: m[0], oh: m[1], ow: m[2], into: out, at: LLVMBuildMul(b, r, constI64(t.shape[3]), "")!)
        }
    }

    /// A stack buffer for one block of patch rows, and where block `k` starts and how many rows
    /// it has (the last block may be short).
    func patchBlockBuffer(_ blocks: KernelPlan.PatchBlocks) -> (buffer: LLVMValueRef, bounds: (LLVMValueRef) -> (LLVMValueRef, LLVMValueRef)) {
        let pt = inst[blocks.patches]!.type!
        let total = pt.shape[0] * pt.shape[1] * pt.shape[2], rows = blocks.rows
        let buffer = stackBuffer(floats: rows * pt.shape[3])
        bufferOfPointer[buffer] = "patch rows of %\(blocks.patches)"
        return (buffer, { [self] k in
            let first = LLVMBuildMul(b, k, constI64(rows), "")!
            let left = LLVMBuildSub(b, constI64(total), first, "")!
            let short = LLVMBuildICmp(b, LLVMIntSLT, left, constI64(rows), "")
            return (first, LLVMBuildSelect(b, short, left, constI64(rows), "")!)
        })
    }

    /// A 64-byte aligned float32 buffer in this kernel's stack frame.
    func stackBuffer(floats: Int) -> LLVMValueRef {
        let buffer = entryAlloca(LLVMArrayType(f32, UInt32(floats)))
        LLVMSetAlignment(buffer, 64)
        return buffer
    }

    /// Part `part` of `count` items split into `parts` fixed parts: its first item and the one
    /// after its last.
    func partRange(_ part: LLVMValueRef, of count: Int, parts: Int) -> (LLVMValueRef, LLVMValueRef) {
        let first = LLVMBuildUDiv(b, LLVMBuildMul(b, part, constI64(count), ""), constI64(parts), "")!
        let end = LLVMBuildUDiv(b, LLVMBuildMul(b, LLVMBuildAdd(b, part, constI64(1), ""), constI64(count), ""), constI64(parts), "")!
        return (first, end)
    }

    /// `p` advanced by `i * stride` bytes.
    func advanced(_ p: LLVMValueRef, _ i: LLVMValueRef, stride: Int) -> LLVMValueRef {
        var idx: [LLVMValueRef?] = [LLVMBuildMul(b, i, constI64(stride), "")!]
        return LLVMBuildGEP2(b, i8, p, &idx, 1, "")!
    }

    /// A convolution computed from blocks of patch rows (a KernelPlan.Kernel.patchProduct): for each
    /// block, its patches into a stack buffer, then its rows of the product straight into the output.
    func emitPatchProduct(_ d: Instruction, _ blocks: KernelPlan.PatchBlocks) {
        guard case .dot(_, let tb) = d.op else { preconditionFailure("patch product of \(d.op.mnemonic)") }
        let patches = inst[blocks.patches]!
        let bt = types[d.operands[1]]!, t = d.type!, k = patches.type!.shape[3], n = t.shape[1]
        let (buffer, bounds) = patchBlockBuffer(blocks)
        let bPtr = bufferPointer(d.operands[1])!, out = base(d.id)!
        loopNest([blocks.count]) { block in
            let (first, rows) = bounds(block.multi[0])
            gatherPatchRows(patches, first: first, rows: rows, into: buffer)
            productCall(.float32, false, tb, blocks.rows, n, k, alpha: nil, accumulate: false,
                        a: buffer, lda: k, b: bPtr, ldb: bt.shape[1], c: advanced(out, first, stride: n * 4), ldc: n, dynamicM: rows)
        }
    }

    /// Parts [begin, end) (all parts when not split) of a weight gradient `dot(patches, dy,
    /// transpose_a)` computed from blocks of patch rows (a KernelPlan.Kernel.patchGradient): part q
    /// gathers each of its blocks' patches into a stack buffer and adds patches' x dy for those
    /// rows into slot q of the scratch.
    func emitPatchGradientParts(_ d: Instruction, _ blocks: KernelPlan.PatchBlocks, parts: Int, scratch offset: Int) {
        let patches = inst[blocks.patches]!
        let t = d.type!, k = patches.type!.shape[3], n = t.shape[1]
        let (buffer, bounds) = patchBlockBuffer(blocks)
        let scratch = arenaPointer(offset, "scratch\(d.id)"), dy = bufferPointer(d.operands[1])!
        let (begin, end) = splitRange ?? (constI64(0), constI64(parts))
        splitRange = nil
        loop(from: begin, to: end) { part in
            let slot = LLVMBuildMul(b, part, constI64(k * n), "")!
            loop(k * n) { e in store(constValue(0, .float32), scratch, LLVMBuildAdd(b, slot, e, "")!, .float32) }
            let (firstBlock, endBlock) = partRange(part, of: blocks.count, parts: parts)
            loop(from: firstBlock, to: endBlock) { block in
                let (first, rows) = bounds(block)
                gatherPatchRows(patches, first: first, rows: rows, into: buffer)
                productCall(.float32, true, false, k, n, blocks.rows, alpha: nil, accumulate: true,
                            a: buffer, lda: k, b: advanced(dy, first, stride: n * 4), ldb: n, c: advanced(scratch, part, stride: k * n * 4), ldc: n, dynamicK: rows)
            }
        }
    }

    /// Each image element sums the patch entries that read it: for window offset (kh, kw) the
    /// patch position is (h + lo - kh*d) / s when that divides evenly and lands inside.
    /// With `perImageProduct`, the product `i` reads through a reshape, computed image by image.
    func emitUnpatches(_ i: Instruction, perImageProduct: Int?) {
        guard case .unpatches(let window, let strides, let dil, let lo, _, _) = i.op else { preconditionFailure("unpatches of \(i.op.mnemonic)") }
        let t = i.type!
        let element = unpatchesElement(i, window, strides, dil, lo)
        if let d = perImageProduct {
            emitPerImageProduct(i, inst[d]!) { o, linear in self.store(element(o), self.base(i.id)!, linear, t.dtype) }
            return
        }
        loopNest(t.shape) { outIdx in store(element(outIdx.multi), base(i.id)!, outIdx.linear, t.dtype) }
    }

    /// The generator of unpatches' image element at multi-index o.
    func unpatchesElement(_ i: Instruction, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int]) -> ([LLVMValueRef]) -> LLVMValueRef {
        let p = i.operands[0], ps = types[p]!.shape, t = i.type!
        let c = t.shape[3]
        // Non-overlapping windows (pooling with stride >= window): each image element comes from
        // at most one patch entry, found by one division instead of a loop over the window.
        if (0..<2).allSatisfy({ strides[$0] >= (window[$0] - 1) * dil[$0] + 1 }) && dil.allSatisfy({ $0 == 1 }) && lo.allSatisfy({ $0 >= 0 }) {
            return { [self] o in
                var inside = LLVMConstInt(i1, 1, 0)!
                var pos: [LLVMValueRef] = [], taps: [LLVMValueRef] = []
                for d in 0..<2 {
                    let y = LLVMBuildAdd(b, o[d + 1], constI64(lo[d]), "")!
                    let q = LLVMBuildUDiv(b, y, constI64(strides[d]), "")!, k = LLVMBuildURem(b, y, constI64(strides[d]), "")!
                    inside = LLVMBuildAnd(b, inside, LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntULT, k, constI64(window[d]), ""),
                                                                 LLVMBuildICmp(b, LLVMIntULT, q, constI64(ps[d + 1]), ""), ""), "")
                    pos.append(clamp(q, ps[d + 1]))
                    taps.append(clamp(k, window[d]))
                }
                let tap = LLVMBuildAdd(b, LLVMBuildMul(b, taps[0], constI64(window[1]), ""), taps[1], "")!
                let v = element(p, lead: [o[0], pos[0], pos[1]], major: tap, minor: o[3], minorExtent: c)
                return LLVMBuildSelect(b, inside, v, constValue(0, t.dtype), "")!
            }
        }
        return { [self] o in
            var acc: LLVMValueRef? = nil
            for kh in 0..<window[0] { for kw in 0..<window[1] {
                var inside = LLVMConstInt(i1, 1, 0)!
                var pos: [LLVMValueRef] = []
                for (d, k) in [(0, kh), (1, kw)] {
                    let y = LLVMBuildSub(b, LLVMBuildAdd(b, o[d + 1], constI64(lo[d]), ""), constI64(k * dil[d]), "")!
                    if strides[d] == 1 {
                        inside = LLVMBuildAnd(b, inside, inRange(y, ps[d + 1]), "")
                        pos.append(clamp(y, ps[d + 1]))
                        continue
                    }
                    let q = LLVMBuildSDiv(b, y, constI64(strides[d]), "")!
                    let exact = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildSRem(b, y, constI64(strides[d]), ""), constI64(0), "")
                    inside = LLVMBuildAnd(b, inside, LLVMBuildAnd(b, exact, LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntSGE, y, constI64(0), ""), inRange(q, ps[d + 1]), ""), ""), "")
                    pos.append(clamp(q, ps[d + 1]))
                }
                let k = LLVMBuildAdd(b, constI64((kh * window[1] + kw) * c), o[3], "")!
                let v = element(p, Index(multi: [o[0], pos[0], pos[1], k], shape: ps, emitter: self))
                let a = acc ?? constValue(0, t.dtype)
                acc = LLVMBuildSelect(b, inside, binary(.add, a, v, t.dtype), a, "")
            } }
            return acc ?? constValue(0, t.dtype)
        }
    }

    /// Unpatches of a product computed per image (a KernelPlan.Kernel.perImageProduct): for each image,
    /// its rows of the product into a stack buffer, then `body` for each of the image's elements
    /// (multi-index and linear index), reading the product from that buffer.
    func emitPerImageProduct(_ u: Instruction, _ d: Instruction, _ body: ([LLVMValueRef], LLVMValueRef) -> Void) {
        guard case .dot(_, let tb) = d.op else { preconditionFailure("per-image product of \(d.op.mnemonic)") }
        let t = u.type!, ps = types[u.operands[0]]!.shape
        let at = types[d.operands[0]]!, bt = types[d.operands[1]]!
        let rows = ps[1] * ps[2], cols = ps[3], k = at.shape[1]
        let imageElements = t.shape.dropFirst().reduce(1, *)
        let local = stackBuffer(floats: rows * cols)
        let aPtr = bufferPointer(d.operands[0])!, bPtr = bufferPointer(d.operands[1])!
        loopNest([t.shape[0]]) { image in
            let n = image.multi[0]
            productCall(.float32, false, tb, rows, cols, k, alpha: nil, accumulate: false,
                        a: advanced(aPtr, n, stride: rows * k * 4), lda: k, b: bPtr, ldb: bt.shape[1], c: local, ldc: cols)
            // Indexed like the whole product: the buffer sits where this image's rows would.
            let rowsOfImage = advanced(local, n, stride: -rows * cols * 4)
            localBuffers[d.id] = rowsOfImage
            bufferOfPointer[rowsOfImage] = "image rows of %\(d.id)"
            loopNest(Array(t.shape.dropFirst())) { idx in
                body([n] + idx.multi, LLVMBuildAdd(b, LLVMBuildMul(b, n, constI64(imageElements), "")!, idx.linear, "")!)
            }
            localBuffers[d.id] = nil
        }
    }

    // MARK: random numbers (bit-identical to ReferenceEvaluator.randomBits)

    func mix64(_ z0: LLVMValueRef) -> LLVMValueRef {
        var z = z0
        z = LLVMBuildMul(b, LLVMBuildXor(b, z, LLVMBuildLShr(b, z, constI64(30), ""), ""), LLVMConstInt(i64, 0xBF58_476D_1CE4_E5B9, 0), "")
        z = LLVMBuildMul(b, LLVMBuildXor(b, z, LLVMBuildLShr(b, z, constI64(27), ""), ""), LLVMConstInt(i64, 0x94D0_49BB_1331_11EB, 0), "")
        return LLVMBuildXor(b, z, LLVMBuildLShr(b, z, constI64(31), ""), "")
    }

    func randomBits(seed: UInt64, counter: LLVMValueRef, count: Int, index: LLVMValueRef, draw: LLVMValueRef) -> LLVMValueRef {
        let salt = LLVMBuildMul(b, LLVMBuildAdd(b, draw, constI64(1), ""), LLVMConstInt(i64, 0x9E37_79B9_7F4A_7C15, 0), "")!
        let key = mix64(LLVMBuildAdd(b, LLVMConstInt(i64, seed, 0), salt, "")!)
        let ctr = LLVMBuildAdd(b, LLVMBuildMul(b, counter, constI64(count), ""), index, "")!
        let mixed = mix64(LLVMBuildMul(b, ctr, LLVMConstInt(i64, 0x9E37_79B9_7F4A_7C15, 0), "")!)
        return mix64(LLVMBuildXor(b, key, mixed, "")!)
    }

    func normal(_ bits: LLVMValueRef) -> LLVMValueRef {
        let u1 = LLVMBuildFMul(b, LLVMBuildUIToFP(b, LLVMBuildAdd(b, LLVMBuildLShr(b, bits, constI64(40), ""), constI64(1), ""), f64, ""),
                               LLVMConstReal(f64, 0x1p-24), "")!
        let u2 = LLVMBuildFMul(b, LLVMBuildUIToFP(b, LLVMBuildAnd(b, LLVMBuildLShr(b, bits, constI64(16), ""), constI64(0xFF_FFFF), ""), f64, ""),
                               LLVMConstReal(f64, 0x1p-24), "")!
        let r = intrinsic("llvm.sqrt", [f64], [LLVMBuildFMul(b, LLVMConstReal(f64, -2), intrinsic("llvm.log", [f64], [u1]), "")!])
        return LLVMBuildFMul(b, r, intrinsic("llvm.cos", [f64], [LLVMBuildFMul(b, LLVMConstReal(f64, 2 * Double.pi), u2, "")!]), "")
    }

    func emitRandom(_ i: Instruction, _ idx: Index, _ kind: RandomKind, _ seed: UInt64) -> LLVMValueRef {
        let t = i.type!
        let counter = element(i.operands[0], Index(multi: [], linear: constI64(0), shape: [], emitter: self))
        let n = t.elementCount
        let bits = randomBits(seed: seed, counter: counter, count: n, index: idx.linear, draw: constI64(0))
        switch kind {
        case .bits:
            return LLVMBuildLShr(b, bits, constI64(1), "")
        case .uniform:
            if t.dtype == .float32 {
                return LLVMBuildFMul(b, LLVMBuildUIToFP(b, LLVMBuildLShr(b, bits, constI64(40), ""), f32, ""), LLVMConstReal(f32, 0x1p-24), "")
            }
            return LLVMBuildFMul(b, LLVMBuildUIToFP(b, LLVMBuildLShr(b, bits, constI64(11), ""), f64, ""), LLVMConstReal(f64, 0x1p-53), "")
        case .normal:
            return cast(normal(bits), .float64, t.dtype)
        case .truncatedNormal:
            // Redraw (draw 1, 2, ...) until within two standard deviations.
            let slot = entryAlloca(f64), draw = entryAlloca(i64)
            LLVMBuildStore(b, normal(bits), slot)
            LLVMBuildStore(b, constI64(1), draw)
            let check = LLVMAppendBasicBlockInContext(ctx, fn, "tn.check")!
            let redraw = LLVMAppendBasicBlockInContext(ctx, fn, "tn.redraw")!
            let done = LLVMAppendBasicBlockInContext(ctx, fn, "tn.done")!
            LLVMBuildBr(b, check)
            LLVMPositionBuilderAtEnd(b, check)
            let v = LLVMBuildLoad2(b, f64, slot, "")!
            let far = LLVMBuildFCmp(b, LLVMRealOGT, intrinsic("llvm.fabs", [f64], [v]), LLVMConstReal(f64, 2), "")
            LLVMBuildCondBr(b, far, redraw, done)
            LLVMPositionBuilderAtEnd(b, redraw)
            let k = LLVMBuildLoad2(b, i64, draw, "")!
            LLVMBuildStore(b, normal(randomBits(seed: seed, counter: counter, count: n, index: idx.linear, draw: k)), slot)
            LLVMBuildStore(b, LLVMBuildAdd(b, k, constI64(1), ""), draw)
            LLVMBuildBr(b, check)
            LLVMPositionBuilderAtEnd(b, done)
            return cast(LLVMBuildLoad2(b, f64, slot, "")!, .float64, t.dtype)
        }
    }
}
