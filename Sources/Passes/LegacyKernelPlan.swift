import KilnIR

/// Decides which values get a buffer and a loop of their own ("kernels") and which are computed
/// inline inside their consumers' loops (fusion), where each buffer lives, and why. Codegen
/// follows the plan; it makes no decisions of its own.
struct LegacyKernelPlan {
    enum Storage: Hashable, Sendable {
        /// A feed parameter's caller-owned buffer.
        case param(Int)
        /// A variable's storage, read in place.
        case variable(param: Int)
        /// Entry `i` of the executable's constant table.
        case constant(Int)
        /// Offset into the executable's arena.
        case arena(offset: Int)
        /// The caller-allocated buffer of result `i`.
        case result(Int)
        /// No buffer: recomputed inside each consumer's loop.
        case inline
    }

    var storage: [Int: Storage] = [:]
    /// Instructions that run as a loop or a matrix-product call, in execution order (includes var.write).
    var kernels: [Int] = []
    /// Results that are parameters or constants, copied into the result buffer at the end.
    var resultCopies: [(result: Int, value: Int)] = []
    /// Why each materialised value was not fused into its consumers.
    var reasons: [Int: String] = [:]
    var constants: [Tensor] = []
    /// For each kernel, the values computed inside its loop (its fusion group), in body order.
    var fused: [Int: [Int]] = [:]
    /// Reshapes read through their operand's buffer (the same bytes in the same order).
    var views: Set<Int> = []
    /// Variable writes `v = v - s * dot(a, b)` (a gradient-descent step) computed by the product
    /// itself, accumulating into the variable: write id -> (dot id, scalar s). The dot has no
    /// buffer and no kernel of its own.
    var accumulatedProducts: [Int: (dot: Int, scale: Int)] = [:]
    /// Image gradients `unpatches(reshape(dot(a, b)))` (a convolution's input gradient: the
    /// product of the output gradient and the filter, summed back onto the image) whose product is
    /// used nowhere else, computed one image at a time: each image's rows of the product go into a
    /// small buffer of the kernel's own and are summed into the image while still in cache, so the
    /// product (patch-sized, nine times the image for a 3x3 filter) never has a buffer:
    /// unpatches id -> dot id.
    var productsPerImage: [Int: Int] = [:]
    /// Products of image patches `dot(reshape(patches(x)), w)` (a convolution) whose patches are
    /// used only by such products, computed a block of patch rows at a time (patchBlockRows):
    /// each block is gathered into a stack buffer of the kernel's own and multiplied at once, so
    /// the patches, nine times the image for a 3x3 filter, never have a buffer: dot id -> patches id.
    var patchProducts: [Int: PatchBlocks] = [:]
    /// How a blocked patch product walks its patches: `rows` patch rows at a time (the last block
    /// may be shorter), `count` blocks in all.
    struct PatchBlocks: Hashable, Sendable {
        var patches: Int
        var rows: Int
        var count: Int

        init(patches: Int, rows: Int, count: Int) {
            self.patches = patches
            self.rows = rows
            self.count = count
        }
    }
    /// Weight gradients of such convolutions, `dot(reshape(patches(x)), dy, transpose_a)`, computed
    /// from the same blocks of patch rows: dot id -> (patches id, parts, arena offset of the parts'
    /// partial products). Each part sums its share of the blocks into its own slot; a last loop
    /// adds the slots in order, so the result is the same on any number of cores.
    var patchGradients: [Int: (blocks: PatchBlocks, parts: Int, scratch: Int)] = [:]
    /// Reductions over leading axes split into parts that run in parallel: reduce id -> (parts,
    /// arena offset of the parts' partial results, one output-sized slot each; a floating-point
    /// sum's slots are followed by one Double slot per part, see `blockedReductions`).
    var splitReductions: [Int: (parts: Int, scratch: Int)] = [:]
    /// Floating-point sums over more than `reductionBlockRows` leading rows that run as one loop:
    /// reduce id -> arena offset of one Double per output element. Rows are summed in blocks into
    /// the output, each block's sums then added into the Doubles, so rounding error grows with the
    /// block, not with the row count (a split reduction does the same in each part).
    var blockedReductions: [Int: Int] = [:]
    /// The most bytes one image's rows of such a product may take (they live on the stack).
    static let perImageProductBytes = 64 * 1024
    /// The fewest multiply-adds one image's product must have to be worth a call of its own (a
    /// grey 8x8 image against 16 filters is 9K: one product over all images is faster).
    static let perImageMinimumWork = 1 << 16
    var arenaBytes = 0
    /// The checks compiled code evaluates (`Op.check`), in body order: check `checks[s]` records
    /// its fault as site s + 1.
    var checks: [Int] = []
    /// Arena offset of the run's fault record (`kiln_fault`, 64 bytes), when there are checks.
    var faultRecord: Int?
    static let faultRecordBytes = 64

