import KilnIR
import KilnPasses

/// Writes the functions of an executable from IR and its KernelPlan, against a `KernelRenderer`.
///
/// Each primitive knows how to compute one element at an index from its operands' elements, so a
/// kernel's loop computes its whole inline (fused) expression tree per element; values with a
/// buffer are simply loaded. The entry has the signature
/// `void entry(ptr inputs[], ptr outputs[], ptr arena, ptr constants[])`.
public final class KernelWriter {
    let r: any KernelRenderer
    let f: Function
    let plan: KernelPlan
    let target: TargetDescription
    /// Record a timestamp before each kernel and after the last (KILN_DEBUG=2), in the slots the
    /// executable puts at `constants[plan.constants.count]`.
    let profile: Bool
    /// Count the NaN and infinite elements of every kernel's output (the debugger's build, see
    /// NonFiniteCounts.swift).
    public var countNonFinite = false
    /// Compiled from a batch template: loops, products and batch scalars take the run's batch.
    public var batch: BatchRows?
    /// The run's batch, loaded once at the start of the function being written (with `batch`).
    var batchCount: RValue?
    let inst: [Int: Instruction]
    let types: [Int: TensorType]

    /// Buffer pointers of the current function, by value.
    var pointers: [Int: RValue] = [:]
    /// The row range of a split kernel, consumed by its first loop nest.
    var splitRange: (RValue, RValue)?
    /// Values a kernel holds in a buffer of its own while it runs (a per-image product).
    var localBuffers: [Int: RValue] = [:]
    /// Per check evaluated by the function being written, the slot of its flag (set once an
    /// element failed), in the order first evaluated.
    var faultSlots: [(check: Int, slot: RSlot)] = []
    /// Set while writing the scan that finds a failed check's first element, so checks inside
    /// the checked expression record nothing there.
    var diagnosing = false
    /// Inline constants of several elements, as read-only arrays of the module.
    var globals: [Int: RValue] = [:]
    /// Writing a device function run over work items: its work item's flat index and the count
    /// of elements its first loop nest must have (consumed by that loop nest).
    var workItem: (index: RValue, count: Int)?
    /// Checks the device functions of the current plan kernel evaluate (their faults are
    /// recorded through the record's atomic key).
    var deviceChecks: Set<Int> = []
    /// Set while writing a function of the cold module that computes a costly element function
    /// over more than `KernelPlan.coldVectorizedElements` elements: its loop nests' innermost
    /// loops ask to be vectorised (the cold module vectorises only loops that ask).
    var vectorizeLoops = false

    public init(renderer: any KernelRenderer, function: Function, plan: KernelPlan, target: TargetDescription, profile: Bool = false) {
        r = renderer
        f = function
        self.plan = plan
        self.target = target
        self.profile = profile
        inst = Dictionary(uniqueKeysWithValues: function.body.map { ($0.id, $0) })
        types = function.typeTable()
    }

    // MARK: entry

    /// How one function of a plan kernel runs. Native targets call it once or split it by rows
    /// across the worker pool; a device runs it over work items (one per element of its first
    /// loop nest), over work-groups (a reduction tree each), or launches a device library kernel.
    enum Run {
        case once
        /// Split over the pool by rows of its first loop nest's dimension 0.
        case rows(Int)
        /// Over the run's rows of batch-carrying value `of` (its first loop nest's dimension 0),
        /// split over the pool when `pooled`.
        case batchRows(of: Int, pooled: Bool)
        /// Over the run's blocks of patch rows (`KernelWriter.patchBlockCount`), split over the
        /// pool when `pooled`.
        case batchBlocks(KernelPlan.PatchBlocks, pooled: Bool)
        /// One work item per element of its first loop nest (`count` elements).
        case items(Int)
        /// `count` work-groups of `target.reductionGroupSize` work items.
        case groups(Int)
        /// A device library kernel: no function of ours.
        case library(kernel: String, arguments: [DeviceArgument], global: [Int])
    }

