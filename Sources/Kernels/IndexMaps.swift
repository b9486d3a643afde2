import KilnIR
import KilnPasses

/// Element generators for the index-map primitives (pad, concat, gather, patches) and the
/// window reductions. Out-of-range positions are clamped before loading, then replaced by a
/// select, so no load ever leaves its buffer and the loops stay vectorisable.
extension KernelWriter {
    func clamp(_ v: RValue, _ n: Int) -> RValue {
        let lo = r.select(r.icmp(.slt, v, c64(0)), c64(0), v)
        return r.select(r.icmp(.sgt, lo, c64(n - 1)), c64(n - 1), lo)
    }

    func inRange(_ v: RValue, _ n: Int) -> RValue {
        r.int(.and, r.icmp(.sge, v, c64(0)), r.icmp(.slt, v, c64(n)))
    }

    func pad(_ i: Instruction, _ idx: Index, _ low: [Int], _ mode: PadMode) -> RValue {
        let x = i.operands[0], xs = types[x]!.shape
        var inside = trueValue
        var multi: [RValue] = []
        for d in 0..<xs.count {
            let p = r.int(.sub, idx.multi[d], c64(low[d]))
            let n = xs[d]
            switch mode {
            case .constant:
                inside = r.int(.and, inside, inRange(p, n))
                multi.append(clamp(p, n))
            case .reflect, .symmetric:
                let neg = r.icmp(.slt, p, c64(0))
                let over = r.icmp(.sge, p, c64(n))
                let below = mode == .reflect ? r.neg(p) : r.int(.sub, c64(-1), p)
                let above = r.int(.sub, c64(mode == .reflect ? 2 * (n - 1) : 2 * n - 1), p)
                let src = r.select(neg, below, r.select(over, above, p))
                multi.append(clamp(src, n))
            }
        }
        let v = element(x, Index(multi: multi, shape: xs, writer: self))
        if mode != .constant { return v }
        let border = element(i.operands[1], Index(multi: [], linear: c64(0), shape: [], writer: self))
        return r.select(inside, v, border)
    }

    func concat(_ i: Instruction, _ idx: Index, _ axis: Int) -> RValue {
        var result: RValue?
        var offset = 0
        for o in i.operands {
            let s = types[o]!.shape
            var multi = idx.multi
            let local = r.int(.sub, multi[axis], c64(offset))
            multi[axis] = clamp(local, s[axis])
            let v = element(o, Index(multi: multi, shape: s, writer: self))
            if let prior = result {
                let mine = r.icmp(.sge, idx.multi[axis], c64(offset))
                result = r.select(mine, v, prior)
            } else { result = v }
            offset += s[axis]
        }
        return result!
    }

    func gather(_ i: Instruction, _ idx: Index, _ axis: Int, _ batchDims: Int) -> RValue {
        let p = i.operands[0], ind = i.operands[1]
        let ps = types[p]!.shape, isShape = types[ind]!.shape
        let idxRank = isShape.count - batchDims
        let o = idx.multi
        let position = Array(o.prefix(batchDims)) + Array(o[axis..<(axis + idxRank)])
        let raw = element(ind, Index(multi: position, shape: isShape, writer: self))
        let k = types[ind]!.dtype == .int64 ? raw : r.convert(.sext, raw, to: .i64)
        let src = Array(o.prefix(axis)) + [clamp(k, ps[axis])] + Array(o.dropFirst(axis + idxRank))
        let v = element(p, Index(multi: src, shape: ps, writer: self))
        return r.select(inRange(k, ps[axis]), v, constValue(0, types[p]!.dtype))
    }