    /// Constants with at most this many elements are emitted into the code as immediates.
    static let immediateConstantLimit = 16
    static let alignment = 64

    /// With `fuse` false every value gets its own kernel: the baseline fusion is measured against.
    /// `perImageProducts` says whether the backend can run many small matrix products on its
    /// worker pool (Kiln's own kernel); without it, convolutions keep one product over all images.
    init(_ f: Function, fuse: Bool = true, perImageProducts: Bool = true) {
        let position = Dictionary(uniqueKeysWithValues: f.body.enumerated().map { ($1.id, $0) })
        let inst = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        let uses = f.useCounts()
        let types = f.typeTable()
        // Each value's users in body order (each user once), so no question below scans the body.
        var users: [Int: [Int]] = [:]
        for i in f.body { for o in Set(i.operands) { users[o, default: []].append(i.id) } }
        var materialized: [Int: String] = [:]
        var productOperands = Set<Int>()

        for (i, p) in f.params.enumerated() {
            storage[i] = p.kind == .feed ? .param(i) : .variable(param: i)
        }
        for r in f.results where !f.isParam(r) {
            if case .constant? = inst[r]?.op { continue }
            materialized[r] = materialized[r] ?? "fetched result"
        }
        for i in f.body {
            switch i.op {
            case .constant(let t):
                if t.elementCount > Self.immediateConstantLimit {
                    storage[i.id] = .constant(constants.count)
                    constants.append(t)
                }
            case .dot:
                materialized[i.id] = "matrix product kernel"
                for o in i.operands {
                    // A reshape is the same bytes: the product reads the buffer of what it reshapes.
                    var src = o
                    while case .reshape? = inst[src]?.op { views.insert(src); src = inst[src]!.operands[0] }
                    if f.isParam(src) || inst[src]?.op == .varRead { continue }
                    if case .constant? = inst[src]?.op { continue }
                    productOperands.insert(src)
                    materialized[src] = materialized[src] ?? "operand of a matrix product needs a buffer"
                }
            case .patches:
                // Its own loop nest over (n, oh, ow, kh, kw, c) needs no index division.
                materialized[i.id] = materialized[i.id] ?? "image patches are gathered once"
            case .reduce, .argReduce, .reduceWindow, .unpatches:
                materialized[i.id] = materialized[i.id] ?? "reduction result is read by many elements"
            case .concat where Self.writesByOperand(i):
                materialized[i.id] = materialized[i.id] ?? "concat of \(i.operands.count) operands is written one operand at a time"
            case _ where i.op.isElementwise && (uses[i.id] ?? 0) > 1:
                materialized[i.id] = materialized[i.id] ?? "\(uses[i.id]!) users would each recompute it"
            default: break
            }
        }

        if fuse {
            // A cheap elementwise value with several users is recomputed by each of them instead
            // of being written out and read back: subtracting a broadcast mean again costs far
            // less than a round trip of the whole tensor through memory. Only where recomputing
            // reads no more memory than the buffer would (one tensor of its size, or two for two
            // users), and only small trees, so duplication cannot compound.
            for i in f.body where materialized[i.id] != nil && i.op.isElementwise {
                guard !productOperands.contains(i.id), let users = uses[i.id], users > 1, materialized[i.id] == "\(users) users would each recompute it",
                      let n = types[i.id]?.elementCount, n > 0 else { continue }
                let cost = Self.recomputeCost(i.id, size: n, inst: inst, types: types, materialized: materialized, isParam: f.isParam)
                if !cost.costly, cost.ops <= Self.recomputedOpsLimit, cost.fullReads <= 1 || (users == 2 && cost.fullReads == 2) {
                    materialized[i.id] = nil
                }
            }
            // A costly value read through a broadcast would be recomputed for every element the
            // broadcast adds (a row's log-sum-exp for each of its classes): compute it once.
            for i in f.body {
                guard case .broadcast = i.op, let t = i.type else { continue }
                var x = i.operands[0]
                while materialized[x] == nil, case .reshape? = inst[x]?.op { x = inst[x]!.operands[0] }
                guard materialized[x] == nil, let xi = inst[x], xi.op.isElementwise, let xt = xi.type,
                      t.elementCount >= 4 * max(xt.elementCount, 1), let costly = Self.costlyOp(in: x, inst: inst, materialized: materialized) else { continue }
                materialized[x] = "its \(costly) would be recomputed \(t.elementCount / max(xt.elementCount, 1)) times by a broadcast"
            }
            for i in f.body where perImageProducts {
                guard let dot = Self.perImageProduct(i, inst: inst, types: types, uses: uses) else { continue }
                productsPerImage[i.id] = dot
                materialized[dot] = nil
            }
            for i in f.body where i.op == .varWrite {
                guard let (dot, scale) = Self.descentStep(i, inst: inst, types: types, uses: uses, materialized: materialized) else { continue }
                accumulatedProducts[i.id] = (dot, scale)
                materialized[dot] = nil
                reasons[i.id] = "state update computed by its matrix product (v -= s * product)"
            }
            let accumulated = Set(accumulatedProducts.values.map(\.dot))
            for i in f.body where perImageProducts {
                guard let (reshape, products) = Self.blockedPatchProducts(i, inst: inst, types: types, uses: uses, users: users, excluding: accumulated) else { continue }
                let pt = i.type!, positions = pt.shape[0] * pt.shape[1] * pt.shape[2]
                let rows = Self.patchBlockRows(patchWidth: pt.shape[3], positions: positions)
                let blocks = PatchBlocks(patches: i.id, rows: rows, count: (positions + rows - 1) / rows)
                for (dot, gradient) in products {
                    if gradient { patchGradients[dot] = (blocks, min(Self.reductionPartCount, blocks.count), 0) } else { patchProducts[dot] = blocks }
                }
                materialized[i.id] = nil
                productOperands.remove(i.id)
                views.remove(reshape)
            }
        }

        if !fuse {
            for i in f.body where i.op.producesValue && i.op != .varRead && materialized[i.id] == nil {
                if case .constant = i.op { continue }
                materialized[i.id] = "fusion is off"
            }
        }

        // Codegen evaluates a fused expression recursively, one level per op: bound its depth so
        // the stack a kernel needs does not grow with the graph (a chain of 20,000 elementwise
        // ops is then a chain of kernels of at most fusedDepthLimit ops each). Values that a
        // fused product or patch block relies on computing inline are left as they are: their
        // patterns are a few ops deep, so the bound is exceeded by at most that much.
        var keepInline = Set<Int>()
        for (w, _) in accumulatedProducts {
            guard let sub = inst[inst[w]!.operands[1]], let mul = inst[sub.operands[1]] else { continue }
            keepInline.formUnion([sub.id, mul.id, sub.operands[0]] + mul.operands)
        }
        for (u, d) in productsPerImage { keepInline.formUnion([inst[u]!.operands[0], d]) }
        for (d, blocks) in patchProducts { keepInline.formUnion([inst[d]!.operands[0], blocks.patches]) }
        for (d, g) in patchGradients { keepInline.formUnion([inst[d]!.operands[0], g.blocks.patches]) }
        var depth: [Int: Int] = [:]
        for i in f.body where i.op.producesValue && materialized[i.id] == nil {
            if case .constant = i.op { continue }
            let d = i.op == .varRead ? 1 : 1 + (i.operands.lazy.map { depth[$0] ?? 0 }.max() ?? 0)
            if d > Self.fusedDepthLimit && !keepInline.contains(i.id) {
                materialized[i.id] = Self.fusedDepthReason
            } else {
                depth[i.id] = d
            }
        }

        // Which inline values a kernel evaluates, and through which index maps (preorder, with an
        // explicit stack rather than recursion).
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

        // A write fused with reads of the same variable through an index map would read
        // elements it has already overwritten.
        for i in f.body where i.op == .varWrite {
            let target = i.operands[0], value = i.operands[1]
            guard materialized[value] == nil, let vi = inst[value], vi.op != .varRead else { continue }
            var conflict = false
            if case .broadcast = vi.op { conflict = true }
            if case .transpose = vi.op { conflict = true }
            inlineTree(i.id) { v, remapped in
                if inst[v]?.op == .varRead, inst[v]?.operands[0] == target, remapped { conflict = true }
            }
            if conflict { materialized[value] = "reads the variable it overwrites through an index map" }
        }

        // A check is found before a variable is written, never halfway through the write: a
        // check the write's loop would evaluate gets a kernel of its own, which runs first, and
        // the entry stops at the first kernel that records a fault.
        var checksInWrites: [Int] = []
        for i in f.body where i.op == .varWrite {
            inlineTree(i.id) { v, _ in if case .check? = inst[v]?.op { checksInWrites.append(v) } }
        }
        for v in checksInWrites { materialized[v] = "a failed check must stop the run before the variable is written" }

        // A read used after a write of the same variable must copy before the write.
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
                    materialized[i.id] = "read is used after a later write of the same variable"
                    changed = true
                }
            }
        }

        // Storage and kernel order.
        var resultSlot: [Int: Int] = [:]
        for (k, r) in f.results.enumerated() {
            if resultSlot[r] == nil, materialized[r] != nil { resultSlot[r] = k } else { resultCopies.append((k, r)) }
        }
        var lastUse: [Int: Int] = [:]
        for i in f.body where materialized[i.id] != nil || i.op == .varWrite {
            let p = position[i.id]!
            if case .dot = i.op { for o in i.operands { lastUse[o] = max(lastUse[o] ?? 0, p) } }
            inlineTree(i.id) { v, _ in
                lastUse[v] = max(lastUse[v] ?? 0, p)
                if inst[v]?.op.producesValue == true, inst[v]?.op != .varRead, !views.contains(v) { fused[i.id, default: []].append(v) }
            }
            for o in i.operands { lastUse[o] = max(lastUse[o] ?? 0, p) }
        }
        // Inline values are read wherever their consumers run; propagate to their materialised operands.
        for i in f.body.reversed() where materialized[i.id] == nil {
            if let u = lastUse[i.id] { for o in i.operands { lastUse[o] = max(lastUse[o] ?? 0, u) } }
        }

        // Free buffers sorted by offset (first fit); live ones filed under the position of their
        // last reader, so each kernel releases exactly those that ended before it.
        var free: [(offset: Int, size: Int)] = []
        var endingAt: [Int: [(offset: Int, size: Int)]] = [:]
        var top = 0
        for i in f.body {
            let p = position[i.id]!
            // Release buffers whose last reader ran before this kernel.
            for b in endingAt.removeValue(forKey: p - 1) ?? [] {
                var lo = 0, hi = free.count
                while lo < hi { let mid = (lo + hi) / 2; if free[mid].offset < b.offset { lo = mid + 1 } else { hi = mid } }
                free.insert(b, at: lo)
            }
            if i.op == .varWrite { kernels.append(i.id); continue }
            guard let why = materialized[i.id] else {
                if storage[i.id] == nil { storage[i.id] = .inline }
                continue
            }
            kernels.append(i.id)
            reasons[i.id] = why
            func allocate(_ bytes: Int, until end: Int) -> Int {
                let size = (bytes + Self.alignment - 1) / Self.alignment * Self.alignment
                let offset: Int
                if let k = free.firstIndex(where: { $0.size >= size }) {
                    offset = free[k].offset
                    if free[k].size > size { free[k] = (offset + size, free[k].size - size) } else { free.remove(at: k) }
                } else {
                    offset = top
                    top += size
                }
                endingAt[max(end, p), default: []].append((offset, size))
                return offset
            }
            if let parts = Self.reductionParts(i, types: types) {
                let wide = Self.isLeadingFloatSum(i, types: types) ? parts * i.type!.elementCount * 8 : 0
                splitReductions[i.id] = (parts, allocate(parts * i.type!.byteCount + wide, until: p))
            } else if Self.isLeadingFloatSum(i, types: types), Self.leadingRows(i, types: types) > Self.reductionBlockRows {
                blockedReductions[i.id] = allocate(i.type!.elementCount * 8, until: p)
            }
            if let g = patchGradients[i.id] {
                patchGradients[i.id] = (g.blocks, g.parts, allocate(g.parts * i.type!.byteCount, until: p))
            }
            if let slot = resultSlot[i.id] { storage[i.id] = .result(slot); continue }
            storage[i.id] = .arena(offset: allocate(i.type!.byteCount, until: lastUse[i.id] ?? p))
        }
        checks = f.body.filter { if case .check = $0.op { return true } else { return false } }.map(\.id)
        if !checks.isEmpty {
            faultRecord = top
            top += Self.faultRecordBytes
        }
        arenaBytes = top
    }

    /// Parts a reduction over leading axes (batch statistics, bias gradients: many rows summed
    /// into a short row) is split into, each summing its share of the rows into its own slot of
    /// scratch, nil where one loop will do. The number is fixed, not the number of cores, so the
    /// sum is associated the same way on every machine and every run.
    static func reductionParts(_ i: Instruction, types: [Int: TensorType]) -> Int? {
        guard case .reduce(_, let axes) = i.op, let t = i.type, let xt = types[i.operands[0]], !axes.isEmpty, !t.shape.isEmpty,
              axes == Array(0..<axes.count), t.elementCount <= splitReductionMaxOutput else { return nil }
        let rows = axes.map { xt.shape[$0] }.reduce(1, *)
        guard rows >= 4 * reductionPartCount, xt.elementCount >= splitReductionWork else { return nil }
        return reductionPartCount
    }
    static let reductionPartCount = 8
    /// Rows a floating-point sum over leading axes adds in one block before widening to Double.
    static let reductionBlockRows = 128

    /// A floating-point sum over leading axes into a non-scalar result (the loop that streams rows).
    static func isLeadingFloatSum(_ i: Instruction, types: [Int: TensorType]) -> Bool {
        guard case .reduce(.sum, let axes) = i.op, let t = i.type, t.dtype.isFloatingPoint, !axes.isEmpty, !t.shape.isEmpty,
              let xt = types[i.operands[0]], axes.count < xt.rank else { return false }
        return axes.sorted() == Array(0..<axes.count)
    }

    static func leadingRows(_ i: Instruction, types: [Int: TensorType]) -> Int {
        guard case .reduce(_, let axes) = i.op, let xt = types[i.operands[0]] else { return 0 }
        return axes.map { xt.shape[$0] }.reduce(1, *)
    }
    /// Reductions read at least this many elements to be split, and produce at most this many.
    static let splitReductionWork = 32768
    static let splitReductionMaxOutput = 4096

    /// `var.write v, sub(var.read v, mul(broadcast(s), dot))` (either operand order of the mul),
    /// float32, with the product and the step used nowhere else and the product not reading v
    /// (it would read what it is overwriting): the dot and scalar s.
    static func descentStep(_ w: Instruction, inst: [Int: Instruction], types: [Int: TensorType], uses: [Int: Int], materialized: [Int: String]) -> (Int, Int)? {
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

    /// The product of `unpatches(reshape(dot(a, b)))` when it can be computed per image: float32,
    /// `a` not transposed (an image's rows of the product are then `a`'s rows for that image,
    /// contiguous), the reshape and product read by nothing else, and one image's rows small.
    static func perImageProduct(_ u: Instruction, inst: [Int: Instruction], types: [Int: TensorType], uses: [Int: Int]) -> Int? {
        guard case .unpatches = u.op, let r = inst[u.operands[0]], case .reshape = r.op, uses[r.id] == 1,
              let pt = r.type, pt.rank == 4, let d = inst[r.operands[0]], case .dot(false, _) = d.op, uses[d.id] == 1,
              let dt = d.type, dt.dtype == .float32, dt.rank == 2, types[d.operands[0]]?.rank == 2, types[d.operands[1]]?.rank == 2 else { return nil }
        let rowsPerImage = pt.shape[1] * pt.shape[2]
        guard pt.shape[0] > 0, rowsPerImage > 0, dt.shape[0] == pt.shape[0] * rowsPerImage,
              rowsPerImage * dt.shape[1] * 4 <= perImageProductBytes,
              rowsPerImage * dt.shape[1] * types[d.operands[0]]!.shape[1] >= perImageMinimumWork else { return nil }
        return d.id
    }

    /// Unary ops that cost many instructions per element (a call or a long polynomial).
    static let costlyUnary: Set<UnaryOp> = [.exp, .log, .log1p, .tanh, .sigmoid, .sin, .cos, .sqrt, .rsqrt]

    /// The most ops a value recomputed by each of its users may take (with its inline operands).
    static let recomputedOpsLimit = 8

    /// Concats of more operands than this get a kernel that writes each operand's elements in a
    /// loop of its own; computed inline, every element would choose among all operands.
    static let inlineConcatOperandsLimit = 16
    static func writesByOperand(_ i: Instruction) -> Bool {
        if case .concat = i.op { return i.operands.count > inlineConcatOperandsLimit }
        return false
    }

    /// The deepest fused expression a kernel evaluates (ops on the longest path from the kernel's
    /// value down to loads): codegen's element generators recurse once per level, so this bounds
    /// their stack (a few KB per level in a debug build) on any thread. Real fused expressions
    /// (an Adam step, a normalisation) are 10-20 deep.
    static let fusedDepthLimit = 64
    static let fusedDepthReason = "fused expression would be deeper than \(fusedDepthLimit) ops"

    /// What computing `v` inline again costs: its ops with those of its inline operands, how many
    /// distinct buffers of `v`'s size (or larger) they read, and whether anything among them is
    /// costly (a transcendental, pow, a random draw, an index map other than broadcast, reshape or
    /// transpose).
    static func recomputeCost(_ v: Int, size: Int, inst: [Int: Instruction], types: [Int: TensorType], materialized: [Int: String],
                              isParam: (Int) -> Bool) -> (ops: Int, fullReads: Int, costly: Bool) {
        var ops = 0, reads = Set<Int>(), seen = Set<Int>(), stack = [v]
        while let x = stack.popLast() {
            guard seen.insert(x).inserted else { continue }
            let isRoot = x == v
            if !isRoot && (isParam(x) || materialized[x] != nil || inst[x]?.op == .varRead) {
                if (types[x]?.elementCount ?? 0) >= size { reads.insert(x) }
                continue
            }
            guard let i = inst[x] else { continue }
            switch i.op {
            case .constant: continue
            case .unary(let u) where Self.costlyUnary.contains(u):
                return (ops, reads.count, true)
            case .binary(.pow), .random: return (ops, reads.count, true)
            case .broadcast, .reshape, .transpose, .iota: break
            default: if !i.op.isElementwise { return (ops, reads.count, true) }
            }
            ops += 1
            // Over the limit the answer is settled: stop rather than walk a long chain.
            if ops > recomputedOpsLimit { return (ops, reads.count, false) }
            stack += i.operands
        }
        return (ops, reads.count, false)
    }

    /// Patches smaller than this stay in cache between the kernel that writes them and the
    /// products that read them: gathering them again per block would only cost more.
    static let blockedPatchesMinimumBytes = 1 << 20

    /// Rows of patches (output positions) a blocked patch product gathers at a time: as many as
    /// fit perImageProductBytes, but few enough to make at least 8 blocks for the pool to share,
    /// a multiple of 16 (the product kernel's panel), at least 16.
    static func patchBlockRows(patchWidth: Int, positions: Int) -> Int {
        let fit = perImageProductBytes / (4 * max(patchWidth, 1)) / 16 * 16
        let share = (positions + 8 * 16 - 1) / (8 * 16) * 16
        return min(positions, max(16, min(fit, share)))
    }

    /// For patches `p` read only through one reshape to [images * positions, patch], whose every
    /// user is a float32 product that can run on blocks of patch rows, the reshape and those
    /// products, each marked whether it is a weight gradient (`dot(reshape, dy, transpose_a)`,
    /// summed over the blocks) or a convolution (`dot(reshape, w)`, the block's rows of the
    /// output). Nil when any use needs the patches in memory, when 16 patch rows would not fit the
    /// stack buffer, or when a block's product is too small to be worth a call.
    static func blockedPatchProducts(_ p: Instruction, inst: [Int: Instruction], types: [Int: TensorType], uses: [Int: Int], users: [Int: [Int]],
                                      excluding accumulated: Set<Int>) -> (Int, [(Int, Bool)])? {
        guard case .patches = p.op, uses[p.id] == 1, let pt = p.type, pt.rank == 4, pt.dtype == .float32, pt.shape[0] > 0,
              16 * pt.shape[3] * 4 <= perImageProductBytes, pt.byteCount >= blockedPatchesMinimumBytes,
              let r = (users[p.id] ?? []).compactMap({ inst[$0] }).first(where: { $0.op.isReshape && $0.operands == [p.id] }) else { return nil }
        let rows = pt.shape[0] * pt.shape[1] * pt.shape[2]
        let blockRows = patchBlockRows(patchWidth: pt.shape[3], positions: rows)
        guard r.type?.shape == [rows, pt.shape[3]] else { return nil }
        let dots = (users[r.id] ?? []).compactMap { inst[$0] }
        guard !dots.isEmpty, dots.count == uses[r.id] else { return nil }
        var products: [(Int, Bool)] = []
        for d in dots {
            guard d.operands.count == 2, d.operands[0] == r.id, d.operands[1] != r.id, !accumulated.contains(d.id),
                  let dt = d.type, dt.rank == 2, let bt = types[d.operands[1]], bt.rank == 2,
                  blockRows * pt.shape[3] * dt.shape[1] >= perImageMinimumWork else { return nil }
            switch d.op {
            case .dot(false, _): products.append((d.id, false))
            case .dot(true, false) where bt.shape[0] == rows: products.append((d.id, true))
            default: return nil
            }
        }
        return (r.id, products.sorted { $0.0 < $1.0 })
    }

    /// A transcendental (or pow) among the values computed inline for `v`, if any.
    static func costlyOp(in v: Int, inst: [Int: Instruction], materialized: [Int: String]) -> String? {
        var stack = [v], seen = Set<Int>()
        while let x = stack.popLast() {
            guard seen.insert(x).inserted, let i = inst[x], x == v || materialized[x] == nil else { continue }
            switch i.op {
            case .unary(let u) where Self.costlyUnary.contains(u): return u.rawValue
            case .binary(.pow): return "pow"
            case .varRead, .constant: continue
            case .reshape, .broadcast: stack += i.operands
            default: if i.op.isElementwise { stack += i.operands }
            }
        }
        return nil
    }
}
