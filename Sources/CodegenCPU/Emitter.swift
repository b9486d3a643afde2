import CLLVM
import CKilnRT
import KilnIR
import KilnPasses

/// Builds the one LLVM function of an executable from IR and its KernelPlan.
///
/// Each primitive knows how to compute one element at an index from its operands' elements, so a
/// kernel's loop computes its whole inline (fused) expression tree per element; values with a
/// buffer are simply loaded. The entry has the signature
/// `void entry(ptr inputs[], ptr outputs[], ptr arena, ptr constants[])`.
final class Emitter {
    let ctx: LLVMContextRef
    let module: LLVMModuleRef
    let b: LLVMBuilderRef
    let f: Function
    let plan: KernelPlan
    let inst: [Int: Instruction]
    let types: [Int: TensorType]

    let void, i1, i8, i32, i64, f32, f64, ptr: LLVMTypeRef
    var fn: LLVMValueRef!
    var entryBlock: LLVMBasicBlockRef!
    var entryTerminator: LLVMValueRef!
    var pointers: [Int: LLVMValueRef] = [:]
    /// Where the entry records kernel timestamps, when profiling.
    var profileSlots: UnsafeMutablePointer<UInt64>?
    /// The row range of a split kernel, consumed by its first loop nest.
    var splitRange: (LLVMValueRef, LLVMValueRef)?
    /// Which buffer each base pointer of the current function is (see attachAliasScopes).
    var bufferOfPointer: [LLVMValueRef: String] = [:]
    var bufferAccesses: [(LLVMValueRef, String)] = []
    var aliasDomain: LLVMMetadataRef?
    /// Values a kernel holds in a buffer of its own while it runs (a per-image product).
    var localBuffers: [Int: LLVMValueRef] = [:]
    /// Per check evaluated by the function being emitted, the stack slot of its flag (set once
    /// an element failed), in the order first evaluated.
    var faultSlots: [(check: Int, slot: LLVMValueRef)] = []
    /// Set while emitting the scan that finds a failed check's first element, so checks inside
    /// the checked expression record nothing there.
    var diagnosing = false
    /// Kernels with at least this many elements are split across the worker pool.
    static let parallelThreshold = 32768
    /// Kernels touching more buffers than this get no alias scopes (see attachAliasScopes).
    static let aliasScopeBufferLimit = 64

    init(context: LLVMContextRef, moduleName: String, function: Function, plan: KernelPlan) {
        ctx = context
        module = LLVMModuleCreateWithNameInContext(moduleName, ctx)
        b = LLVMCreateBuilderInContext(ctx)
        f = function
        self.plan = plan
        inst = Dictionary(uniqueKeysWithValues: function.body.map { ($0.id, $0) })
        types = function.typeTable()
        void = LLVMVoidTypeInContext(ctx)
        i1 = LLVMInt1TypeInContext(ctx)
        i8 = LLVMInt8TypeInContext(ctx)
        i32 = LLVMInt32TypeInContext(ctx)
        i64 = LLVMInt64TypeInContext(ctx)
        f32 = LLVMFloatTypeInContext(ctx)
        f64 = LLVMDoubleTypeInContext(ctx)
        ptr = LLVMPointerTypeInContext(ctx, 0)
    }

    deinit { LLVMDisposeBuilder(b) }

    // MARK: entry