    /// One function of a plan kernel: its name, how it runs and what it computes; `sumOfParts`
    /// when it adds up the partial results of the kernel's other part (a split reduction's, a
    /// weight gradient's).
    struct KernelPart {
        let name: String
        let run: Run
        var sumOfParts = false
        let body: () -> Void
    }

    /// The functions that compute plan kernel `n`, in order (a split reduction is its parts, then
    /// their sum): the one place the plan's kernels are taken apart, for native entries and for
    /// device launches alike.
    func parts(of k: KernelPlan.Kernel, _ n: Int, entryName: String) -> [KernelPart] {
        let name = "\(entryName)_k\(n)"
        let device = target.workItems
        func part(_ name: String, _ run: Run, sumOfParts: Bool = false, _ body: @escaping () -> Void) -> KernelPart {
            KernelPart(name: name, run: run, sumOfParts: sumOfParts, body: body)
        }
        /// Native: split by rows when worth it; device: one work item per element.
        func elementwise(_ shape: [Int], work: Int? = nil) -> Run {
            device ? .items(shape.reduce(1, *)) : poolRows(shape, work: work).map(Run.rows) ?? .once
        }
        /// Over the rows of `v` when it carries the batch.
        func rows(of v: Int, _ run: Run) -> Run {
            guard batch?.template.carriers[v] != nil else { return run }
            if case .rows = run { return .batchRows(of: v, pooled: true) }
            return .batchRows(of: v, pooled: false)
        }
        func notPlanned() -> Never { preconditionFailure("\(k) is not planned for a work-item target") }
        switch k {
        case .loop(let v):
            let t = inst[v]!.type!
            return [part(name, rows(of: v, elementwise(t.shape))) { [self] in
                let out = base(v)!
                loopNest(t.shape) { idx in store(compute(v, idx), out, idx.linear, t.dtype) }
            }]
        case .patches(let v):
            let t = inst[v]!.type!
            if device {
                // One work item per patch entry: neighbouring items write neighbouring bytes.
                return [part(name, .items(t.elementCount)) { [self] in
                    let out = base(v)!
                    loopNest(t.shape) { idx in store(compute(v, idx), out, idx.linear, t.dtype) }
                }]
            }
            return [part(name, rows(of: v, elementwise(t.shape))) { [self] in writePatchesKernel(inst[v]!) }]
        case .argReduction(let v):
            return [part(name, rows(of: v, elementwise(inst[v]!.type!.shape))) { [self] in writeArgReduce(inst[v]!) }]
        case .windowReduction(let v):
            return [part(name, rows(of: v, elementwise(inst[v]!.type!.shape))) { [self] in writeReduceWindow(inst[v]!) }]
        case .reduction(let v):
            if device { return deviceReduction(inst[v]!, name) }
            return [part(name, rows(of: v, reductionRows(inst[v]!).map(Run.rows) ?? .once)) { [self] in writeReduce(inst[v]!, wide: nil) }]
        case .blockedReduction(let v, let wide):
            if device { notPlanned() }
            // Over leading axes: one loop streams the rows.
            return [part(name, .once) { [self] in writeReduce(inst[v]!, wide: wide) }]
        case .splitReduction(let v, let parts, let scratch, let wide):
            if device { return deviceSplitReduction(inst[v]!, name, parts: parts, scratch: scratch) }
            return [part(name, .rows(parts)) { [self] in writeReductionParts(inst[v]!, parts, scratch: scratch, wide: wide) },
                    part(name + "_sum", .once, sumOfParts: true) { [self] in writePartsSum(inst[v]!, parts, scratch: scratch, wide: wide) }]
        case .unpatches(let u):
            guard case .unpatches(let window, _, _, _, _, _) = inst[u]!.op else { preconditionFailure("unpatches of \(inst[u]!.op.mnemonic)") }
            let shape = inst[u]!.type!.shape
            return [part(name, rows(of: u, elementwise(shape, work: shape.reduce(1, *) * window.reduce(1, *)))) { [self] in writeUnpatches(inst[u]!, perImageProduct: nil) }]
        case .perImageProduct(let u, let d):
            if device { notPlanned() }
            guard case .unpatches(let window, _, _, _, _, _) = inst[u]!.op else { preconditionFailure("unpatches of \(inst[u]!.op.mnemonic)") }
            let shape = inst[u]!.type!.shape, ps = types[inst[u]!.operands[0]]!.shape, kk = types[inst[d]!.operands[0]]!.shape[1]
            // Per-image products run on the pool's threads only through Kiln's own kernel:
            // Debian's OpenBLAS is not safe to call from several threads at once.
            let pooled = target.ownProduct(m: ps[1] * ps[2], n: ps[3], k: kk)
            let work = shape.reduce(1, *) * window.reduce(1, *) + ps.reduce(1, *) * kk
            return [part(name, rows(of: u, pooled ? poolRows(shape, work: work).map(Run.rows) ?? .once : .once)) { [self] in writeUnpatches(inst[u]!, perImageProduct: d) }]
        case .product(let d):
            if device {
                if let launch = libraryProduct(inst[d]!) { return [part(name, launch) {}] }
                return [part(name, .items(inst[d]!.type!.elementCount)) { [self] in writeDotLoop(inst[d]!) }]
            }
            // Matrix products split themselves: kiln_sgemm over the pool by output tiles,
            // OpenBLAS with its own threads.
            return [part(name, .once) { [self] in writeDot(inst[d]!) }]
        case .patchProduct(let d, let blocks):
            if device { notPlanned() }
            // By block, on Kiln's own kernel only (Debian's OpenBLAS is not safe to call from
            // several threads at once).
            let pooled = blocks.count >= 2 && target.ownProduct(m: blocks.rows, n: inst[d]!.type!.shape[1], k: inst[blocks.patches]!.type!.shape[3])
            let run: Run = batch?.template.carriers[blocks.patches] != nil ? .batchBlocks(blocks, pooled: pooled) : pooled ? .rows(blocks.count) : .once
            return [part(name, run) { [self] in writePatchProduct(inst[d]!, blocks) }]
        case .patchGradient(let d, let blocks, let parts, let scratch):
            if device { notPlanned() }
            // Parts run on the pool only through Kiln's own product, as above.
            let pooled = target.ownProduct(m: inst[blocks.patches]!.type!.shape[3], n: inst[d]!.type!.shape[1], k: blocks.rows)
            return [part(name, pooled ? .rows(parts) : .once) { [self] in writePatchGradientParts(inst[d]!, blocks, parts: parts, scratch: scratch) },
                    part(name + "_sum", .once, sumOfParts: true) { [self] in writePartsSum(inst[d]!, parts, scratch: scratch, wide: nil) }]
        case .writes(let ws):
            let shape = types[ws[0].value]!.shape
            return [part(name, elementwise(shape)) { [self] in
                let outs = ws.map { base($0.variable)! }
                // Each write's loads come after the stores of the writes before it.
                loopNest(shape) { idx in
                    for (w, out) in zip(ws, outs) { store(element(w.value, idx), out, idx.linear, types[w.value]!.dtype) }
                }
            }]
        case .accumulatedProduct(_, let variable, let dot, let scale):
            if device { notPlanned() }
            // The product splits itself.
            return [part(name, .once) { [self] in writeAccumulatedProduct(inst[dot]!, into: base(variable)!, scale: scale) }]
        case .wideConcat(let c):
            if device { return deviceConcat(inst[c]!, name) }
            // Several functions of a few operands each: LLVM's loop passes are quadratic in
            // the loops of one function.
            return concatParts(inst[c]!).enumerated().map { p, piece in
                part("\(name)_\(p)", .once) { [self] in writeConcatOperands(inst[c]!, piece.operands, from: piece.offset) }
            }
        case .resultCopies(let copies):
            func copy(_ c: KernelPlan.ResultCopy) {
                let t = types[c.value]!
                let out = r.tableEntry(r.parameter(1), c.result)
                loopNest(t.shape, rows: batchExtent(c.value)) { idx in store(element(c.value, idx), out, idx.linear, t.dtype) }
            }
            if device {
                return copies.map { c in part("\(entryName)_results_\(c.result)", .items(types[c.value]!.elementCount)) { copy(c) } }
            }
            return [part("\(entryName)_results", .once) { copies.forEach(copy) }]
        }
    }

