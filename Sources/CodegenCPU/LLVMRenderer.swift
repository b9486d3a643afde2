import CLLVM
import KilnIR
import KilnKernels

/// Renders `KernelWriter`'s calls as one LLVM module: the instructions the CPU path always built,
/// phi-based loops with loop metadata, per-buffer alias scopes, and function attributes for the
/// CPU target. Values are kept for the whole module (a constant array made in one function is
/// used by the next).
final class LLVMRenderer: KernelRenderer {
    let ctx: LLVMContextRef
    let module: LLVMModuleRef
    let b: LLVMBuilderRef
    let cpu: CPUTarget
    /// 512-bit vectors are worth preferring with AVX-512 (decided once: features are a long string).
    private let preferredVectorBits: Int
    /// Native float16 conversions (x86's F16C).
    private let hasF16C: Bool

    let void, i1, i8, i16, i32, i64, f32, f64, ptr: LLVMTypeRef
    private var values: [LLVMValueRef] = []
    private var slots: [LLVMValueRef] = []
    private var fn: LLVMValueRef!
    private var entryBlock: LLVMBasicBlockRef!
    private var entryTerminator: LLVMValueRef!
    /// Per function: buffer pointers and table entries already loaded in its entry block, and the
    /// `{inputs, outputs, arena, constants}` array handed to `kiln_parallel_for`.
    private var buffers: [BufferRoot: RValue] = [:]
    private var tableEntries: [TableKey: RValue] = [:]
    private var argumentTable: LLVMValueRef?
    /// Which buffer each pointer value of the current function points into (see attachAliasScopes).
    private var bufferOfValue: [Int: String] = [:]
    private var bufferAccesses: [(LLVMValueRef, String)] = []
    private var aliasDomain: LLVMMetadataRef?
    /// Kernels touching more buffers than this get no alias scopes (see attachAliasScopes).
    static let aliasScopeBufferLimit = 64

    private struct TableKey: Hashable {
        var table: LLVMValueRef
        var index: Int
    }

    init(context: LLVMContextRef, moduleName: String, cpu: CPUTarget) {
        ctx = context
        module = LLVMModuleCreateWithNameInContext(moduleName, ctx)
        b = LLVMCreateBuilderInContext(ctx)
        self.cpu = cpu
        preferredVectorBits = cpu.preferredVectorBits
        hasF16C = cpu.featureSet.contains("f16c")
        void = LLVMVoidTypeInContext(ctx)
        i1 = LLVMInt1TypeInContext(ctx)
        i8 = LLVMInt8TypeInContext(ctx)
        i16 = LLVMInt16TypeInContext(ctx)
        i32 = LLVMInt32TypeInContext(ctx)
        i64 = LLVMInt64TypeInContext(ctx)
        f32 = LLVMFloatTypeInContext(ctx)
        f64 = LLVMDoubleTypeInContext(ctx)
        ptr = LLVMPointerTypeInContext(ctx, 0)
    }

    deinit { LLVMDisposeBuilder(b) }

    /// The finished module after verification; the caller owns it.
    func finish() throws -> LLVMModuleRef {
        var err: UnsafeMutablePointer<CChar>?
        if LLVMVerifyModule(module, LLVMReturnStatusAction, &err) != 0 {
            defer { LLVMDisposeMessage(err) }
            LLVMDisposeModule(module)
            throw KilnError.internalError("generated LLVM IR is invalid: \(String(cString: err!))")
        }
        LLVMDisposeMessage(err)
        return module
    }

    // MARK: values

    private func v(_ x: RValue) -> LLVMValueRef { values[x.id] }

    private func wrap(_ x: LLVMValueRef) -> RValue {
        values.append(x)
        return RValue(values.count - 1)
    }

    private func type(_ t: ScalarType) -> LLVMTypeRef {
        switch t {
        case .i1: return i1
        case .i8: return i8
        case .i16: return i16
        case .i32: return i32
        case .i64: return i64
        case .f32: return f32
        case .f64: return f64
        case .ptr: return ptr
        }
    }