    /// The entry calls one function per kernel in order: LLVM's register allocator and scheduler
    /// grow faster than linearly with function size, so many small functions compile much faster
    /// than one large one (and each is a unit a worker pool can split).
    ///
    /// With `shards` > 1 the executable is compiled as that many modules in parallel: this one
    /// defines the kernels whose index is `shard` modulo `shards` (exported, so the others can
    /// link to them), and shard 0 also defines the entry, which declares the rest.
    func emit(entryName: String, shard: Int = 0, of shards: Int = 1) throws -> LLVMModuleRef {
        let sharded = shards > 1
        // Per plan kernel, the functions that compute it, called in order (a split reduction is
        // its parts on the pool, then their sum).
        var kernelFunctions: [[(LLVMValueRef, rows: Int?)]] = []
        func kernel(_ n: Int, _ name: String, rows: Int?, _ body: () throws -> Void) throws {
            if n >= kernelFunctions.count { kernelFunctions.append([]) }
            if n % shards == shard {
                kernelFunctions[n].append((try function(name, exported: sharded, kernel: true, ranged: rows != nil, body), rows))
            } else if shard == 0 {
                var params: [LLVMTypeRef?] = rows != nil ? [ptr, ptr, ptr, ptr, i64, i64] : [ptr, ptr, ptr, ptr]
                kernelFunctions[n].append((LLVMAddFunction(module, name, LLVMFunctionType(void, &params, UInt32(params.count), 0))!, rows))
            }
        }
        for (n, k) in plan.kernels.enumerated() {
            let name = "\(entryName)_k\(n)"
            switch k {
            case .splitReduction(let r, let parts, let scratch, let wide):
                try kernel(n, name, rows: parts) { emitReductionParts(inst[r]!, parts, scratch: scratch, wide: wide) }
                try kernel(n, name + "_sum", rows: nil) { emitPartsSum(inst[r]!, parts, scratch: scratch, wide: wide) }
            case .patchGradient(let dot, let blocks, let parts, let scratch):
                // Parts run on the pool only through Kiln's own product (Debian's OpenBLAS is not
                // safe to call from several threads at once).
                let d = inst[dot]!, patchWidth = inst[blocks.patches]!.type!.shape[3]
                let pooled = MatrixProducts.ownKernel(m: patchWidth, n: d.type!.shape[1], k: blocks.rows)
                try kernel(n, name, rows: pooled ? parts : nil) { emitPatchGradientParts(d, blocks, parts: parts, scratch: scratch) }
                try kernel(n, name + "_sum", rows: nil) { emitPartsSum(d, parts, scratch: scratch, wide: nil) }
            case .wideConcat(let c):
                // A wide concat is several functions of a few operands each: LLVM's loop passes
                // are quadratic in the loops of one function.
                guard case .concat(let axis) = inst[c]!.op else { preconditionFailure("wide concat of \(inst[c]!.op.mnemonic)") }
                for (p, part) in concatParts(inst[c]!, axis).enumerated() {
                    try kernel(n, "\(name)_\(p)", rows: nil) { emitConcatOperands(inst[c]!, axis, part.operands, from: part.offset) }
                }
            case .resultCopies(let copies):
                try kernel(n, "\(entryName)_results", rows: nil) {
                    for c in copies {
                        let t = types[c.value]!
                        let out = tableLoad(LLVMGetParam(fn, 1)!, c.result)
                        loopNest(t.shape) { idx in store(element(c.value, idx), out, idx.linear, t.dtype) }
                    }
                }
            case .loop, .patches, .reduction, .argReduction, .windowReduction, .unpatches, .product, .write, .accumulatedProduct,
                 .perImageProduct, .patchProduct, .blockedReduction:
                try kernel(n, name, rows: splitRows(k)) { try emitKernel(k) }
            }
        }
        if shard == 0 {
            _ = try function(entryName, exported: true) {
                var args: [LLVMValueRef?] = (0..<4).map { LLVMGetParam(fn, UInt32($0)) }
                let table = entryAlloca(LLVMArrayType(ptr, 4))
                for k in 0..<4 {
                    var idx: [LLVMValueRef?] = [constI64(0), constI64(k)]
                    LLVMBuildStore(b, args[k], LLVMBuildGEP2(b, LLVMArrayType(ptr, 4), table, &idx, 2, ""))
                }
                var poolParams: [LLVMTypeRef?] = [ptr, ptr, i64]
                let poolType = LLVMFunctionType(void, &poolParams, 3, 0)!
                let parallelFor = declare("kiln_parallel_for", poolType)
                for (n, calls) in kernelFunctions.enumerated() {
                    profileTick(n)
                    for (k, rows) in calls {
                        if let rows {
                            var pargs: [LLVMValueRef?] = [k, table, constI64(rows)]
                            LLVMBuildCall2(b, poolType, parallelFor, &pargs, 3, "")
                        } else {
                            LLVMBuildCall2(b, kernelType, k, &args, 4, "")
                        }
                    }
                    if mayFault(plan.kernels[n]) { returnIfFaulted() }
                }
                profileTick(kernelFunctions.count)
            }
        }

        var err: UnsafeMutablePointer<CChar>?
        if LLVMVerifyModule(module, LLVMReturnStatusAction, &err) != 0 {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("generated LLVM IR is invalid: \(String(cString: err!))")
        }
        LLVMDisposeMessage(err)
        return module
    }

    /// With profiling on, records a timestamp in `profileSlots[slot]` (KILN_DEBUG=2).
    func profileTick(_ slot: Int) {
        guard let slots = profileSlots else { return }
        var params: [LLVMTypeRef?] = [ptr, i64]
        let t = LLVMFunctionType(void, &params, 2, 0)!
        var args: [LLVMValueRef?] = [LLVMConstIntToPtr(LLVMConstInt(i64, UInt64(UInt(bitPattern: slots)), 0), ptr), constI64(slot)]
        LLVMBuildCall2(b, t, declare("kiln_profile_tick", t), &args, 2, "")
    }

    var kernelType: LLVMTypeRef {
        var params: [LLVMTypeRef?] = [ptr, ptr, ptr, ptr]
        return LLVMFunctionType(void, &params, 4, 0)
    }

    /// Rows of dimension 0 to split a kernel over the worker pool, when it is large enough and
    /// its first loop nest runs over its output (matrix products split themselves).
    func splitRows(_ k: KernelPlan.Kernel) -> Int? {
        let shape: [Int]
        var work: Int
        switch k {
        case .product, .accumulatedProduct, .blockedReduction, .splitReduction, .patchGradient, .wideConcat, .resultCopies:
            // Matrix products split themselves: kiln_sgemm over the pool by output tiles, OpenBLAS
            // with its own threads; reductions over leading axes stream rows in one loop.
            return nil
        case .patchProduct(let d, let blocks):
            // A product of blocks of patch rows splits by block, on Kiln's own kernel only
            // (Debian's OpenBLAS is not safe to call from several threads).
            guard blocks.count >= 2, MatrixProducts.ownKernel(m: blocks.rows, n: inst[d]!.type!.shape[1], k: inst[blocks.patches]!.type!.shape[3]) else { return nil }
            return blocks.count
        case .write(_, _, let value):
            shape = types[value]!.shape; work = shape.reduce(1, *)
        case .reduction(let r):
            guard case .reduce(_, let axes) = inst[r]!.op else { return nil }
            let xt = types[inst[r]!.operands[0]]!
            let kept = (0..<xt.rank).filter { !axes.contains($0) }
            if kept.isEmpty || (!axes.isEmpty && axes.max()! < kept.min()!) { return nil }
            shape = inst[r]!.type!.shape
            work = xt.elementCount
        case .unpatches(let u):
            guard case .unpatches(let window, _, _, _, _, _) = inst[u]!.op else { return nil }
            shape = inst[u]!.type!.shape; work = shape.reduce(1, *) * window.reduce(1, *)
        case .perImageProduct(let u, let d):
            guard case .unpatches(let window, _, _, _, _, _) = inst[u]!.op, let ps = types[inst[u]!.operands[0]]?.shape,
                  let at = types[inst[d]!.operands[0]] else { return nil }
            // Per-image products run on the pool's threads only through Kiln's own kernel:
            // Debian's OpenBLAS is not safe to call from several threads at once.
            if !MatrixProducts.ownKernel(m: ps[1] * ps[2], n: ps[3], k: at.shape[1]) { return nil }
            shape = inst[u]!.type!.shape; work = shape.reduce(1, *) * window.reduce(1, *) + ps.reduce(1, *) * at.shape[1]
        case .loop(let v), .patches(let v), .argReduction(let v), .windowReduction(let v):
            if case .constant = inst[v]!.op { return nil }
            shape = inst[v]!.type!.shape; work = shape.reduce(1, *)
        }
        guard work >= Self.parallelThreshold, let rows = shape.first, rows >= 2 else { return nil }
        return rows
    }

