import KilnIR

/// The target-neutral half of planning: which values are computed inline inside their
/// consumers' loops and which materialise (and why), and the neutral patterns (descent steps
/// computed by their product, variable semantics, checks before writes, the fused-depth bound).
/// Each step below is one rule, run in the order `KernelPlan.init` lists them.
struct Fusion {
    let f: Function
    let inst: [Int: Instruction]
    let position: [Int: Int]
    let uses: [Int: Int]
    let types: [Int: TensorType]
    /// Each value's users in body order (each user once), so no question below scans the body.
    let users: [Int: [Int]]
    /// The values that get a buffer and a kernel of their own, and why.
    var materialized: [Int: MaterializeReason] = [:]
    /// Values a matrix product reads from memory.
    var productOperands = Set<Int>()
    /// Reshapes read through their operand's buffer (the same bytes in the same order).
    var views = Set<Int>()
    /// Kernels that compute a pattern of several values, by the value they are listed under:
    /// descent steps (by write), and the scheduler's blocked products. A pattern's values
    /// other than that one are inline.
    var patterns: [Int: KernelPlan.Kernel] = [:]

    init(_ f: Function) {
        self.f = f
        position = Dictionary(uniqueKeysWithValues: f.body.enumerated().map { ($1.id, $0) })
        inst = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        uses = f.useCounts()
        types = f.typeTable()
        var users: [Int: [Int]] = [:]
        for i in f.body { for o in Set(i.operands) { users[o, default: []].append(i.id) } }
        self.users = users
    }

    /// Values that must have a buffer whatever else is fused: results, products and their
    /// operands, patches, reductions, wide concats, and elementwise values with several users.
    mutating func materializeByRule() {
        for r in f.results where !f.isParam(r) {
            if case .constant? = inst[r]?.op { continue }
            materialized[r] = materialized[r] ?? .fetchedResult
        }
        for i in f.body {
            switch i.op {
            case .dot:
                materialized[i.id] = .matrixProduct
                for o in i.operands {
                    guard let src = bufferSource(o) else { continue }
                    productOperands.insert(src)
                    materialized[src] = materialized[src] ?? .productOperand
                }
            case .patches:
                // Its own loop nest over (n, oh, ow, kh, kw, c) needs no index division.
                materialized[i.id] = materialized[i.id] ?? .patchesGatheredOnce
            case .reduce, .argReduce, .reduceWindow, .unpatches:
                materialized[i.id] = materialized[i.id] ?? .reductionResult
            case .concat where KernelPlan.writesByOperand(i):
                materialized[i.id] = materialized[i.id] ?? .wideConcat(operands: i.operands.count)
            case _ where i.op.isElementwise && (uses[i.id] ?? 0) > 1:
                materialized[i.id] = materialized[i.id] ?? .severalUsers(uses[i.id]!)
            default: break
            }
        }
    }

    /// The value whose buffer an operand `v` of a product or direct convolution is read from: a
    /// reshape is the same bytes, so reshapes are views of what they reshape; nil where that is
    /// a parameter, variable read or constant, which have buffers of their own.
    mutating func bufferSource(_ v: Int) -> Int? {
        var src = v
        while case .reshape? = inst[src]?.op { views.insert(src); src = inst[src]!.operands[0] }
        if f.isParam(src) || inst[src]?.op == .varRead { return nil }
        if case .constant? = inst[src]?.op { return nil }
        return src
    }

    /// Gives image `x` of a convolution that reads it in place a buffer.
    mutating func materializeConvolutionInput(_ x: Int) {
        guard let src = bufferSource(x) else { return }
        materialized[src] = materialized[src] ?? .convolutionInput
    }

    /// A cheap elementwise value with several users is recomputed by each of them instead of
    /// being written out and read back: subtracting a broadcast mean again costs far less than a
    /// round trip of the whole tensor through memory. Only where recomputing reads no more memory
    /// than the buffer would (one tensor of its size, or two for two users), and only small
    /// trees, so duplication cannot compound.
    mutating func recomputeCheapValues() {
        for i in f.body where i.op.isElementwise {
            guard case .severalUsers(let users)? = materialized[i.id], !productOperands.contains(i.id),
                  let n = types[i.id]?.elementCount, n > 0 else { continue }
            let cost = recomputeCost(i.id, size: n)
            if !cost.costly, cost.ops <= KernelPlan.recomputedOpsLimit, cost.fullReads <= 1 || (users == 2 && cost.fullReads == 2) {
                materialized[i.id] = nil
            }
        }
    }