    func concatAxis(_ i: Instruction) -> Int {
        guard case .concat(let axis) = i.op else { preconditionFailure("wide concat of \(i.op.mnemonic)") }
        return axis
    }

    // MARK: native entry

    /// The entry calls one function per kernel in order: LLVM's register allocator and scheduler
    /// grow faster than linearly with function size, so many small functions compile much faster
    /// than one large one (and each is a unit a worker pool can split).
    ///
    /// With more than one module in `layout` the executable is rendered as that many modules
    /// (compiled in parallel): this one, `shard`, defines the functions `shardOwners` gives it
    /// (exported, so the others can link to them), and the layout's `entryShard` also defines
    /// the entry, which declares the rest.
    public func write(entryName: String, shard: Int = 0, of layout: ShardLayout = .single) {
        precondition(!target.workItems, "a work-item target is written as a DeviceProgram")
        let sharded = layout.count > 1
        let allParts = nativeParts(entryName: entryName)
        let owners = shardOwners(allParts, layout)
        // Per plan kernel, the functions that compute it, called in order.
        var kernelFunctions: [[(RFunction, run: Run)]] = []
        for (n, kernelParts) in allParts.enumerated() {
            kernelFunctions.append([])
            for (j, p) in kernelParts.enumerated() {
                let ranged: Bool
                switch p.run {
                case .once: ranged = false
                case .rows, .batchRows, .batchBlocks: ranged = true
                case .items, .groups, .library: preconditionFailure("a device run on a native target")
                }
                let fn = RFunction(name: p.name, ranged: ranged)
                if owners[n][j] == shard {
                    // A sum of parts computes none of its kernel's element functions.
                    vectorizeLoops = layout.isCold(shard) && !p.sumOfParts && vectorizedWhenCold(plan.kernels[n])
                    function(fn, exported: sharded, kernel: true, p.body)
                    vectorizeLoops = false
                } else if shard == layout.entryShard {
                    r.declare(fn)
                } else { continue }
                kernelFunctions[n].append((fn, p.run))
            }
        }
        guard shard == layout.entryShard else { return }
        function(RFunction(name: entryName, ranged: false), exported: true) {
            for (n, calls) in kernelFunctions.enumerated() {
                profileTick(n)
                for (k, run) in calls {
                    switch run {
                    case .rows(let count): r.parallelFor(k, count: c64(count))
                    case .batchRows(let v, true): r.parallelFor(k, count: batchExtent(v)!)
                    case .batchRows(let v, false): r.call(k, rows: batchExtent(v)!)
                    case .batchBlocks(let blocks, true): r.parallelFor(k, count: patchBlockCount(blocks))
                    case .batchBlocks(let blocks, false): r.call(k, rows: patchBlockCount(blocks))
                    default: r.call(k, rows: nil)
                    }
                }
                if mayFault(plan.kernels[n]) { returnIfFaulted() }
            }
            profileTick(kernelFunctions.count)
        }
    }