    func patch(_ i: Instruction, _ idx: Index, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int]) -> RValue {
        let x = i.operands[0], xs = types[x]!.shape
        let c = xs[3], o = idx.multi
        let q = o[3]
        let kh = r.int(.udiv, q, c64(window[1] * c))
        let kw = r.int(.urem, r.int(.udiv, q, c64(c)), c64(window[1]))
        let ci = r.int(.urem, q, c64(c))
        func coord(_ out: RValue, _ k: RValue, _ d: Int) -> RValue {
            let base = r.int(.mul, out, c64(strides[d]))
            return r.int(.sub, r.int(.add, base, r.int(.mul, k, c64(dil[d]))), c64(lo[d]))
        }
        let y = coord(o[1], kh, 0), xx = coord(o[2], kw, 1)
        let inside = r.int(.and, inRange(y, xs[1]), inRange(xx, xs[2]))
        let v = element(x, Index(multi: [o[0], clamp(y, xs[1]), clamp(xx, xs[2]), ci], shape: xs, writer: self))
        return r.select(inside, v, constValue(0, xs.isEmpty ? .float32 : types[x]!.dtype))
    }

    // MARK: kernels with an inner reduction

    func writeArgReduce(_ i: Instruction) {
        guard case .argReduce(let a, let axis, _) = i.op else { preconditionFailure("argReduce kernel of \(i.op.mnemonic)") }
        let x = i.operands[0], xt = types[x]!, t = i.type!
        if axis < xt.rank - 1 && xt.shape[axis] <= Self.unrolledReductionExtent {
            // A short reduced axis with contiguous elements after it (pooling's window taps):
            // unrolled, so the loop over those elements is innermost and vectorises.
            loopNest(t.shape) { outIdx in
                func at(_ k: Int) -> RValue {
                    var m = outIdx.multi
                    m.insert(c64(k), at: axis)
                    return element(x, Index(multi: m, shape: xt.shape, writer: self))
                }
                var best = at(0), bestK = c64(0)
                for k in 1..<max(xt.shape[axis], 1) {
                    let v = at(k)
                    let better = compare(a == .argmax ? .gt : .lt, v, best, xt.dtype)
                    best = r.select(better, v, best)
                    bestK = r.select(better, c64(k), bestK)
                }
                store(cast(bestK, .int64, t.dtype), base(i.id)!, outIdx.linear, t.dtype)
            }
            return
        }
        let bestV = r.slot(.register(xt.dtype), initial: nil), bestK = r.slot(.i64, initial: nil)
        loopNest(t.shape) { outIdx in
            var first = outIdx.multi
            first.insert(c64(0), at: axis)
            r.store(element(x, Index(multi: first, shape: xt.shape, writer: self)), bestV)
            r.store(c64(0), bestK)
            r.loop(count: xt.shape[axis], hints: LoopHints()) { k in
                var m = outIdx.multi
                m.insert(k, at: axis)
                let v = element(x, Index(multi: m, shape: xt.shape, writer: self))
                let best = r.load(bestV)
                // Strictly better only, so ties keep the first index.
                let better = compare(a == .argmax ? .gt : .lt, v, best, xt.dtype)
                r.store(r.select(better, v, best), bestV)
                r.store(r.select(better, k, r.load(bestK)), bestK)
            }
            store(cast(r.load(bestK), .int64, t.dtype), base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    func writeReduceWindow(_ i: Instruction) {
        guard case .reduceWindow(let red, let window, let strides, let lo, _) = i.op else { preconditionFailure("window kernel of \(i.op.mnemonic)") }
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let op = red.combiner
        // Windows are small and fixed: unroll them; without padding no bound can be crossed.
        let unpadded = lo.allSatisfy { $0 == 0 } && (0..<xt.rank).allSatisfy { d in (t.shape[d] - 1) * strides[d] + window[d] <= xt.shape[d] }
        let taps = (0..<window.reduce(1, *)).map { k -> [Int] in
            var rest = k
            return window.reversed().map { w -> Int in defer { rest /= w }; return rest % w }.reversed()
        }
        loopNest(t.shape) { outIdx in
            var acc: RValue? = nil
            for w in taps {
                var inside = trueValue
                var multi: [RValue] = []
                for d in 0..<xt.rank {
                    let base = r.int(.mul, outIdx.multi[d], c64(strides[d]))
                    let p = r.int(.add, base, c64(w[d] - lo[d]))
                    if unpadded { multi.append(p); continue }
                    inside = r.int(.and, inside, inRange(p, xt.shape[d]))
                    multi.append(clamp(p, xt.shape[d]))
                }
                let v = element(x, Index(multi: multi, shape: xt.shape, writer: self))
                let a = acc ?? reduceIdentity(red, t.dtype)
                acc = unpadded ? binary(op, a, v, t.dtype) : r.select(inside, binary(op, a, v, t.dtype), a)
            }
            store(acc!, base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    /// Patches as a loop nest over (n, oh, ow, kh, kw, c): the destination is contiguous in c and
    /// no index needs dividing.
    func writePatchesKernel(_ i: Instruction) {
        guard case .patches(let window, let strides, let dil, let lo, _) = i.op else { preconditionFailure("patches kernel of \(i.op.mnemonic)") }
        let t = i.type!, out = base(i.id)!
        loopNest(Array(t.shape.prefix(3))) { idx in
            let m = idx.multi
            storePatch(i, window, strides, dil, lo, n: m[0], oh: m[1], ow: m[2], into: out, at: r.int(.mul, idx.linear, c64(t.shape[3])))
        }
    }

    /// Writes the patch at output position (n, oh, ow), KH*KW*C values, to out[at...].
    func storePatch(_ i: Instruction, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int],
                    n: RValue, oh: RValue, ow: RValue, into out: RValue, at rowBase: RValue) {
        let x = i.operands[0], xs = types[x]!.shape, t = i.type!
        func coord(_ o: RValue, _ k: RValue, _ d: Int) -> RValue {
            r.int(.sub, r.int(.add, r.int(.mul, o, c64(strides[d])), r.int(.mul, k, c64(dil[d]))), c64(lo[d]))
        }
        func value(_ y: RValue, _ xx: RValue, _ c: RValue) -> RValue {
            let inside = r.int(.and, inRange(y, xs[1]), inRange(xx, xs[2]))
            let v = element(x, Index(multi: [n, clamp(y, xs[1]), clamp(xx, xs[2]), c], shape: xs, writer: self))
            return r.select(inside, v, constValue(0, t.dtype))
        }
        if xs[3] < Self.shortInnerExtent && t.shape[3] <= Self.unrolledPatchWidth {
            // Few channels (a grey image: 9 values per patch): loops over kh, kw and c would be
            // too short to vectorise and cost more than the copies, so a patch is straight-line code.
            for kh in 0..<window[0] {
                let y = coord(oh, c64(kh), 0)
                for kw in 0..<window[1] {
                    let xx = coord(ow, c64(kw), 1)
                    for ci in 0..<xs[3] {
                        let k = (kh * window[1] + kw) * xs[3] + ci
                        store(value(y, xx, c64(ci)), out, r.int(.add, rowBase, c64(k)), t.dtype)
                    }
                }
            }
            return
        }
        loopNest([window[0], window[1], xs[3]]) { idx in
            let m = idx.multi
            store(value(coord(oh, m[0], 0), coord(ow, m[1], 1), m[2]), out, r.int(.add, rowBase, idx.linear), t.dtype)
        }
    }

    /// Each image element sums the patch entries that read it: for window offset (kh, kw) the
    /// patch position is (h + lo - kh*d) / s when that divides evenly and lands inside. With
    /// `perImageProduct`, the product the patches reshape is computed image by image.
    func writeUnpatches(_ i: Instruction, perImageProduct: Int?) {
        guard case .unpatches(let window, let strides, let dil, let lo, _, _) = i.op else { preconditionFailure("unpatches kernel of \(i.op.mnemonic)") }
        let t = i.type!
        let element = unpatchesElement(i, window, strides, dil, lo)
        if let d = perImageProduct {
            writePerImageProduct(i, inst[d]!) { o, linear in self.store(element(o), self.base(i.id)!, linear, t.dtype) }
            return
        }
        loopNest(t.shape) { outIdx in store(element(outIdx.multi), base(i.id)!, outIdx.linear, t.dtype) }
    }

    /// The generator of unpatches' image element at multi-index o.
    func unpatchesElement(_ i: Instruction, _ window: [Int], _ strides: [Int], _ dil: [Int], _ lo: [Int]) -> ([RValue]) -> RValue {
        let p = i.operands[0], ps = types[p]!.shape, t = i.type!
        let c = t.shape[3]
        // Non-overlapping windows (pooling with stride >= window): each image element comes from
        // at most one patch entry, found by one division instead of a loop over the window.
        if (0..<2).allSatisfy({ strides[$0] >= (window[$0] - 1) * dil[$0] + 1 }) && dil.allSatisfy({ $0 == 1 }) && lo.allSatisfy({ $0 >= 0 }) {
            return { [self] o in
                var inside = trueValue
                var pos: [RValue] = [], taps: [RValue] = []
                for d in 0..<2 {
                    let y = r.int(.add, o[d + 1], c64(lo[d]))
                    let q = r.int(.udiv, y, c64(strides[d])), k = r.int(.urem, y, c64(strides[d]))
                    inside = r.int(.and, inside, r.int(.and, r.icmp(.ult, k, c64(window[d])), r.icmp(.ult, q, c64(ps[d + 1]))))
                    pos.append(clamp(q, ps[d + 1]))
                    taps.append(clamp(k, window[d]))
                }
                let tap = r.int(.add, r.int(.mul, taps[0], c64(window[1])), taps[1])
                let v = element(p, lead: [o[0], pos[0], pos[1]], major: tap, minor: o[3], minorExtent: c)
                return r.select(inside, v, constValue(0, t.dtype))
            }
        }
        return { [self] o in
            var acc: RValue? = nil
            for kh in 0..<window[0] { for kw in 0..<window[1] {
                var inside = trueValue
                var pos: [RValue] = []
                for (d, k) in [(0, kh), (1, kw)] {
                    let y = r.int(.sub, r.int(.add, o[d + 1], c64(lo[d])), c64(k * dil[d]))
                    if strides[d] == 1 {
                        inside = r.int(.and, inside, inRange(y, ps[d + 1]))
                        pos.append(clamp(y, ps[d + 1]))
                        continue
                    }
                    let q = r.int(.sdiv, y, c64(strides[d]))
                    let exact = r.icmp(.eq, r.int(.srem, y, c64(strides[d])), c64(0))
                    inside = r.int(.and, inside, r.int(.and, exact, r.int(.and, r.icmp(.sge, y, c64(0)), inRange(q, ps[d + 1]))))
                    pos.append(clamp(q, ps[d + 1]))
                }
                let k = r.int(.add, c64((kh * window[1] + kw) * c), o[3])
                let v = element(p, Index(multi: [o[0], pos[0], pos[1], k], shape: ps, writer: self))
                let a = acc ?? constValue(0, t.dtype)
                acc = r.select(inside, binary(.add, a, v, t.dtype), a)
            } }
            return acc ?? constValue(0, t.dtype)
        }
    }
}