    /// A value read through a broadcast is recomputed for every element the broadcast adds:
    /// computed once instead, in a kernel of its own, where that costs less. So are a costly value
    /// (a row's log-sum-exp for each of its classes), and arithmetic beyond one cheap op (a
    /// division, or two ops or more) on a small value spread along the innermost axis of a large
    /// loop (batch norm's per-channel terms across every position of an image): LLVM hoists out
    /// of the inner loop what only outer loops vary, never what the inner loop does.
    mutating func computeValuesBeforeBroadcasts() {
        for i in f.body {
            guard case .broadcast(_, let dims) = i.op, let t = i.type, let yt = types[i.operands[0]] else { continue }
            var x = i.operands[0]
            while materialized[x] == nil, case .reshape? = inst[x]?.op { x = inst[x]!.operands[0] }
            guard materialized[x] == nil, let xi = inst[x], xi.op.isElementwise, let xt = xi.type else { continue }
            let times = t.elementCount / max(xt.elementCount, 1)
            let (ops, divides, costly) = arithmetic(in: x)
            if times >= 4, let costly {
                materialized[x] = .recomputedByBroadcast(op: costly, times: times)
                continue
            }
            let alongInnermost = zip(dims, yt.shape).contains { $0 == t.rank - 1 && $1 > 1 }
            guard alongInnermost, t.elementCount > KernelPlan.coldElements, xt.elementCount <= KernelPlan.coldElements,
                  times >= KernelPlan.broadcastRepeatsToCompute else { continue }
            if divides { materialized[x] = .recomputedByBroadcast(op: "division", times: times) }
            else if ops >= 2 { materialized[x] = .recomputedByBroadcast(op: "\(ops) ops", times: times) }
        }
    }

    /// A gradient-descent step `v = v - s * dot(a, b)` is one kernel: the product accumulates
    /// into the variable with alpha = -s, so the product has no buffer.
    mutating func fuseDescentSteps() {
        for i in f.body where i.op == .varWrite {
            guard let (dot, scale) = descentStep(i) else { continue }
            patterns[i.id] = .accumulatedProduct(write: i.id, variable: i.operands[0], dot: dot, scale: scale)
            materialized[dot] = nil
        }
    }

    /// With fusion off every value gets its own kernel: the baseline fusion is measured against.
    mutating func materializeEverything() {
        for i in f.body where i.op.producesValue && i.op != .varRead && materialized[i.id] == nil {
            if case .constant = i.op { continue }
            materialized[i.id] = .fusionOff
        }
    }

    /// Codegen evaluates a fused expression recursively, one level per op: bound its depth so the
    /// stack a kernel needs does not grow with the graph (a chain of 20,000 elementwise ops is
    /// then a chain of kernels of at most fusedDepthLimit ops each). Values a pattern relies on
    /// computing inline are left as they are: patterns are a few ops deep, so the bound is
    /// exceeded by at most that much.
    mutating func boundFusedDepth() {
        var keepInline = Set<Int>()
        for kernel in patterns.values {
            switch kernel {
            case .accumulatedProduct(let w, _, _, _):
                guard let sub = inst[inst[w]!.operands[1]], let mul = inst[sub.operands[1]] else { continue }
                keepInline.formUnion([sub.id, mul.id, sub.operands[0]] + mul.operands)
            case .perImageProduct(let u, let d): keepInline.formUnion([inst[u]!.operands[0], d])
            case .patchProduct(let d, let blocks), .patchGradient(let d, let blocks, _, _):
                keepInline.formUnion([inst[d]!.operands[0], blocks.patches])
            default: break
            }
        }
        var depth: [Int: Int] = [:]
        for i in f.body where i.op.producesValue && materialized[i.id] == nil {
            if case .constant = i.op { continue }
            let d = i.op == .varRead ? 1 : 1 + (i.operands.lazy.map { depth[$0] ?? 0 }.max() ?? 0)
            if d > KernelPlan.fusedDepthLimit && !keepInline.contains(i.id) {
                materialized[i.id] = .fusedTooDeep
            } else {
                depth[i.id] = d
            }
        }
    }