    /// Per plan kernel, the functions a native entry calls for it: its parts, then its non-finite
    /// count (the debugger's build).
    func nativeParts(entryName: String) -> [[KernelPart]] {
        plan.kernels.enumerated().map { n, k in
            parts(of: k, n, entryName: entryName) + [nonFiniteCountPart(k, n, entryName: entryName)].compactMap { $0 }
        }
    }

    /// With profiling on, records a timestamp in slot `slot` of the executable's profile slots
    /// (KILN_DEBUG=2).
    func profileTick(_ slot: Int) {
        guard profile else { return }
        _ = r.callRuntime(.profileTick, [r.tableEntry(r.parameter(3), plan.constants.count), c64(slot)])
    }

    /// Rows of dimension 0 to split a kernel over the worker pool (its first loop nest runs over
    /// `shape`), when its work (elements, unless given) is large enough.
    func poolRows(_ shape: [Int], work: Int? = nil) -> Int? {
        guard (work ?? shape.reduce(1, *)) >= target.parallelThreshold, let rows = shape.first, rows >= 2 else { return nil }
        return rows
    }

    /// A reduction over trailing or inner axes splits by output rows; one over leading axes
    /// streams rows in one loop.
    func reductionRows(_ i: Instruction) -> Int? {
        guard case .reduce(_, let axes) = i.op else { return nil }
        let xt = types[i.operands[0]]!
        let kept = (0..<xt.rank).filter { !axes.contains($0) }
        if kept.isEmpty || (!axes.isEmpty && axes.max()! < kept.min()!) { return nil }
        return poolRows(i.type!.shape, work: xt.elementCount)
    }