    /// `void name(ptr inputs[], ptr outputs[], ptr arena, ptr constants[] [, i64 begin, i64 end])`
    /// with `body` emitted into it; buffer pointers are loaded lazily in its entry block.
    func function(_ name: String, exported: Bool, kernel: Bool = false, ranged: Bool = false, _ body: () throws -> Void) throws -> LLVMValueRef {
        var params: [LLVMTypeRef?] = ranged ? [ptr, ptr, ptr, ptr, i64, i64] : [ptr, ptr, ptr, ptr]
        fn = LLVMAddFunction(module, name, LLVMFunctionType(void, &params, UInt32(params.count), 0))
        addAttribute("target-cpu", HostCPU.name)
        addAttribute("target-features", HostCPU.featureString)
        if HostCPU.hasAVX512 { addAttribute("prefer-vector-width", "512") }
        LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), enumAttribute("nounwind"))
        if !exported { LLVMSetLinkage(fn, LLVMInternalLinkage) }
        if kernel { LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), enumAttribute("noinline")) }
        for p in 0..<4 { LLVMAddAttributeAtIndex(fn, UInt32(p + 1), enumAttribute("noalias")) }
        entryBlock = LLVMAppendBasicBlockInContext(ctx, fn, "entry")
        let bodyBlock = LLVMAppendBasicBlockInContext(ctx, fn, "body")
        LLVMPositionBuilderAtEnd(b, entryBlock)
        entryTerminator = LLVMBuildBr(b, bodyBlock)
        LLVMPositionBuilderAtEnd(b, bodyBlock)
        pointers = [:]
        faultSlots = []
        splitRange = ranged ? (LLVMGetParam(fn, 4)!, LLVMGetParam(fn, 5)!) : nil
        try body()
        splitRange = nil
        recordFaults()
        LLVMBuildRetVoid(b)
        attachAliasScopes()
        return fn
    }

    /// Pointer `i` of one of the entry's tables, loaded in the entry block.
    func tableLoad(_ table: LLVMValueRef, _ i: Int) -> LLVMValueRef {
        let tmp = LLVMCreateBuilderInContext(ctx)!
        defer { LLVMDisposeBuilder(tmp) }
        LLVMPositionBuilderBefore(tmp, entryTerminator)
        var idx: [LLVMValueRef?] = [constI64(i)]
        let p = LLVMBuildGEP2(tmp, ptr, table, &idx, 1, "")
        return LLVMBuildLoad2(tmp, ptr, p, "")!
    }

    /// The buffer of value `id` per the plan, nil for values computed inline.
    func base(_ id: Int) -> LLVMValueRef? {
        if let p = pointers[id] { return p }
        guard let s = plan.storage[id] else { return nil }
        let p: LLVMValueRef
        switch s {
        case .param(let i), .variable(param: let i): p = tableLoad(LLVMGetParam(fn, 0)!, i)
        case .constant(let k): p = tableLoad(LLVMGetParam(fn, 3)!, k)
        case .result(let k): p = tableLoad(LLVMGetParam(fn, 1)!, k)
        case .arena(let off): p = arenaPointer(off, "buf\(id)")
        case .inline: return nil
        }
        pointers[id] = p
        switch s {
        case .param(let i), .variable(param: let i): bufferOfPointer[p] = "in\(i)"
        case .constant(let k): bufferOfPointer[p] = "const\(k)"
        case .result(let k): bufferOfPointer[p] = "out\(k)"
        case .arena(let off): bufferOfPointer[p] = "arena\(off)"
        case .inline: break
        }
        return p
    }

    /// Tells LLVM that loads and stores of different buffers never overlap (`!alias.scope` and
    /// `!noalias`, one scope per buffer): live buffers never share bytes (arena liveness,
    /// distinct parameters and results), so loops need no runtime overlap checks, which both
    /// shrinks the code LLVM compiles and lets it vectorise loops that read through computed
    /// indices.
    func attachAliasScopes() {
        let buffers = Array(Set(bufferAccesses.map(\.1))).sorted()
        defer { bufferAccesses = []; bufferOfPointer = [:] }
        // Each access lists every other buffer: quadratic in the buffers of one kernel, so a
        // kernel reading thousands (a wide concat) goes without.
        guard buffers.count > 1, buffers.count <= Self.aliasScopeBufferLimit else { return }
        func selfReferential(_ rest: [LLVMMetadataRef?]) -> LLVMMetadataRef {
            var none: [LLVMMetadataRef?] = []
            let temp = LLVMTemporaryMDNode(ctx, &none, 0)
            var ops: [LLVMMetadataRef?] = [temp] + rest
            let node = LLVMMDNodeInContext2(ctx, &ops, ops.count)!
            LLVMMetadataReplaceAllUsesWith(temp, node)
            return node
        }
        let domain = aliasDomain ?? selfReferential([])
        aliasDomain = domain
        var scope: [String: LLVMMetadataRef] = [:]
        for k in buffers { scope[k] = selfReferential([domain]) }
        let aliasKind = LLVMGetMDKindIDInContext(ctx, "alias.scope", 11), noaliasKind = LLVMGetMDKindIDInContext(ctx, "noalias", 7)
        var own: [String: LLVMValueRef] = [:], others: [String: LLVMValueRef] = [:]
        for k in buffers {
            var one: [LLVMMetadataRef?] = [scope[k]]
            own[k] = LLVMMetadataAsValue(ctx, LLVMMDNodeInContext2(ctx, &one, 1))
            var rest: [LLVMMetadataRef?] = buffers.filter { $0 != k }.map { scope[$0] }
            others[k] = LLVMMetadataAsValue(ctx, LLVMMDNodeInContext2(ctx, &rest, rest.count))
        }
        for (inst, k) in bufferAccesses {
            LLVMSetMetadata(inst, aliasKind, own[k])
            LLVMSetMetadata(inst, noaliasKind, others[k])
        }
    }

    func addAttribute(_ k: String, _ v: String) {
        let a = LLVMCreateStringAttribute(ctx, k, UInt32(k.utf8.count), v, UInt32(v.utf8.count))
        LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), a)
    }

    func enumAttribute(_ name: String) -> LLVMAttributeRef {
        LLVMCreateEnumAttribute(ctx, LLVMGetEnumAttributeKindForName(name, name.utf8.count), 0)
    }

    // MARK: kernels

    /// The body of a kernel that is one function (see `emit` for those that are several).
    func emitKernel(_ k: KernelPlan.Kernel) throws {
        switch k {
        case .write(_, let variable, let value):
            let t = types[value]!
            let target = base(variable)!
            loopNest(t.shape) { idx in store(element(value, idx), target, idx.linear, t.dtype) }
        case .accumulatedProduct(_, let variable, let dot, let scale):
            emitAccumulatedProduct(inst[dot]!, into: base(variable)!, scale: scale)
        case .product(let d):
            guard case .dot(let ta, let tb) = inst[d]!.op else { preconditionFailure("product of \(inst[d]!.op.mnemonic)") }
            try emitDot(inst[d]!, ta, tb)
        case .patchProduct(let d, let blocks):
            emitPatchProduct(inst[d]!, blocks)
        case .reduction(let r):
            guard case .reduce(let op, let axes) = inst[r]!.op else { preconditionFailure("reduction of \(inst[r]!.op.mnemonic)") }
            emitReduce(inst[r]!, op, axes, wide: nil)
        case .blockedReduction(let r, let wide):
            guard case .reduce(let op, let axes) = inst[r]!.op else { preconditionFailure("reduction of \(inst[r]!.op.mnemonic)") }
            emitReduce(inst[r]!, op, axes, wide: wide)
        case .argReduction(let v):
            guard case .argReduce(let a, let axis, _) = inst[v]!.op else { preconditionFailure("argReduction of \(inst[v]!.op.mnemonic)") }
            emitArgReduce(inst[v]!, a, axis)
        case .windowReduction(let v):
            guard case .reduceWindow(let r, let window, let strides, let lo, _) = inst[v]!.op else { preconditionFailure("window of \(inst[v]!.op.mnemonic)") }
            emitReduceWindow(inst[v]!, r, window, strides, lo)
        case .unpatches(let u):
            emitUnpatches(inst[u]!, perImageProduct: nil)
        case .perImageProduct(let u, let d):
            emitUnpatches(inst[u]!, perImageProduct: d)
        case .patches(let v):
            guard case .patches(let window, let strides, let dilations, let lo, _) = inst[v]!.op else { preconditionFailure("patches of \(inst[v]!.op.mnemonic)") }
            emitPatchesKernel(inst[v]!, window, strides, dilations, lo)
        case .loop(let v):
            let t = inst[v]!.type!
            let out = base(v)!
            loopNest(t.shape) { idx in store(compute(v, idx), out, idx.linear, t.dtype) }
        case .splitReduction, .patchGradient, .wideConcat, .resultCopies:
            preconditionFailure("\(k) is several functions")
        }
    }

    func emitReduce(_ i: Instruction, _ r: ReduceOp, _ axes: [Int], wide blocked: KernelPlan.WideSum?) {
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let kept = (0..<xt.rank).filter { !axes.contains($0) }
        let op = r.combiner
        if !kept.isEmpty && !axes.isEmpty && axes.max()! < kept.min()! {
            // Leading axes reduced (batch statistics, bias gradients): stream the input row by
            // row into the output, so reads are contiguous and the inner loop vectorises.
            let out = base(i.id)!
            let reduced = axes.map { xt.shape[$0] }, rows = reduced.reduce(1, *)
            if let blocked {
                let wide = arenaPointer(blocked.offset, "wide\(i.id)")
                emitBlockedRows(x, reduced: reduced, t, from: constI64(0), to: constI64(rows), blockRows: blocked.blockRows, block: (out, nil), wide: (wide, nil))
                loopNest(t.shape) { o in store(narrow(load(wide, o.linear, .float64), t.dtype), out, o.linear, t.dtype) }
                return
            }
            loopNest(t.shape) { o in store(reduceIdentity(r, t.dtype), out, o.linear, t.dtype) }
            loopNest(reduced) { rIdx in
                loopNest(t.shape) { o in
                    let v = element(x, Index(multi: rIdx.multi + o.multi, shape: xt.shape, emitter: self))
                    store(binary(op, load(out, o.linear, t.dtype), v, t.dtype), out, o.linear, t.dtype)
                }
            }
            return
        }
        let reduced = axes.map { xt.shape[$0] }
        let live = reduced.indices.filter { reduced[$0] > 1 }
        if r == .sum, t.dtype.isFloatingPoint, !reduced.contains(0), let innerPos = live.last,
           reduced.reduce(1, *) > reduced[innerPos] || reduced[innerPos] > Self.reductionBlock {
            emitBlockedSum(i, axes: axes, kept: kept, innerPos: innerPos)
            return
        }
        let acc = entryAlloca(registerType(t.dtype))
        loopNest(t.shape) { outIdx in
            LLVMBuildStore(b, reduceIdentity(r, t.dtype), acc)
            loopNest(reduced, reassociate: true) { rIdx in
                var multi = [LLVMValueRef](repeating: constI64(0), count: xt.rank)
                for (k, a) in kept.enumerated() { multi[a] = outIdx.multi[k] }
                for (k, a) in axes.enumerated() { multi[a] = rIdx.multi[k] }
                let v = element(x, Index(multi: multi, shape: xt.shape, emitter: self))
                let a = LLVMBuildLoad2(b, registerType(t.dtype), acc, "")!
                LLVMBuildStore(b, binary(op, a, v, t.dtype), acc)
            }
            store(LLVMBuildLoad2(b, registerType(t.dtype), acc, "")!, base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    /// Elements of the innermost reduced axis a floating-point sum adds in one vectorised run.
    static let reductionBlock = 4096

    /// A floating-point sum over trailing or inner axes, more than one run of the innermost reduced
    /// axis per output: each run of at most `reductionBlock` elements is summed by the vectorised
    /// loop (vector accumulators, a few dozen elements each) and added into a Double per output,
    /// so the error no longer grows with the element count. Each element is still read once.
    func emitBlockedSum(_ i: Instruction, axes: [Int], kept: [Int], innerPos: Int) {
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let reduced = axes.map { xt.shape[$0] }, inner = reduced[innerPos]
        let acc = entryAlloca(registerType(t.dtype)), wide = entryAlloca(f64)
        loopNest(t.shape) { outIdx in
            LLVMBuildStore(b, LLVMConstReal(f64, 0), wide)
            var multi = [LLVMValueRef](repeating: constI64(0), count: xt.rank)
            for (k, a) in kept.enumerated() { multi[a] = outIdx.multi[k] }
            func run(_ lo: LLVMValueRef, _ hi: LLVMValueRef?) {
                LLVMBuildStore(b, reduceIdentity(.sum, t.dtype), acc)
                let body = { (j: LLVMValueRef) in
                    multi[axes[innerPos]] = j
                    let v = self.element(x, Index(multi: multi, shape: xt.shape, emitter: self))
                    let a = LLVMBuildLoad2(self.b, self.registerType(t.dtype), acc, "")!
                    LLVMBuildStore(self.b, self.binary(.add, a, v, t.dtype), acc)
                }
                if let hi { loop(from: lo, to: hi, forceVectorize: true, body) } else { loop(inner, forceVectorize: true, body) }
                let w = LLVMBuildLoad2(b, f64, wide, "")!
                LLVMBuildStore(b, LLVMBuildFAdd(b, w, widen(LLVMBuildLoad2(b, registerType(t.dtype), acc, "")!, t.dtype), ""), wide)
            }
            // The reduced axes before the innermost one with extent > 1, as rolled loops.
            func outer(_ k: Int) {
                if k == innerPos {
                    if inner <= Self.reductionBlock { return run(constI64(0), nil) }
                    let blocks = (inner + Self.reductionBlock - 1) / Self.reductionBlock
                    loop(blocks, keepRolled: true) { kb in
                        let lo = LLVMBuildMul(b, kb, constI64(Self.reductionBlock), "")!
                        let next = LLVMBuildAdd(b, lo, constI64(Self.reductionBlock), "")!
                        run(lo, LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, next, constI64(inner), ""), next, constI64(inner), ""))
                    }
                    return
                }
                if reduced[k] == 1 { return outer(k + 1) }
                loop(reduced[k], keepRolled: true) { iv in
                    multi[axes[k]] = iv
                    outer(k + 1)
                }
            }
            outer(0)
            store(narrow(LLVMBuildLoad2(b, f64, wide, "")!, t.dtype), base(i.id)!, outIdx.linear, t.dtype)
        }
    }

    /// A float32 or float64 register value as a Double, and back.
    func widen(_ v: LLVMValueRef, _ d: DType) -> LLVMValueRef { d == .float32 ? LLVMBuildFPExt(b, v, f64, "")! : v }
    func narrow(_ v: LLVMValueRef, _ d: DType) -> LLVMValueRef { d == .float32 ? LLVMBuildFPTrunc(b, v, f32, "")! : v }

    /// Rows [begin, end) of a floating-point sum over leading axes, in blocks of
    /// `blockRows`: each block is streamed row by row into `block` (element
    /// type, contiguous reads, vectorised over the output), then added into the Doubles of `wide`
    /// and cleared. Buffers are (base, slot offset in elements).
    func emitBlockedRows(_ x: Int, reduced: [Int], _ t: TensorType, from begin: LLVMValueRef, to end: LLVMValueRef, blockRows rowsPerBlock: Int,
                         block: (LLVMValueRef, LLVMValueRef?), wide: (LLVMValueRef, LLVMValueRef?)) {
        let xt = types[x]!
        func at(_ slot: LLVMValueRef?, _ o: Index) -> LLVMValueRef { slot.map { LLVMBuildAdd(b, $0, o.linear, "")! } ?? o.linear }
        loopNest(t.shape) { o in
            store(constValue(0, t.dtype), block.0, at(block.1, o), t.dtype)
            store(LLVMConstReal(f64, 0), wide.0, at(wide.1, o), .float64)
        }
        let count = LLVMBuildSub(b, end, begin, "")!
        let blocks = LLVMBuildUDiv(b, LLVMBuildAdd(b, count, constI64(rowsPerBlock - 1), ""), constI64(rowsPerBlock), "")!
        loop(from: constI64(0), to: blocks) { kb in
            let lo = LLVMBuildAdd(b, begin, LLVMBuildMul(b, kb, constI64(rowsPerBlock), ""), "")!
            let next = LLVMBuildAdd(b, lo, constI64(rowsPerBlock), "")!
            let hi = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, next, end, ""), next, end, "")!
            loop(from: lo, to: hi) { row in
                let rIdx = Index(linear: row, shape: reduced, emitter: self).multi
                loopNest(t.shape) { o in
                    let v = element(x, Index(multi: rIdx + o.multi, shape: xt.shape, emitter: self))
                    store(binary(.add, load(block.0, at(block.1, o), t.dtype), v, t.dtype), block.0, at(block.1, o), t.dtype)
                }
            }
            loopNest(t.shape) { o in
                let w = load(wide.0, at(wide.1, o), .float64)
                store(LLVMBuildFAdd(b, w, widen(load(block.0, at(block.1, o), t.dtype), t.dtype), "")!, wide.0, at(wide.1, o), .float64)
                store(constValue(0, t.dtype), block.0, at(block.1, o), t.dtype)
            }
        }
    }

    /// A pointer to `offset` in the arena, computed in the entry block, with an alias scope named
    /// `name` (a value's buffer renames it after its offset; a kernel's scratch keeps its own).
    func arenaPointer(_ offset: Int, _ name: String) -> LLVMValueRef {
        let tmp = LLVMCreateBuilderInContext(ctx)!
        defer { LLVMDisposeBuilder(tmp) }
        LLVMPositionBuilderBefore(tmp, entryTerminator)
        var idx: [LLVMValueRef?] = [constI64(offset)]
        let p = LLVMBuildGEP2(tmp, i8, LLVMGetParam(fn, 2)!, &idx, 1, name)!
        bufferOfPointer[p] = name
        return p
    }

    /// Parts [begin, end) of a split reduction over leading axes: part q reduces its share of the
    /// rows into slot q of the scratch, streaming each row so reads are contiguous.
    func emitReductionParts(_ i: Instruction, _ parts: Int, scratch offset: Int, wide: KernelPlan.WideSum?) {
        guard case .reduce(let r, let axes) = i.op else { return }
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let reduced = Array(xt.shape.prefix(axes.count)), rows = reduced.reduce(1, *), k = t.elementCount
        let op = r.combiner
        let scratch = arenaPointer(offset, "scratch\(i.id)")
        let (begin, end) = splitRange!
        splitRange = nil
        loop(from: begin, to: end) { part in
            let (r0, r1) = partRange(part, of: rows, parts: parts)
            let slot = LLVMBuildMul(b, part, constI64(k), "")!
            if let wide {
                emitBlockedRows(x, reduced: reduced, t, from: r0, to: r1, blockRows: wide.blockRows, block: (scratch, slot),
                                wide: (arenaPointer(wide.offset, "wide\(i.id)"), slot))
                return
            }
            loopNest(t.shape) { o in store(reduceIdentity(r, t.dtype), scratch, LLVMBuildAdd(b, slot, o.linear, "")!, t.dtype) }
            loop(from: r0, to: r1) { row in
                let rIdx = Index(linear: row, shape: reduced, emitter: self).multi
                loopNest(t.shape) { o in
                    let at = LLVMBuildAdd(b, slot, o.linear, "")!
                    let v = element(x, Index(multi: rIdx + o.multi, shape: xt.shape, emitter: self))
                    store(binary(op, load(scratch, at, t.dtype), v, t.dtype), scratch, at, t.dtype)
                }
            }
        }
    }

    /// The result of a kernel computed in parts (a split reduction, a per-image weight gradient):
    /// its parts' slots combined in order.
    func emitPartsSum(_ i: Instruction, _ parts: Int, scratch offset: Int, wide: KernelPlan.WideSum?) {
        let t = i.type!, k = t.elementCount
        var op = BinaryOp.add
        if case .reduce(let r, _) = i.op { op = r.combiner }
        let scratch = arenaPointer(offset, "scratch\(i.id)"), out = base(i.id)!
        if let wide {
            // The parts' Double sums, added in order and rounded once.
            let wide = arenaPointer(wide.offset, "wide\(i.id)")
            loopNest(t.shape) { o in
                var acc = load(wide, o.linear, .float64)
                for q in 1..<parts { acc = LLVMBuildFAdd(b, acc, load(wide, LLVMBuildAdd(b, o.linear, constI64(q * k), "")!, .float64), "")! }
                store(narrow(acc, t.dtype), out, o.linear, t.dtype)
            }
            return
        }
        loopNest(t.shape) { o in
            var acc = load(scratch, o.linear, t.dtype)
            for q in 1..<parts { acc = binary(op, acc, load(scratch, LLVMBuildAdd(b, o.linear, constI64(q * k), "")!, t.dtype), t.dtype) }
            store(acc, out, o.linear, t.dtype)
        }
    }

    func emitDot(_ i: Instruction, _ ta: Bool, _ tb: Bool) throws {
        let at = types[i.operands[0]]!, bt = types[i.operands[1]]!, t = i.type!
        let r = at.rank
        let (m, n) = (t.shape[r - 2], t.shape[r - 1])
        let k = ta ? at.shape[r - 2] : at.shape[r - 1]
        let batch = t.shape.dropLast(2).reduce(1, *)
        guard t.dtype == .float32 || t.dtype == .float64,
              let aPtr = bufferPointer(i.operands[0]), let bPtr = bufferPointer(i.operands[1]) else {
            // Integer matrices (and anything without a buffer) take a plain loop nest.
            loopNest(t.shape) { idx in
                let acc = entryAlloca(registerType(t.dtype))
                LLVMBuildStore(b, constValue(0, t.dtype), acc)
                loop(k) { p in
                    let batchIdx = Array(idx.multi.dropLast(2))
                    let (ii, jj) = (idx.multi[r - 2], idx.multi[r - 1])
                    let av = element(i.operands[0], Index(multi: batchIdx + (ta ? [p, ii] : [ii, p]), shape: at.shape, emitter: self))
                    let bv = element(i.operands[1], Index(multi: batchIdx + (tb ? [jj, p] : [p, jj]), shape: bt.shape, emitter: self))
                    let s = LLVMBuildLoad2(b, registerType(t.dtype), acc, "")!
                    LLVMBuildStore(b, binary(.add, s, binary(.mul, av, bv, t.dtype), t.dtype), acc)
                }
                store(LLVMBuildLoad2(b, registerType(t.dtype), acc, "")!, base(i.id)!, idx.linear, t.dtype)
            }
            return
        }
        if m == 0 || n == 0 { return }
        let cPtr = base(i.id)!
        let elem = t.dtype.byteSize
        func offset(_ p: LLVMValueRef, _ bi: LLVMValueRef, _ count: Int) -> LLVMValueRef {
            var idx: [LLVMValueRef?] = [LLVMBuildMul(b, bi, constI64(count * elem), "")!]
            return LLVMBuildGEP2(b, i8, p, &idx, 1, "")!
        }
        let call = { (bi: LLVMValueRef) in
            self.productCall(t.dtype, ta, tb, m, n, k, alpha: nil, accumulate: false,
                             a: offset(aPtr, bi, at.shape.suffix(2).reduce(1, *)), lda: at.shape[r - 1],
                             b: offset(bPtr, bi, bt.shape.suffix(2).reduce(1, *)), ldb: bt.shape[r - 1],
                             c: offset(cPtr, bi, m * n), ldc: n)
        }
        if batch == 1 { call(constI64(0)) } else { loop(batch, call) }
    }

    /// `v -= s * dot(a, b)` in the product: C (the variable) += (-s) * op(A) op(B).
    func emitAccumulatedProduct(_ d: Instruction, into target: LLVMValueRef, scale: Int) {
        guard case .dot(let ta, let tb) = d.op else { return }
        let at = types[d.operands[0]]!, bt = types[d.operands[1]]!, t = d.type!
        let alpha = LLVMBuildFNeg(b, element(scale, Index(multi: [], shape: [], emitter: self)), "")!
        productCall(t.dtype, ta, tb, t.shape[0], t.shape[1], ta ? at.shape[0] : at.shape[1], alpha: alpha, accumulate: true,
                    a: bufferPointer(d.operands[0])!, lda: at.shape[1], b: bufferPointer(d.operands[1])!, ldb: bt.shape[1],
                    c: target, ldc: t.shape[1])
    }

    /// One call computing C = alpha * op(A) op(B) (+ C when `accumulate`; alpha nil means 1):
    /// Kiln's kernel for float32 products in its range (MatrixProducts), OpenBLAS otherwise.
    /// `lda`, `ldb` and `ldc` are row strides as stored.
    /// `dynamicM`/`dynamicK` replace m or k by a run-time count of at most m or k (the last, short
    /// block of a blocked product); the library is still chosen by the static sizes.
    func productCall(_ dtype: DType, _ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, alpha: LLVMValueRef?, accumulate: Bool,
                     a: LLVMValueRef, lda: Int, b bPtr: LLVMValueRef, ldb: Int, c: LLVMValueRef, ldc: Int,
                     dynamicM: LLVMValueRef? = nil, dynamicK: LLVMValueRef? = nil) {
        let mArg = dynamicM ?? constI64(m), kArg = dynamicK ?? constI64(k)
        let isF32 = dtype == .float32
        let scalarT = isF32 ? f32 : f64
        let alpha = alpha ?? LLVMConstReal(scalarT, 1)
        var argTypes: [LLVMTypeRef?]
        var args: [LLVMValueRef?]
        let name: String
        if isF32 && MatrixProducts.ownKernel(m: m, n: n, k: k) {
            name = "kiln_sgemm"
            argTypes = [i32, i32, i64, i64, i64, f32, ptr, i64, ptr, i64, ptr, i64, i32]
            args = [constI32(ta ? 1 : 0), constI32(tb ? 1 : 0), mArg, constI64(n), kArg, alpha,
                    a, constI64(lda), bPtr, constI64(ldb), c, constI64(ldc), constI32(accumulate ? 1 : 0)]
        } else {
            name = isF32 ? "cblas_sgemm" : "cblas_dgemm"
            argTypes = [i32, i32, i32, i32, i32, i32, scalarT, ptr, i32, ptr, i32, scalarT, ptr, i32]
            args = [constI32(101), constI32(ta ? 112 : 111), constI32(tb ? 112 : 111), LLVMBuildTrunc(b, mArg, i32, ""), constI32(n),
                    LLVMBuildTrunc(b, kArg, i32, ""), alpha,
                    a, constI32(lda), bPtr, constI32(ldb), LLVMConstReal(scalarT, accumulate ? 1 : 0), c, constI32(ldc)]
        }
        let type = LLVMFunctionType(void, &argTypes, UInt32(argTypes.count), 0)!
        LLVMBuildCall2(b, type, declare(name, type), &args, UInt32(args.count), "")
    }

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
        if p == 0 && q == 0 { return Index(linear: idx.linear, shape: shape, emitter: self) }
        let m = idx.multi
        let midOut = Array(out[p..<(out.count - q)]), midIn = Array(shape[p..<(shape.count - q)])
        var linear = constI64(0)
        for (k, d) in midOut.enumerated() { linear = LLVMBuildAdd(b, LLVMBuildMul(b, linear, constI64(d), ""), m[p + k], "")! }
        let mid = midIn.isEmpty ? [] : Index(linear: linear, shape: midIn, emitter: self).multi
        return Index(multi: Array(m.prefix(p)) + mid + Array(m.suffix(q)), shape: shape, emitter: self)
    }

    /// A buffer holding `v`'s elements, if it has one.
    func bufferPointer(_ v: Int) -> LLVMValueRef? {
        var v = v
        // A loop through views: a chain of reshapes may be as long as the graph.
        while true {
            if let p = localBuffers[v] { return p }
            if let p = base(v) { return p }
            guard let i = inst[v] else { return nil }
            if i.op == .varRead, plan.storage[v] == .inline { return base(i.operands[0]) }
            if plan.views.contains(v) { v = i.operands[0]; continue }
            if case .constant(let t) = i.op, t.elementCount > 1 { return globalConstant(v, t) }
            return nil
        }
    }

    var globals: [Int: LLVMValueRef] = [:]

    func globalConstant(_ v: Int, _ t: Tensor) -> LLVMValueRef {
        if let g = globals[v] { return g }
        var elems: [LLVMValueRef?] = (0..<t.elementCount).map { memoryConstant(t.element(at: $0), t.dtype) }
        let mt = memoryType(t.dtype)
        let arr = LLVMConstArray(mt, &elems, UInt32(elems.count))
        let g = LLVMAddGlobal(module, LLVMArrayType(mt, UInt32(elems.count)), "c\(v)")!
        LLVMSetInitializer(g, arr)
        LLVMSetGlobalConstant(g, 1)
        LLVMSetLinkage(g, LLVMPrivateLinkage)
        LLVMSetAlignment(g, 64)
        globals[v] = g
        return g
    }

    /// Element (lead..., major * minorExtent + minor) of `v`, whose last dimension is a multiple of
    /// `minorExtent`. Where `v` is computed inline by a reshape that merged (major, minor) into that
    /// dimension, the reshape's operand is read at (lead..., major, minor) directly: LLVM cannot
    /// see that splitting the merged index again gives back `minor`, and the division would turn
    /// contiguous loads into gathers.
    func element(_ v: Int, lead: [LLVMValueRef], major: LLVMValueRef, minor: LLVMValueRef, minorExtent: Int) -> LLVMValueRef {
        let shape = types[v]!.shape
        if bufferPointer(v) == nil, let i = inst[v], case .reshape = i.op {
            let xs = types[i.operands[0]]!.shape
            if xs.count == shape.count + 1, xs.last == minorExtent, Array(xs.prefix(shape.count - 1)) == Array(shape.dropLast()) {
                return element(i.operands[0], Index(multi: lead + [major, minor], shape: xs, emitter: self))
            }
        }
        let k = LLVMBuildAdd(b, LLVMBuildMul(b, major, constI64(minorExtent), "")!, minor, "")!
        return element(v, Index(multi: lead + [k], shape: shape, emitter: self))
    }

    /// Element `idx` of value `v`: a load if it has a buffer, else computed in place.
    func element(_ v: Int, _ idx: Index) -> LLVMValueRef {
        if let p = bufferPointer(v) { return load(p, idx.linear, types[v]!.dtype) }
        return compute(v, idx)
    }

    /// Computes element `idx` of instruction `v` from its operands' elements.
    func compute(_ v: Int, _ idx: Index) -> LLVMValueRef {
        let i = inst[v]!
        let d = i.type!.dtype
        switch i.op {
        case .constant(let t):
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
            return LLVMBuildSelect(b, element(i.operands[0], idx), element(i.operands[1], idx), element(i.operands[2], idx), "")
        case .cast(let to):
            let from = types[i.operands[0]]!.dtype
            return cast(element(i.operands[0], idx), from, to)
        case .broadcast(_, let dims):
            let xs = types[i.operands[0]]!.shape
            let multi = dims.enumerated().map { k, dim in xs[k] == 1 ? constI64(0) : idx.multi[dim] }
            return element(i.operands[0], Index(multi: multi, shape: xs, emitter: self))
        case .reshape:
            return element(i.operands[0], reshapeIndex(idx, to: types[i.operands[0]]!.shape))
        case .transpose(let perm):
            var multi = [LLVMValueRef](repeating: constI64(0), count: perm.count)
            for (k, p) in perm.enumerated() { multi[p] = idx.multi[k] }
            return element(i.operands[0], Index(multi: multi, shape: types[i.operands[0]]!.shape, emitter: self))
        case .varRead:
            return load(base(i.operands[0])!, idx.linear, d)
        case .iota(_, _, let axis):
            return cast(idx.multi[axis], .int64, d)
        case .slice(let start, let strides, _):
            let xs = types[i.operands[0]]!.shape
            let multi = (0..<xs.count).map { k in
                LLVMBuildAdd(b, constI64(start[k]), LLVMBuildMul(b, idx.multi[k], constI64(strides[k]), ""), "")!
            }
            return element(i.operands[0], Index(multi: multi, shape: xs, emitter: self))
        case .pad(let low, _, let mode):
            return emitPad(i, idx, low, mode)
        case .concat(let axis):
            return emitConcat(i, idx, axis)
        case .gather(let axis, let batchDims):
            return emitGather(i, idx, axis, batchDims)
        case .patches(let window, let strides, let dilations, let lo, _):
            return emitPatches(i, idx, window, strides, dilations, lo)
        case .random(let kind, _, _, let seed):
            return emitRandom(i, idx, kind, seed)
        case .check(let c):
            let x = element(i.operands[0], idx)
            if !diagnosing { emitCheck(i, c, x, idx) }
            return x
        case .reduce, .dot, .varWrite, .argReduce, .reduceWindow, .unpatches:
            preconditionFailure("\(i.op.mnemonic) is always materialised by the plan")
        }
    }
}