    /// Which inline values a kernel rooted at `root` evaluates, and whether through an index
    /// map (preorder, with an explicit stack rather than recursion).
    func inlineTree(_ root: Int, _ visit: (Int, Bool) -> Void) {
        var stack: [(Int, Bool)] = []
        func push(_ v: Int, _ remapped: Bool) {
            // An index map (any op but elementwise ones and reshapes: broadcast, transpose,
            // slice, gather, ...) reads its operands at other positions than its own.
            let r = remapped || !(inst[v].map { $0.op.isElementwise || $0.op.isReshape || $0.op == .varWrite } ?? true)
            for o in (inst[v]?.operands ?? []).reversed() {
                guard let oi = inst[o], materialized[o] == nil, oi.op.producesValue else { continue }
                if case .constant = oi.op { continue }
                stack.append((o, r))
            }
        }
        push(root, false)
        while let (v, r) = stack.popLast() {
            visit(v, r)
            if inst[v]?.op != .varRead { push(v, r) }
        }
    }

    /// A write fused with reads of the same variable through an index map would read elements
    /// it has already overwritten: its value gets a buffer first.
    mutating func separateWritesFromIndexMappedReads() {
        for i in f.body where i.op == .varWrite {
            let target = i.operands[0], value = i.operands[1]
            guard materialized[value] == nil, let vi = inst[value], vi.op != .varRead else { continue }
            var conflict = false
            if case .broadcast = vi.op { conflict = true }
            if case .transpose = vi.op { conflict = true }
            inlineTree(i.id) { v, remapped in
                if inst[v]?.op == .varRead, inst[v]?.operands[0] == target, remapped { conflict = true }
            }
            if conflict { materialized[value] = .readsOverwrittenVariable }
        }
    }

    /// A check is found before a variable is written, never halfway through the write: a check
    /// the write's loop would evaluate gets a kernel of its own, which runs first, and the entry
    /// stops at the first kernel that records a fault.
    mutating func runChecksBeforeWrites() {
        var checksInWrites: [Int] = []
        for i in f.body where i.op == .varWrite {
            inlineTree(i.id) { v, _ in if case .check? = inst[v]?.op { checksInWrites.append(v) } }
        }
        for v in checksInWrites { materialized[v] = .checkBeforeWrite }
    }

    /// A read used after a write of the same variable must copy before the write.
    mutating func copyReadsBeforeLaterWrites() {
        var writePositions: [Int: [Int]] = [:]
        for i in f.body where i.op == .varWrite { writePositions[i.operands[0], default: []].append(position[i.id]!) }
        var changed = true
        while changed {
            changed = false
            var evaluatedAt: [Int: [Int]] = [:]
            for i in f.body where materialized[i.id] != nil || i.op == .varWrite {
                inlineTree(i.id) { v, _ in evaluatedAt[v, default: []].append(position[i.id]!) }
            }
            for i in f.body where i.op == .varRead && materialized[i.id] == nil {
                let v = i.operands[0], p = position[i.id]!
                let writes = writePositions[v] ?? []
                if let last = evaluatedAt[i.id]?.max(), writes.contains(where: { $0 > p && $0 < last }) {
                    materialized[i.id] = .readAfterWrite
                    changed = true
                }
            }
        }
    }

    /// The kernel of materialised value `i` (or variable write) before the scheduler's tactics:
    /// its pattern, or the loop its op takes.
    func kernel(_ i: Instruction) -> KernelPlan.Kernel {
        if let p = patterns[i.id] { return p }
        switch i.op {
        case .varWrite: return .writes([KernelPlan.VariableWrite(write: i.id, variable: i.operands[0], value: i.operands[1])])
        case .dot: return .product(i.id)
        case .reduce: return .reduction(i.id)
        case .argReduce: return .argReduction(i.id)
        case .reduceWindow: return .windowReduction(i.id)
        case .unpatches: return .unpatches(i.id)
        case .patches: return .patches(i.id)
        case .concat where KernelPlan.writesByOperand(i): return .wideConcat(concat: i.id)
        default: return .loop(i.id)
        }
    }