    /// Renders `fn` with `body` written into it, then its fault records.
    func function(_ fn: RFunction, exported: Bool, kernel: Bool = false, _ body: () -> Void) {
        r.beginFunction(fn, exported: exported, kernel: kernel)
        pointers = [:]
        faultSlots = []
        splitRange = fn.ranged ? (r.parameter(4), r.parameter(5)) : nil
        // Where every loop of the function can use it (loops read it for bounds and counts).
        batchCount = batch.map { load(r.buffer(.arena(offset: $0.slot, name: "batch")), c64(0), .int64) }
        body()
        splitRange = nil
        batchCount = nil
        recordFaults()
        r.endFunction()
    }

    /// The buffer of value `id` per the plan, nil for values computed inline.
    func base(_ id: Int) -> RValue? {
        if let p = pointers[id] { return p }
        guard let s = plan.storage[id] else { return nil }
        let p: RValue
        switch s {
        case .param(let i), .variable(param: let i): p = r.buffer(.input(i))
        case .constant(let k): p = r.buffer(.constant(k))
        case .result(let k): p = r.buffer(.output(k))
        case .arena(let off): p = r.buffer(.arena(offset: off, name: "arena\(off)"))
        case .inline: return nil
        }
        pointers[id] = p
        return p
    }

    /// Scratch bytes of a kernel at `offset` in the arena, a buffer of its own for alias analysis.
    func scratch(_ offset: Int, _ name: String) -> RValue { r.buffer(.arena(offset: offset, name: name)) }

    // MARK: elements

    /// The operand position of a reshape's element. Leading and trailing dimensions the two shapes
    /// share map one to one; only the differing middle goes through a linear index, so common
    /// reshapes (adding unit dimensions, splitting the last one) need little or no division.
    func reshapeIndex(_ idx: Index, to shape: [Int]) -> Index {
        let out = idx.shape
        var p = 0
        while p < min(out.count, shape.count) && out[p] == shape[p] { p += 1 }
        var q = 0
        while q < min(out.count, shape.count) - p && out[out.count - 1 - q] == shape[shape.count - 1 - q] { q += 1 }
        if p == 0 && q == 0 { return Index(linear: idx.linear, shape: shape, writer: self) }
        let m = idx.multi
        let midOut = Array(out[p..<(out.count - q)]), midIn = Array(shape[p..<(shape.count - q)])
        var linear = c64(0)
        for (k, d) in midOut.enumerated() { linear = r.int(.add, r.int(.mul, linear, c64(d)), m[p + k]) }
        let mid = midIn.isEmpty ? [] : Index(linear: linear, shape: midIn, writer: self).multi
        return Index(multi: Array(m.prefix(p)) + mid + Array(m.suffix(q)), shape: shape, writer: self)
    }

    /// A buffer holding `v`'s elements, if it has one.
    func bufferPointer(_ v: Int) -> RValue? {
        var v = v
        // A loop through views: a chain of reshapes may be as long as the graph.
        while true {
            // A batch scalar is its run's value, loaded where it is read (compute).
            if batch?.scalarSlot(v) != nil { return nil }
            if let p = localBuffers[v] { return p }
            if let p = base(v) { return p }
            guard let i = inst[v] else { return nil }
            if i.op == .varRead, plan.storage[v] == .inline { return base(i.operands[0]) }
            if plan.views.contains(v) { v = i.operands[0]; continue }
            if case .constant(let t) = i.op, t.elementCount > 1 { return globalConstant(v, t) }
            return nil
        }
    }

