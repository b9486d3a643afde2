import KilnIR

/// A position in a tensor, known as a multi-index, a row-major linear index, or both; whichever
/// is missing is computed on demand (the target compiler folds the duplicates).
struct Index {
    private let multiStore: [RValue]?
    private let linearStore: RValue?
    let shape: [Int]
    unowned let writer: KernelWriter

    init(multi: [RValue], linear: RValue? = nil, shape: [Int], writer: KernelWriter) {
        multiStore = multi
        linearStore = linear
        self.shape = shape
        self.writer = writer
    }

    init(linear: RValue, shape: [Int], writer: KernelWriter) {
        multiStore = nil
        linearStore = linear
        self.shape = shape
        self.writer = writer
    }

    var linear: RValue {
        if let linearStore { return linearStore }
        let r = writer.r
        var acc = writer.c64(0)
        for (k, m) in multiStore!.enumerated() {
            acc = r.int(.add, r.int(.mul, acc, writer.c64(shape[k])), m)
        }
        return acc
    }

    var multi: [RValue] {
        if let multiStore { return multiStore }
        let r = writer.r
        var out = [RValue](repeating: writer.c64(0), count: shape.count)
        var rest = linearStore!
        for k in stride(from: shape.count - 1, through: 0, by: -1) {
            if shape[k] == 1 { continue }
            out[k] = k == 0 ? rest : r.int(.urem, rest, writer.c64(shape[k]))
            if k > 0 { rest = r.int(.udiv, rest, writer.c64(shape[k])) }
        }
        return out
    }
}

extension KernelWriter {
    /// Innermost extents below one AVX-512 vector of float32 get a flat loop (see loopNest).
    static let shortInnerExtent = 16
    /// Reduced axes up to this long are unrolled when elements after them are contiguous.
    static let unrolledReductionExtent = 16
    /// Patches of a few channels up to this many values are written by straight-line code.
    static let unrolledPatchWidth = 64

    /// Calls `body` once per element of `shape`, row-major, innermost loop last. With
    /// `reassociate`, the innermost loop may be vectorised even though it reorders a floating-point
    /// reduction (as TensorFlow's own vectorised reductions do); with `unrollInnermost`, it is
    /// unrolled completely once vectorised.
    func loopNest(_ shape: [Int], reassociate: Bool = false, rows: RValue? = nil, unrollInnermost: Bool = false, _ body: (Index) -> Void) {
        if shape.contains(0) { return }
        if let item = workItem {
            // On a device the kernel's first loop nest is its work items: one element each.
            workItem = nil
            precondition(item.count == shape.reduce(1, *), "a work-item kernel of \(item.count) items over \(shape)")
            r.ifThen(r.icmp(.sge, item.index, c64(item.count)), unlikely: false) { r.returnNow() }
            body(Index(linear: item.index, shape: shape, writer: self))
            return
        }
        // In a kernel split across the worker pool, the first loop nest covers only this
        // worker's rows of dimension 0.
        let batchBound = splitRange == nil && rows != nil
        let range = splitRange ?? rows.map { (c64(0), $0) }
        splitRange = nil
        // A short innermost dimension (softmax over 10 classes, 3 channels) leaves the vectoriser
        // a loop too short to use: run one flat loop over the linear index instead and derive
        // the multi-index only where an operand needs it (division by constants, vectorisable).
        // 38 us -> 20 us for a [128,10] softmax-gradient kernel. Matrices only: for higher ranks
        // the divisions cost more than the short loop (conv patches [64,8,8,9]: 43 -> 65 us).
        if !reassociate, shape.count == 2, shape.last! < Self.shortInnerExtent, shape.reduce(1, *) >= 4 * Self.shortInnerExtent {
            let inner = shape.dropFirst().reduce(1, *)
            if let (begin, end) = range {
                let (lo, hi) = (r.int(.mul, begin, c64(inner)), r.int(.mul, end, c64(inner)))
                r.loop(from: lo, to: hi, hints: LoopHints(vectorize: vectorizeLoops)) { lin in body(Index(linear: lin, shape: shape, writer: self)) }
            } else {
                r.loop(count: shape.reduce(1, *), hints: LoopHints(vectorize: vectorizeLoops)) { lin in body(Index(linear: lin, shape: shape, writer: self)) }
            }
            return
        }
        func level(_ d: Int, _ ivs: [RValue], _ linear: RValue) {
            if d == shape.count {
                body(Index(multi: ivs, linear: linear, shape: shape, writer: self))
                return
            }
            if d == 0, let (begin, end) = range {
                // A batch's rows bound an unsplit nest: its loop is hinted as any other.
                let innermost = shape.dropFirst().allSatisfy { $0 == 1 }
                let hints = LoopHints(vectorize: ((batchBound && reassociate) || vectorizeLoops) && innermost, keepRolled: batchBound && !innermost)
                r.loop(from: begin, to: end, hints: hints) { iv in level(1, [iv], iv) }
                return
            }
            if shape[d] == 1 {
                level(d + 1, ivs + [c64(0)], r.int(.mul, linear, c64(1)))
                return
            }
            let innermost = shape[(d + 1)...].allSatisfy { $0 == 1 }
            r.loop(count: shape[d], hints: LoopHints(vectorize: (reassociate || vectorizeLoops) && innermost, keepRolled: !innermost,
                                                     unrollFully: unrollInnermost && innermost)) { iv in
                let lin = r.int(.add, r.int(.mul, linear, c64(shape[d])), iv)
                level(d + 1, ivs + [iv], lin)
            }
        }
        level(0, [], c64(0))
    }
}