    // MARK: rule helpers

    /// `var.write v, sub(var.read v, mul(broadcast(s), dot))` (either operand order of the mul),
    /// float32, with the product and the step used nowhere else and the product not reading v
    /// (it would read what it is overwriting): the dot and scalar s.
    func descentStep(_ w: Instruction) -> (Int, Int)? {
        let target = w.operands[0]
        guard let sub = inst[w.operands[1]], sub.op == .binary(.sub), uses[sub.id] == 1, materialized[sub.id] == nil,
              let read = inst[sub.operands[0]], read.op == .varRead, read.operands[0] == target, materialized[read.id] == nil,
              let mul = inst[sub.operands[1]], mul.op == .binary(.mul), uses[mul.id] == 1, materialized[mul.id] == nil else { return nil }
        for (d, s) in [(mul.operands[1], mul.operands[0]), (mul.operands[0], mul.operands[1])] {
            guard let dot = inst[d], case .dot = dot.op, uses[d] == 1, dot.type?.dtype == .float32, dot.type?.rank == 2,
                  let bcast = inst[s], case .broadcast = bcast.op, let scalar = bcast.operands.first,
                  let st = types[scalar], st.rank == 0, st.dtype == .float32 else { continue }
            // The product must not read the variable it accumulates into.
            var readsTarget = false
            for o in dot.operands {
                var src = o
                while case .reshape? = inst[src]?.op { src = inst[src]!.operands[0] }
                if src == target || (inst[src]?.op == .varRead && inst[src]?.operands[0] == target) { readsTarget = true }
            }
            if readsTarget { continue }
            return (d, scalar)
        }
        return nil
    }

    /// What computing `v` inline again costs: its ops with those of its inline operands, how many
    /// distinct buffers of `v`'s size (or larger) they read, and whether anything among them is
    /// costly (a transcendental, pow, a random draw, an index map other than broadcast, reshape or
    /// transpose).
    func recomputeCost(_ v: Int, size: Int) -> (ops: Int, fullReads: Int, costly: Bool) {
        var ops = 0, reads = Set<Int>(), seen = Set<Int>(), stack = [v]
        while let x = stack.popLast() {
            guard seen.insert(x).inserted else { continue }
            let isRoot = x == v
            if !isRoot && (f.isParam(x) || materialized[x] != nil || inst[x]?.op == .varRead) {
                if (types[x]?.elementCount ?? 0) >= size { reads.insert(x) }
                continue
            }
            guard let i = inst[x] else { continue }
            switch i.op {
            case .constant: continue
            case .unary(let u) where u.isCostly:
                return (ops, reads.count, true)
            case .binary(.pow), .random: return (ops, reads.count, true)
            case .broadcast, .reshape, .transpose, .iota: break
            default: if !i.op.isElementwise { return (ops, reads.count, true) }
            }
            ops += 1
            // Over the limit the answer is settled: stop rather than walk a long chain.
            if ops > KernelPlan.recomputedOpsLimit { return (ops, reads.count, false) }
            stack += i.operands
        }
        return (ops, reads.count, false)
    }

    /// What computing `v` inline takes (with its inline operands): its elementwise ops, whether
    /// one of them divides, and a transcendental (or pow) among them, if any.
    func arithmetic(in v: Int) -> (ops: Int, divides: Bool, costly: String?) {
        var stack = [v], seen = Set<Int>(), ops = 0, divides = false, costly: String?
        while let x = stack.popLast() {
            guard seen.insert(x).inserted, let i = inst[x], x == v || materialized[x] == nil else { continue }
            switch i.op {
            case .reshape, .broadcast: stack += i.operands
            default:
                guard i.op.isElementwise else { continue }
                ops += 1
                switch i.op {
                case .unary(let u) where u.isCostly: costly = costly ?? u.rawValue
                case .binary(.pow): costly = costly ?? "pow"
                case .binary(.div), .binary(.floordiv), .binary(.floormod): divides = true
                default: break
                }
                stack += i.operands
            }
        }
        return (ops, divides, costly)
    }
}