    private func constI64(_ v: Int) -> LLVMValueRef { LLVMConstInt(i64, UInt64(bitPattern: Int64(v)), 1) }

    // MARK: functions

    private func functionType(ranged: Bool) -> LLVMTypeRef {
        var params: [LLVMTypeRef?] = ranged ? [ptr, ptr, ptr, ptr, i64, i64] : [ptr, ptr, ptr, ptr]
        return LLVMFunctionType(void, &params, UInt32(params.count), 0)
    }

    /// `void name(ptr inputs[], ptr outputs[], ptr arena, ptr constants[] [, i64 begin, i64 end])`;
    /// buffer pointers are loaded in its entry block, which branches to the body.
    func beginFunction(_ f: RFunction, exported: Bool, kernel: Bool) {
        fn = LLVMAddFunction(module, f.name, functionType(ranged: f.ranged))
        addAttribute("target-cpu", cpu.name)
        addAttribute("target-features", cpu.features)
        // Only to widen: a target named without features (an artifact's) keeps LLVM's default.
        if preferredVectorBits > 256 { addAttribute("prefer-vector-width", "\(preferredVectorBits)") }
        LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), enumAttribute("nounwind"))
        if !exported { LLVMSetLinkage(fn, LLVMInternalLinkage) }
        if kernel { LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), enumAttribute("noinline")) }
        for p in 0..<4 { LLVMAddAttributeAtIndex(fn, UInt32(p + 1), enumAttribute("noalias")) }
        entryBlock = LLVMAppendBasicBlockInContext(ctx, fn, "entry")
        let bodyBlock = LLVMAppendBasicBlockInContext(ctx, fn, "body")
        LLVMPositionBuilderAtEnd(b, entryBlock)
        entryTerminator = LLVMBuildBr(b, bodyBlock)
        LLVMPositionBuilderAtEnd(b, bodyBlock)
        buffers = [:]
        tableEntries = [:]
        argumentTable = nil
    }

    func endFunction() {
        if LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(b)) == nil { LLVMBuildRetVoid(b) }
        attachAliasScopes()
        fn = nil
    }

    func declare(_ f: RFunction) {
        if LLVMGetNamedFunction(module, f.name) == nil { LLVMAddFunction(module, f.name, functionType(ranged: f.ranged)) }
    }

    func parameter(_ k: Int) -> RValue { wrap(LLVMGetParam(fn, UInt32(k))) }

    private func function(_ f: RFunction) -> LLVMValueRef {
        guard let g = LLVMGetNamedFunction(module, f.name) else { preconditionFailure("call of \(f.name), neither defined nor declared") }
        return g
    }

    func call(_ f: RFunction, rows: RValue?) {
        var args: [LLVMValueRef?] = (0..<4).map { LLVMGetParam(fn, UInt32($0)) } + (rows.map { [constI64(0), v($0)] } ?? [])
        LLVMBuildCall2(b, functionType(ranged: rows != nil), function(f), &args, UInt32(args.count), "")
    }

    func parallelFor(_ f: RFunction, count: RValue) {
        let table: LLVMValueRef
        if let argumentTable { table = argumentTable } else {
            // The four parameters in an array, written once in the entry block.
            table = entryAlloca(LLVMArrayType(ptr, 4), "args")
            let tmp = entryBuilder()
            defer { LLVMDisposeBuilder(tmp) }
            for k in 0..<4 {
                var idx: [LLVMValueRef?] = [constI64(0), constI64(k)]
                LLVMBuildStore(tmp, LLVMGetParam(fn, UInt32(k)), LLVMBuildGEP2(tmp, LLVMArrayType(ptr, 4), table, &idx, 2, ""))
            }
            argumentTable = table
        }
        var params: [LLVMTypeRef?] = [ptr, ptr, i64]
        let poolType = LLVMFunctionType(void, &params, 3, 0)!
        var args: [LLVMValueRef?] = [function(f), table, v(count)]
        LLVMBuildCall2(b, poolType, declare(RuntimeFunction.parallelFor.rawValue, poolType), &args, 3, "")
    }

    func returnNow() { LLVMBuildRetVoid(b) }

    private func addAttribute(_ k: String, _ v: String) {
        let a = LLVMCreateStringAttribute(ctx, k, UInt32(k.utf8.count), v, UInt32(v.utf8.count))
        LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), a)
    }

    private func enumAttribute(_ name: String) -> LLVMAttributeRef {
        LLVMCreateEnumAttribute(ctx, LLVMGetEnumAttributeKindForName(name, name.utf8.count), 0)
    }

    // MARK: constants and arithmetic

    func constant(int v: Int64, _ t: ScalarType) -> RValue { wrap(LLVMConstInt(type(t), UInt64(bitPattern: v), 1)) }
    func constant(float v: Double, _ t: ScalarType) -> RValue { wrap(LLVMConstReal(type(t), v)) }

    func int(_ op: IntBinary, _ a: RValue, _ c: RValue) -> RValue {
        let (x, y) = (v(a), v(c))
        switch op {
        case .add: return wrap(LLVMBuildAdd(b, x, y, ""))
        case .sub: return wrap(LLVMBuildSub(b, x, y, ""))
        case .mul: return wrap(LLVMBuildMul(b, x, y, ""))
        case .sdiv: return wrap(LLVMBuildSDiv(b, x, y, ""))
        case .udiv: return wrap(LLVMBuildUDiv(b, x, y, ""))
        case .srem: return wrap(LLVMBuildSRem(b, x, y, ""))
        case .urem: return wrap(LLVMBuildURem(b, x, y, ""))
        case .and: return wrap(LLVMBuildAnd(b, x, y, ""))
        case .or: return wrap(LLVMBuildOr(b, x, y, ""))
        case .xor: return wrap(LLVMBuildXor(b, x, y, ""))
        case .shl: return wrap(LLVMBuildShl(b, x, y, ""))
        case .lshr: return wrap(LLVMBuildLShr(b, x, y, ""))
        }
    }

    func float(_ op: FloatBinary, _ a: RValue, _ c: RValue) -> RValue {
        let (x, y) = (v(a), v(c))
        switch op {
        case .add: return wrap(LLVMBuildFAdd(b, x, y, ""))
        case .sub: return wrap(LLVMBuildFSub(b, x, y, ""))
        case .mul: return wrap(LLVMBuildFMul(b, x, y, ""))
        case .div: return wrap(LLVMBuildFDiv(b, x, y, ""))
        case .rem: return wrap(LLVMBuildFRem(b, x, y, ""))
        }
    }

    func neg(_ a: RValue) -> RValue { wrap(LLVMBuildNeg(b, v(a), "")) }
    func fneg(_ a: RValue) -> RValue { wrap(LLVMBuildFNeg(b, v(a), "")) }
    func not(_ a: RValue) -> RValue { wrap(LLVMBuildNot(b, v(a), "")) }

    func icmp(_ p: IntPredicate, _ a: RValue, _ c: RValue) -> RValue {
        let pred: LLVMIntPredicate
        switch p {
        case .eq: pred = LLVMIntEQ
        case .ne: pred = LLVMIntNE
        case .slt: pred = LLVMIntSLT
        case .sle: pred = LLVMIntSLE
        case .sgt: pred = LLVMIntSGT
        case .sge: pred = LLVMIntSGE
        case .ult: pred = LLVMIntULT
        case .ule: pred = LLVMIntULE
        case .ugt: pred = LLVMIntUGT
        case .uge: pred = LLVMIntUGE
        }
        return wrap(LLVMBuildICmp(b, pred, v(a), v(c), ""))
    }

    func fcmp(_ p: FloatPredicate, _ a: RValue, _ c: RValue) -> RValue {
        let pred: LLVMRealPredicate
        switch p {
        case .oeq: pred = LLVMRealOEQ
        case .olt: pred = LLVMRealOLT
        case .ole: pred = LLVMRealOLE
        case .ogt: pred = LLVMRealOGT
        case .oge: pred = LLVMRealOGE
        case .une: pred = LLVMRealUNE
        case .ult: pred = LLVMRealULT
        case .uno: pred = LLVMRealUNO
        }
        return wrap(LLVMBuildFCmp(b, pred, v(a), v(c), ""))
    }

    func select(_ c: RValue, _ a: RValue, _ d: RValue) -> RValue { wrap(LLVMBuildSelect(b, v(c), v(a), v(d), "")) }

    func convert(_ c: Conversion, _ a: RValue, to t: ScalarType) -> RValue {
        let x = v(a), to = type(t)
        switch c {
        case .zext: return wrap(LLVMBuildZExt(b, x, to, ""))
        case .sext: return wrap(LLVMBuildSExt(b, x, to, ""))
        case .trunc: return wrap(LLVMBuildTrunc(b, x, to, ""))
        case .fpext: return wrap(LLVMBuildFPExt(b, x, to, ""))
        case .fptrunc: return wrap(LLVMBuildFPTrunc(b, x, to, ""))
        case .sitofp: return wrap(LLVMBuildSIToFP(b, x, to, ""))
        case .uitofp: return wrap(LLVMBuildUIToFP(b, x, to, ""))
        case .fptosi: return wrap(LLVMBuildFPToSI(b, x, to, ""))
        case .fptosiSat: return wrap(intrinsic("llvm.fptosi.sat", [to, LLVMTypeOf(x)], [x]))
        case .bitcast: return wrap(LLVMBuildBitCast(b, x, to, ""))
        }
    }

    /// float16 through LLVM's `half`, which x86 with F16C lowers to vcvtph2ps/vcvtps2ph (vectorised,
    /// rounding to nearest even as the integer sequence does). Without F16C LLVM would call a
    /// runtime function the JIT does not have, and it cannot select bfloat16 conversions on x86 at
    /// all: those take KernelWriter's integer sequence.
    func halfToFloat(_ bits: RValue, brain: Bool) -> RValue? {
        guard !brain, hasF16C else { return nil }
        return wrap(LLVMBuildFPExt(b, LLVMBuildBitCast(b, v(bits), LLVMHalfTypeInContext(ctx), ""), f32, ""))
    }

    func floatToHalf(_ x: RValue, brain: Bool) -> RValue? {
        guard !brain, hasF16C else { return nil }
        return wrap(LLVMBuildBitCast(b, LLVMBuildFPTrunc(b, v(x), LLVMHalfTypeInContext(ctx), ""), i16, ""))
    }

    /// LLVM's intrinsics, which the vectoriser widens; float64 log1p and tanh have none and call
    /// libm (KernelWriter gives float32 its own polynomials).
    func math(_ f: MathFunction, _ args: [RValue]) -> RValue {
        let xs = args.map(v), t = LLVMTypeOf(xs[0])!
        switch f {
        case .log1p, .tanh:
            var params: [LLVMTypeRef?] = [t]
            let fnType = LLVMFunctionType(t, &params, 1, 0)!
            let callee = declare(t == f32 ? f.rawValue + "f" : f.rawValue, fnType)
            var a: [LLVMValueRef?] = xs
            return wrap(LLVMBuildCall2(b, fnType, callee, &a, 1, ""))
        case .fma: return wrap(intrinsic("llvm.fmuladd", [t], xs))
        default: return wrap(intrinsic("llvm." + f.rawValue, [t], xs))
        }
    }

    func callRuntime(_ f: RuntimeFunction, _ args: [RValue]) -> RValue? {
        var a: [LLVMValueRef?] = args.map(v)
        var params: [LLVMTypeRef?] = a.map { LLVMTypeOf($0) }
        let fnType = LLVMFunctionType(f.result.map(type) ?? void, &params, UInt32(params.count), 0)!
        let r = LLVMBuildCall2(b, fnType, declare(f.rawValue, fnType), &a, UInt32(a.count), "")!
        return f.result == nil ? nil : wrap(r)
    }

    private func declare(_ name: String, _ type: LLVMTypeRef) -> LLVMValueRef {
        if let f = LLVMGetNamedFunction(module, name) { return f }
        return LLVMAddFunction(module, name, type)!
    }

    private func intrinsic(_ name: String, _ overloads: [LLVMTypeRef], _ args: [LLVMValueRef]) -> LLVMValueRef {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        var tys: [LLVMTypeRef?] = overloads
        let decl = LLVMGetIntrinsicDeclaration(module, id, &tys, tys.count)
        let fnType = LLVMIntrinsicGetType(ctx, id, &tys, tys.count)
        var a: [LLVMValueRef?] = args
        return LLVMBuildCall2(b, fnType, decl, &a, UInt32(a.count), "")!
    }

    // MARK: memory

    /// A builder placed before the entry block's branch to the body.
    private func entryBuilder() -> LLVMBuilderRef {
        let tmp = LLVMCreateBuilderInContext(ctx)!
        LLVMPositionBuilderBefore(tmp, entryTerminator)
        return tmp
    }

    func buffer(_ root: BufferRoot) -> RValue {
        if let p = buffers[root] { return p }
        let p: RValue, name: String
        switch root {
        case .input(let i): p = tableEntry(parameter(0), i); name = "in\(i)"
        case .output(let k): p = tableEntry(parameter(1), k); name = "out\(k)"
        case .constant(let k): p = tableEntry(parameter(3), k); name = "const\(k)"
        case .arena(let offset, let n):
            let tmp = entryBuilder()
            defer { LLVMDisposeBuilder(tmp) }
            var idx: [LLVMValueRef?] = [constI64(offset)]
            p = wrap(LLVMBuildGEP2(tmp, i8, LLVMGetParam(fn, 2)!, &idx, 1, n)!)
            name = n
        }
        buffers[root] = p
        bufferOfValue[p.id] = name
        return p
    }

    func tableEntry(_ table: RValue, _ k: Int) -> RValue {
        let key = TableKey(table: v(table), index: k)
        if let p = tableEntries[key] { return p }
        let tmp = entryBuilder()
        defer { LLVMDisposeBuilder(tmp) }
        var idx: [LLVMValueRef?] = [constI64(k)]
        let p = wrap(LLVMBuildLoad2(tmp, ptr, LLVMBuildGEP2(tmp, ptr, v(table), &idx, 1, ""), "")!)
        tableEntries[key] = p
        return p
    }

    func offset(_ p: RValue, bytes: RValue) -> RValue {
        var idx: [LLVMValueRef?] = [v(bytes)]
        let q = wrap(LLVMBuildGEP2(b, i8, v(p), &idx, 1, "")!)
        // A pointer into a buffer is in that buffer's scope.
        if let name = bufferOfValue[p.id] { bufferOfValue[q.id] = name }
        return q
    }

    func load(_ p: RValue, _ index: RValue, _ t: ScalarType) -> RValue {
        var idx: [LLVMValueRef?] = [v(index)]
        let at = LLVMBuildGEP2(b, type(t), v(p), &idx, 1, "")
        let x = LLVMBuildLoad2(b, type(t), at, "")!
        if let buffer = bufferOfValue[p.id] { bufferAccesses.append((x, buffer)) }
        return wrap(x)
    }

    func store(_ x: RValue, _ p: RValue, _ index: RValue) {
        var idx: [LLVMValueRef?] = [v(index)]
        let at = LLVMBuildGEP2(b, LLVMTypeOf(v(x)), v(p), &idx, 1, "")
        let st = LLVMBuildStore(b, v(x), at)!
        if let buffer = bufferOfValue[p.id] { bufferAccesses.append((st, buffer)) }
    }

    /// Stack slot in the entry block, where mem2reg can promote it.
    private func entryAlloca(_ t: LLVMTypeRef, _ name: String) -> LLVMValueRef {
        let tmp = LLVMCreateBuilderInContext(ctx)!
        defer { LLVMDisposeBuilder(tmp) }
        if let first = LLVMGetFirstInstruction(entryBlock) { LLVMPositionBuilderBefore(tmp, first) } else {
            LLVMPositionBuilderAtEnd(tmp, entryBlock)
        }
        return LLVMBuildAlloca(tmp, t, name)!
    }

    func stackArray(_ t: ScalarType, count: Int, name: String) -> RValue {
        let a = entryAlloca(LLVMArrayType(type(t), UInt32(count)), "acc")
        LLVMSetAlignment(a, 64)
        let p = wrap(a)
        bufferOfValue[p.id] = name
        return p
    }

    func constantArray(_ elements: [RValue], _ t: ScalarType, name: String) -> RValue {
        var elems: [LLVMValueRef?] = elements.map(v)
        let arr = LLVMConstArray(type(t), &elems, UInt32(elems.count))
        let g = LLVMAddGlobal(module, LLVMArrayType(type(t), UInt32(elems.count)), name)!
        LLVMSetInitializer(g, arr)
        LLVMSetGlobalConstant(g, 1)
        LLVMSetLinkage(g, LLVMPrivateLinkage)
        LLVMSetAlignment(g, 64)
        return wrap(g)
    }

    func slot(_ t: ScalarType, initial: RValue?) -> RSlot {
        let a = entryAlloca(type(t), "acc")
        if let initial {
            let tmp = entryBuilder()
            LLVMBuildStore(tmp, v(initial), a)
            LLVMDisposeBuilder(tmp)
        }
        slots.append(a)
        return RSlot(slots.count - 1, t)
    }

    func load(_ s: RSlot) -> RValue { wrap(LLVMBuildLoad2(b, type(s.type), slots[s.id], "")) }
    func store(_ x: RValue, _ s: RSlot) { LLVMBuildStore(b, v(x), slots[s.id]) }

    // MARK: control flow

    /// A counted loop `for iv in 0..<count`, bottom-tested (count > 0).
    func loop(count: Int, hints: LoopHints, _ body: (RValue) -> Void) {
        let pre = LLVMGetInsertBlock(b)
        let header = LLVMAppendBasicBlockInContext(ctx, fn, "loop")!
        let exit = LLVMAppendBasicBlockInContext(ctx, fn, "done")!
        LLVMBuildBr(b, header)
        LLVMPositionBuilderAtEnd(b, header)
        let iv = LLVMBuildPhi(b, i64, "i")!
        body(wrap(iv))
        let next = LLVMBuildAdd(b, iv, constI64(1), "")!
        let latch = LLVMGetInsertBlock(b)
        var vals: [LLVMValueRef?] = [constI64(0), next]
        var blocks: [LLVMBasicBlockRef?] = [pre, latch]
        LLVMAddIncoming(iv, &vals, &blocks, 2)
        let br = LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntULT, next, constI64(count), ""), header, exit)!
        attachLoopHints(br, hints)
        LLVMPositionBuilderAtEnd(b, exit)
    }

    /// `for iv in begin..<end` with bounds known only at run time.
    func loop(from begin: RValue, to end: RValue, hints: LoopHints, _ body: (RValue) -> Void) {
        let (begin, end) = (v(begin), v(end))
        let pre = LLVMGetInsertBlock(b)
        let header = LLVMAppendBasicBlockInContext(ctx, fn, "loop")!
        let exit = LLVMAppendBasicBlockInContext(ctx, fn, "done")!
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, begin, end, ""), header, exit)
        LLVMPositionBuilderAtEnd(b, header)
        let iv = LLVMBuildPhi(b, i64, "i")!
        body(wrap(iv))
        let next = LLVMBuildAdd(b, iv, constI64(1), "")!
        let latch = LLVMGetInsertBlock(b)
        var vals: [LLVMValueRef?] = [begin, next]
        var blocks: [LLVMBasicBlockRef?] = [pre, latch]
        LLVMAddIncoming(iv, &vals, &blocks, 2)
        let br = LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, end, ""), header, exit)!
        attachLoopHints(br, hints)
        LLVMPositionBuilderAtEnd(b, exit)
    }

    func whileLoop(_ condition: () -> RValue, _ body: () -> Void) {
        let header = LLVMAppendBasicBlockInContext(ctx, fn, "while")!
        let bodyBlock = LLVMAppendBasicBlockInContext(ctx, fn, "while.body")!
        let exit = LLVMAppendBasicBlockInContext(ctx, fn, "while.done")!
        LLVMBuildBr(b, header)
        LLVMPositionBuilderAtEnd(b, header)
        LLVMBuildCondBr(b, v(condition()), bodyBlock, exit)
        LLVMPositionBuilderAtEnd(b, bodyBlock)
        body()
        LLVMBuildBr(b, header)
        LLVMPositionBuilderAtEnd(b, exit)
    }

    func ifThen(_ c: RValue, unlikely: Bool, _ body: () -> Void) {
        let then = LLVMAppendBasicBlockInContext(ctx, fn, "then")!
        let merge = LLVMAppendBasicBlockInContext(ctx, fn, "endif")!
        let br = LLVMBuildCondBr(b, v(c), then, merge)!
        if unlikely { setUnlikely(br) }
        LLVMPositionBuilderAtEnd(b, then)
        body()
        // The body may end in a return.
        if LLVMGetBasicBlockTerminator(LLVMGetInsertBlock(b)) == nil { LLVMBuildBr(b, merge) }
        LLVMPositionBuilderAtEnd(b, merge)
    }

    /// Branch weights saying the true edge is almost never taken.
    private func setUnlikely(_ branch: LLVMValueRef) {
        var ops: [LLVMMetadataRef?] = [LLVMMDStringInContext2(ctx, "branch_weights", 14),
                                       LLVMValueAsMetadata(LLVMConstInt(i32, 1, 0)), LLVMValueAsMetadata(LLVMConstInt(i32, 1 << 20, 0))]
        let node = LLVMMDNodeInContext2(ctx, &ops, 3)
        LLVMSetMetadata(branch, LLVMGetMDKindIDInContext(ctx, "prof", 4), LLVMMetadataAsValue(ctx, node))
    }

    /// `!llvm.loop !{self, !{"llvm.loop.vectorize.enable", true}}`: an explicit vectorisation
    /// request is what lets LLVM reorder a floating-point reduction (the C API has no fast-math
    /// flags); `llvm.loop.unroll.disable` keeps a short outer loop rolled, `llvm.loop.unroll.full`
    /// (kept on the vectorised loop) unrolls a few vectors of accumulators.
    private func attachLoopHints(_ branch: LLVMValueRef, _ hints: LoopHints) {
        var properties: [LLVMMetadataRef?] = []
        func property(_ key: String, _ flag: Bool) {
            var ops: [LLVMMetadataRef?] = [LLVMMDStringInContext2(ctx, key, key.utf8.count)]
            if flag { ops.append(LLVMValueAsMetadata(LLVMConstInt(i1, 1, 0))) }
            properties.append(LLVMMDNodeInContext2(ctx, &ops, ops.count))
        }
        if hints.vectorize { property("llvm.loop.vectorize.enable", true) }
        if hints.keepRolled { property("llvm.loop.unroll.disable", false) }
        if hints.unrollFully { property("llvm.loop.unroll.full", false) }
        if properties.isEmpty { return }
        var none: [LLVMMetadataRef?] = []
        let temp = LLVMTemporaryMDNode(ctx, &none, 0)
        var ops: [LLVMMetadataRef?] = [temp] + properties
        let loopID = LLVMMDNodeInContext2(ctx, &ops, ops.count)!
        LLVMMetadataReplaceAllUsesWith(temp, loopID)
        LLVMSetMetadata(branch, LLVMGetMDKindIDInContext(ctx, "llvm.loop", 9), LLVMMetadataAsValue(ctx, loopID))
    }

    // MARK: alias scopes

    /// Tells LLVM that loads and stores of different buffers never overlap (`!alias.scope` and
    /// `!noalias`, one scope per buffer): live buffers never share bytes (arena liveness,
    /// distinct parameters and results), so loops need no runtime overlap checks, which both
    /// shrinks the code LLVM compiles and lets it vectorise loops that read through computed
    /// indices.
    private func attachAliasScopes() {
        let buffers = Array(Set(bufferAccesses.map(\.1))).sorted()
        defer { bufferAccesses = []; bufferOfValue = [:] }
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
}