    func globalConstant(_ v: Int, _ t: Tensor) -> RValue {
        if let g = globals[v] { return g }
        let elems = (0..<t.elementCount).map { memoryConstant(t.element(at: $0), t.dtype) }
        let g = r.constantArray(elems, .memory(t.dtype), name: "c\(v)")
        globals[v] = g
        return g
    }

    /// Element (lead..., major * minorExtent + minor) of `v`, whose last dimension is a multiple of
    /// `minorExtent`. Where `v` is computed inline by a reshape that merged (major, minor) into that
    /// dimension, the reshape's operand is read at (lead..., major, minor) directly: LLVM cannot
    /// see that splitting the merged index again gives back `minor`, and the division would turn
    /// contiguous loads into gathers.
    func element(_ v: Int, lead: [RValue], major: RValue, minor: RValue, minorExtent: Int) -> RValue {
        let shape = types[v]!.shape
        if bufferPointer(v) == nil, let i = inst[v], case .reshape = i.op {
            let xs = types[i.operands[0]]!.shape
            if xs.count == shape.count + 1, xs.last == minorExtent, Array(xs.prefix(shape.count - 1)) == Array(shape.dropLast()) {
                return element(i.operands[0], Index(multi: lead + [major, minor], shape: xs, writer: self))
            }
        }
        let k = r.int(.add, r.int(.mul, major, c64(minorExtent)), minor)
        return element(v, Index(multi: lead + [k], shape: shape, writer: self))
    }

    /// Element `idx` of value `v`: a load if it has a buffer, else computed in place.
    func element(_ v: Int, _ idx: Index) -> RValue {
        if let p = bufferPointer(v) { return load(p, idx.linear, types[v]!.dtype) }
        return compute(v, idx)
    }

    /// Computes element `idx` of instruction `v` from its operands' elements.
    func compute(_ v: Int, _ idx: Index) -> RValue {
        let i = inst[v]!
        let d = i.type!.dtype
        switch i.op {
        case .constant(let t):
            if let s = batchScalar(v, d) { return s }
            if t.elementCount == 1 { return registerConstant(t.element(at: 0), t.dtype) }
            return load(globalConstant(v, t), idx.linear, d)
        case .unary(let u):
            return unary(u, element(i.operands[0], idx), d)
        case .binary(let op):
            return binary(op, element(i.operands[0], idx), element(i.operands[1], idx), d)
        case .compare(let c):
            let od = types[i.operands[0]]!.dtype
            return compare(c, element(i.operands[0], idx), element(i.operands[1], idx), od)
        case .select:
            return r.select(element(i.operands[0], idx), element(i.operands[1], idx), element(i.operands[2], idx))
        case .cast(let to):
            let from = types[i.operands[0]]!.dtype
            return cast(element(i.operands[0], idx), from, to)
        case .broadcast(_, let dims):
            let xs = types[i.operands[0]]!.shape
            let multi = dims.enumerated().map { k, dim in xs[k] == 1 ? c64(0) : idx.multi[dim] }
            return element(i.operands[0], Index(multi: multi, shape: xs, writer: self))
        case .reshape:
            return element(i.operands[0], reshapeIndex(idx, to: types[i.operands[0]]!.shape))
        case .transpose(let perm):
            var multi = [RValue](repeating: c64(0), count: perm.count)
            for (k, p) in perm.enumerated() { multi[p] = idx.multi[k] }
            return element(i.operands[0], Index(multi: multi, shape: types[i.operands[0]]!.shape, writer: self))
        case .varRead:
            return load(base(i.operands[0])!, idx.linear, d)
        case .iota(_, _, let axis):
            return cast(idx.multi[axis], .int64, d)
        case .slice(let start, let strides, _):
            let xs = types[i.operands[0]]!.shape
            let multi = (0..<xs.count).map { k in r.int(.add, c64(start[k]), r.int(.mul, idx.multi[k], c64(strides[k]))) }
            return element(i.operands[0], Index(multi: multi, shape: xs, writer: self))
        case .pad(let low, _, let mode):
            return pad(i, idx, low, mode)
        case .concat(let axis):
            return concat(i, idx, axis)
        case .gather(let axis, let batchDims):
            return gather(i, idx, axis, batchDims)
        case .patches(let window, let strides, let dilations, let lo, _):
            return patch(i, idx, window, strides, dilations, lo)
        case .random(let kind, _, _, let seed):
            return random(i, idx, kind, seed)
        case .check(let c):
            let x = element(i.operands[0], idx)
            if !diagnosing { foldCheck(i, c, x, idx) }
            return x
        case .reduce, .dot, .varWrite, .argReduce, .reduceWindow, .unpatches:
            preconditionFailure("\(i.op.mnemonic) is always materialised by the plan")
        }
    }

