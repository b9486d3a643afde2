import KilnIR
import KilnPasses

/// Reductions: over trailing or inner axes (a loop per output), over leading axes (rows streamed
/// into the output), blocked floating-point sums, and reductions split into parts on the pool.
extension KernelWriter {
    /// Elements of the innermost reduced axis a floating-point sum adds in one vectorised run.
    static let reductionBlock = 4096

    /// With `wide` (a blocked reduction, over leading axes), rows are summed in blocks into Doubles.
    func writeReduce(_ i: Instruction, wide blocked: KernelPlan.WideSum?) {
        guard case .reduce(let red, let axes) = i.op else { preconditionFailure("reduction of \(i.op.mnemonic)") }
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let kept = (0..<xt.rank).filter { !axes.contains($0) }
        let op = red.combiner
        if !kept.isEmpty && !axes.isEmpty && axes.max()! < kept.min()! {
            // Leading axes reduced (batch statistics, bias gradients): stream the input row by
            // row into the output, so reads are contiguous and the inner loop vectorises.
            let out = base(i.id)!
            let reduced = axes.map { xt.shape[$0] }
            if let blocked {
                let wide = scratch(blocked.offset, "wide\(i.id)")
                writeBlockedRows(x, reduced: reduced, t, from: c64(0), to: leadingRows(x, reduced), blockRows: blocked.blockRows, block: (out, nil), wide: (wide, nil))
                loopNest(t.shape) { o in store(narrow(load(wide, o.linear, .float64), t.dtype), out, o.linear, t.dtype) }
                return
            }
            loopNest(t.shape) { o in store(reduceIdentity(red, t.dtype), out, o.linear, t.dtype) }
            loopNest(reduced, rows: batchExtent(x)) { rIdx in
                accumulatorLoop(t) { o in
                    let v = element(x, Index(multi: rIdx.multi + o.multi, shape: xt.shape, writer: self))
                    store(binary(op, load(out, o.linear, t.dtype), v, t.dtype), out, o.linear, t.dtype)
                }
            }
            return
        }
        let reduced = axes.map { xt.shape[$0] }
        let live = reduced.indices.filter { reduced[$0] > 1 }
        if red == .sum, t.dtype.isFloatingPoint, !reduced.contains(0), let innerPos = live.last,
           reduced.reduce(1, *) > reduced[innerPos] || reduced[innerPos] > Self.reductionBlock {
            writeBlockedSum(i, axes: axes, kept: kept, innerPos: innerPos)
            return
        }
        let acc = r.slot(.register(t.dtype), initial: nil)
        loopNest(t.shape) { outIdx in
            r.store(reduceIdentity(red, t.dtype), acc)
            loopNest(reduced, reassociate: true, rows: axes.first == 0 ? batchExtent(x) : nil) { rIdx in
                var multi = [RValue](repeating: c64(0), count: xt.rank)
                for (k, a) in kept.enumerated() { multi[a] = outIdx.multi[k] }
                for (k, a) in axes.enumerated() { multi[a] = rIdx.multi[k] }
                let v = element(x, Index(multi: multi, shape: xt.shape, writer: self))
                let a = r.load(acc)
                r.store(binary(op, a, v, t.dtype), acc)
            }
            store(r.load(acc), base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    /// A floating-point sum over trailing or inner axes, more than one run of the innermost reduced
    /// axis per output: each run of at most `reductionBlock` elements is summed by the vectorised
    /// loop (vector accumulators, a few dozen elements each) and added into a Double per output,
    /// so the error no longer grows with the element count. Each element is still read once.
    func writeBlockedSum(_ i: Instruction, axes: [Int], kept: [Int], innerPos: Int) {
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let reduced = axes.map { xt.shape[$0] }, inner = reduced[innerPos]
        let acc = r.slot(.register(t.dtype), initial: nil), wide = r.slot(.f64, initial: nil)
        loopNest(t.shape) { outIdx in
            r.store(r.constant(float: 0, .f64), wide)
            var multi = [RValue](repeating: c64(0), count: xt.rank)
            for (k, a) in kept.enumerated() { multi[a] = outIdx.multi[k] }
            func run(_ lo: RValue, _ hi: RValue?) {
                r.store(reduceIdentity(.sum, t.dtype), acc)
                let body = { (j: RValue) in
                    multi[axes[innerPos]] = j
                    let v = self.element(x, Index(multi: multi, shape: xt.shape, writer: self))
                    let a = self.r.load(acc)
                    self.r.store(self.binary(.add, a, v, t.dtype), acc)
                }
                if let hi { r.loop(from: lo, to: hi, hints: LoopHints(vectorize: true), body) } else {
                    r.loop(count: inner, hints: LoopHints(vectorize: true), body)
                }
                let w = r.load(wide)
                r.store(r.float(.add, w, widen(r.load(acc), t.dtype)), wide)
            }
            // The reduced axes before the innermost one with extent > 1, as rolled loops.
            // The batch's rows, when the reduced axis 0 carries it.
            let batchRows = axes.first == 0 ? batchExtent(x) : nil
            func outer(_ k: Int) {
                if k == innerPos, k == 0, let rows = batchRows {
                    let block = c64(Self.reductionBlock)
                    let blocks = r.int(.sdiv, r.int(.add, rows, c64(Self.reductionBlock - 1)), block)
                    r.loop(from: c64(0), to: blocks, hints: LoopHints(keepRolled: true)) { kb in
                        let lo = r.int(.mul, kb, block)
                        let next = r.int(.add, lo, block)
                        run(lo, r.select(r.icmp(.slt, next, rows), next, rows))
                    }
                    return
                }
                if k == innerPos {
                    if inner <= Self.reductionBlock { return run(c64(0), nil) }
                    let blocks = (inner + Self.reductionBlock - 1) / Self.reductionBlock
                    r.loop(count: blocks, hints: LoopHints(keepRolled: true)) { kb in
                        let lo = r.int(.mul, kb, c64(Self.reductionBlock))
                        let next = r.int(.add, lo, c64(Self.reductionBlock))
                        run(lo, r.select(r.icmp(.slt, next, c64(inner)), next, c64(inner)))
                    }
                    return
                }
                if reduced[k] == 1 { return outer(k + 1) }
                let body = { (iv: RValue) in
                    multi[axes[k]] = iv
                    outer(k + 1)
                }
                if k == 0, let rows = batchRows {
                    r.loop(from: c64(0), to: rows, hints: LoopHints(keepRolled: true), body)
                } else {
                    r.loop(count: reduced[k], hints: LoopHints(keepRolled: true), body)
                }
            }
            outer(0)
            store(narrow(r.load(wide), t.dtype), base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    /// Rows [begin, end) of a floating-point sum over leading axes, in blocks of
    /// `blockRows`: each block is streamed row by row into `block` (element
    /// type, contiguous reads, vectorised over the output), then added into the Doubles of `wide`
    /// and cleared. Buffers are (base, slot offset in elements).
    func writeBlockedRows(_ x: Int, reduced: [Int], _ t: TensorType, from begin: RValue, to end: RValue, blockRows rowsPerBlock: Int,
                          block: (RValue, RValue?), wide: (RValue, RValue?)) {
        let xt = types[x]!
        func at(_ slot: RValue?, _ o: Index) -> RValue { slot.map { r.int(.add, $0, o.linear) } ?? o.linear }
        loopNest(t.shape) { o in
            store(constValue(0, t.dtype), block.0, at(block.1, o), t.dtype)
            store(r.constant(float: 0, .f64), wide.0, at(wide.1, o), .float64)
        }
        let count = r.int(.sub, end, begin)
        let blocks = r.int(.udiv, r.int(.add, count, c64(rowsPerBlock - 1)), c64(rowsPerBlock))
        r.loop(from: c64(0), to: blocks, hints: LoopHints()) { kb in
            let lo = r.int(.add, begin, r.int(.mul, kb, c64(rowsPerBlock)))
            let next = r.int(.add, lo, c64(rowsPerBlock))
            let hi = r.select(r.icmp(.slt, next, end), next, end)
            r.loop(from: lo, to: hi, hints: LoopHints()) { row in
                let rIdx = Index(linear: row, shape: reduced, writer: self).multi
                accumulatorLoop(t) { o in
                    let v = element(x, Index(multi: rIdx + o.multi, shape: xt.shape, writer: self))
                    store(binary(.add, load(block.0, at(block.1, o), t.dtype), v, t.dtype), block.0, at(block.1, o), t.dtype)
                }
            }
            loopNest(t.shape) { o in
                let w = load(wide.0, at(wide.1, o), .float64)
                store(r.float(.add, w, widen(load(block.0, at(block.1, o), t.dtype), t.dtype)), wide.0, at(wide.1, o), .float64)
                store(constValue(0, t.dtype), block.0, at(block.1, o), t.dtype)
            }
        }
    }

    /// The loop over the outputs `t` of a reduction over leading axes, run once per row streamed
    /// into them: unrolled once vectorised where the outputs fit four vectors, so they stay in
    /// registers across the rows (a loop of 32 float32 sums left rolled sent each row's two
    /// vectors through memory and back, 9.3 us a [4096, 32] sum on two cores against 4.2 unrolled).
    func accumulatorLoop(_ t: TensorType, _ body: (Index) -> Void) {
        loopNest(t.shape, unrollInnermost: t.byteCount <= 4 * target.vectorBytes, body)
    }

    /// The rows of a reduction over `x`'s leading axes `reduced` (their extents): the run's, when
    /// `x` carries the batch.
    func leadingRows(_ x: Int, _ reduced: [Int]) -> RValue {
        guard let n = batchExtent(x) else { return c64(reduced.reduce(1, *)) }
        return r.int(.mul, n, c64(reduced.dropFirst().reduce(1, *)))
    }

    /// Parts [begin, end) of a split reduction over leading axes: part q reduces its share of the
    /// rows into slot q of the scratch, streaming each row so reads are contiguous.
    func writeReductionParts(_ i: Instruction, _ parts: Int, scratch offset: Int, wide: KernelPlan.WideSum?) {
        guard case .reduce(let red, let axes) = i.op else { return }
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let reduced = Array(xt.shape.prefix(axes.count)), k = t.elementCount
        let op = red.combiner
        let partials = scratch(offset, "scratch\(i.id)")
        let (begin, end) = splitRange!
        splitRange = nil
        let rowCount = leadingRows(x, reduced)
        r.loop(from: begin, to: end, hints: LoopHints()) { part in
            let (r0, r1) = partRange(part, of: rowCount, parts: parts)
            let slot = r.int(.mul, part, c64(k))
            if let wide {
                writeBlockedRows(x, reduced: reduced, t, from: r0, to: r1, blockRows: wide.blockRows, block: (partials, slot),
                                 wide: (scratch(wide.offset, "wide\(i.id)"), slot))
                return
            }
            loopNest(t.shape) { o in store(reduceIdentity(red, t.dtype), partials, r.int(.add, slot, o.linear), t.dtype) }
            r.loop(from: r0, to: r1, hints: LoopHints()) { row in
                let rIdx = Index(linear: row, shape: reduced, writer: self).multi
                accumulatorLoop(t) { o in
                    let at = r.int(.add, slot, o.linear)
                    let v = element(x, Index(multi: rIdx + o.multi, shape: xt.shape, writer: self))
                    store(binary(op, load(partials, at, t.dtype), v, t.dtype), partials, at, t.dtype)
                }
            }
        }
    }

    /// The result of a kernel computed in parts (a split reduction, a per-image weight gradient):
    /// its parts' slots combined in order.
    func writePartsSum(_ i: Instruction, _ parts: Int, scratch offset: Int, wide: KernelPlan.WideSum?) {
        let t = i.type!, k = t.elementCount
        var op = BinaryOp.add
        if case .reduce(let red, _) = i.op { op = red.combiner }
        let partials = scratch(offset, "scratch\(i.id)"), out = base(i.id)!
        if let wide {
            // The parts' Double sums, added in order and rounded once.
            let wide = scratch(wide.offset, "wide\(i.id)")
            loopNest(t.shape) { o in
                var acc = load(wide, o.linear, .float64)
                for q in 1..<parts { acc = r.float(.add, acc, load(wide, r.int(.add, o.linear, c64(q * k)), .float64)) }
                store(narrow(acc, t.dtype), out, o.linear, t.dtype)
            }
            return
        }
        loopNest(t.shape) { o in
            var acc = load(partials, o.linear, t.dtype)
            for q in 1..<parts { acc = binary(op, acc, load(partials, r.int(.add, o.linear, c64(q * k)), t.dtype), t.dtype) }
            store(acc, out, o.linear, t.dtype)
        }
    }

    /// Part `part` of `count` items split into `parts` fixed parts: its first item and the one
    /// after its last.
    func partRange(_ part: RValue, of count: RValue, parts: Int) -> (RValue, RValue) {
        let first = r.int(.udiv, r.int(.mul, part, count), c64(parts))
        let end = r.int(.udiv, r.int(.mul, r.int(.add, part, c64(1)), count), c64(parts))
        return (first, end)
    }
}