    // MARK: scalars

    func c64(_ v: Int) -> RValue { r.constant(int: Int64(v), .i64) }
    func c32(_ v: Int) -> RValue { r.constant(int: Int64(v), .i32) }
    var trueValue: RValue { r.constant(int: 1, .i1) }

    /// Element `index` of a buffer of dtype `d`; booleans are one byte in memory, i1 in registers.
    func load(_ p: RValue, _ index: RValue, _ d: DType) -> RValue {
        let v = r.load(p, index, .memory(d))
        return d == .bool ? r.icmp(.ne, v, r.constant(int: 0, .i8)) : v
    }

    func store(_ v: RValue, _ p: RValue, _ index: RValue, _ d: DType) {
        r.store(d == .bool ? r.convert(.zext, v, to: .i8) : v, p, index)
    }

    func registerConstant(_ v: ScalarValue, _ d: DType) -> RValue {
        switch d {
        case .float32, .float64: return r.constant(float: v.asDouble, .register(d))
        case .float16, .bfloat16: return r.constant(int: Int64(HalfFloat.bits(Float(v.asDouble), d)), .i16)
        case .bool: return r.constant(int: v.asDouble != 0 ? 1 : 0, .i1)
        default:
            if case .i(let x) = v { return r.constant(int: x, .register(d)) }
            return r.constant(int: Int64(v.asDouble), .register(d))
        }
    }

    func memoryConstant(_ v: ScalarValue, _ d: DType) -> RValue {
        d == .bool ? r.constant(int: v.asDouble != 0 ? 1 : 0, .i8) : registerConstant(v, d)
    }

    func constValue(_ x: Double, _ d: DType) -> RValue {
        registerConstant(d.isFloatingPoint ? .f(x) : d == .bool ? .b(x != 0) : .i(Int64(x)), d)
    }

    func reduceIdentity(_ op: ReduceOp, _ d: DType) -> RValue {
        switch op {
        case .sum: return constValue(0, d)
        case .prod: return constValue(1, d)
        case .max:
            switch d {
            case .float32, .float64: return constValue(-.infinity, d)
            case .int32: return registerConstant(.i(Int64(Int32.min)), d)
            case .int16: return registerConstant(.i(Int64(Int16.min)), d)
            case .int64: return registerConstant(.i(Int64.min), d)
            default: return constValue(0, d)
            }
        case .min:
            switch d {
            case .float32, .float64: return constValue(.infinity, d)
            case .int32: return registerConstant(.i(Int64(Int32.max)), d)
            case .int16: return registerConstant(.i(Int64(Int16.max)), d)
            case .int64: return registerConstant(.i(Int64.max), d)
            case .uint8: return registerConstant(.i(255), d)
            default: return constValue(1, d)
            }
        }
    }

    /// A float32 or float64 register value as a Double, and back.
    func widen(_ v: RValue, _ d: DType) -> RValue { d == .float32 ? r.convert(.fpext, v, to: .f64) : v }
    func narrow(_ v: RValue, _ d: DType) -> RValue { d == .float32 ? r.convert(.fptrunc, v, to: .f32) : v }
}
