import CLLVM
import KilnIR

/// A position in a tensor, known as a multi-index, a row-major linear index, or both; whichever
/// is missing is computed on demand (LLVM folds the duplicates).
struct Index {
    private let multiStore: [LLVMValueRef]?
    private let linearStore: LLVMValueRef?
    let shape: [Int]
    unowned let emitter: Emitter

    init(multi: [LLVMValueRef], linear: LLVMValueRef? = nil, shape: [Int], emitter: Emitter) {
        multiStore = multi
        linearStore = linear
        self.shape = shape
        self.emitter = emitter
    }

    init(linear: LLVMValueRef, shape: [Int], emitter: Emitter) {
        multiStore = nil
        linearStore = linear
        self.shape = shape
        self.emitter = emitter
    }

    var linear: LLVMValueRef {
        if let linearStore { return linearStore }
        let b = emitter.b
        var acc = emitter.constI64(0)
        for (k, m) in multiStore!.enumerated() {
            acc = LLVMBuildAdd(b, LLVMBuildMul(b, acc, emitter.constI64(shape[k]), ""), m, "")
        }
        return acc
    }

    var multi: [LLVMValueRef] {
        if let multiStore { return multiStore }
        let b = emitter.b
        var out = [LLVMValueRef](repeating: emitter.constI64(0), count: shape.count)
        var rest = linearStore!
        for k in stride(from: shape.count - 1, through: 0, by: -1) {
            if shape[k] == 1 { continue }
            out[k] = k == 0 ? rest : LLVMBuildURem(b, rest, emitter.constI64(shape[k]), "")
            if k > 0 { rest = LLVMBuildUDiv(b, rest, emitter.constI64(shape[k]), "") }
        }
        return out
    }
}

extension Emitter {
    // MARK: loops

    /// Calls `body` once per element of `shape`, row-major, innermost loop last. With
    /// `reassociate`, the innermost loop may be vectorised even though it reorders a floating-point
    /// reduction (as TensorFlow's own vectorised reductions do).
    /// Innermost extents below one AVX-512 vector of float32 get a flat loop (see loopNest).
    static let shortInnerExtent = 16
    /// Reduced axes up to this long are unrolled when elements after them are contiguous.
    static let unrolledReductionExtent = 16
    /// Patches of a few channels up to this many values are written by straight-line code.
    static let unrolledPatchWidth = 64

    func loopNest(_ shape: [Int], reassociate: Bool = false, _ body: (Index) -> Void) {
        if shape.contains(0) { return }
        // In a kernel split across the worker pool, the first loop nest covers only this
        // worker's rows of dimension 0.
        let range = splitRange
        splitRange = nil
        // A short innermost dimension (softmax over 10 classes, 3 channels) leaves the vectoriser
        // a loop too short to use: run one flat loop over the linear index instead and derive
        // the multi-index only where an operand needs it (division by constants, vectorisable).
        // 38 us -> 20 us for a [128,10] softmax-gradient kernel. Matrices only: for higher ranks
        // the divisions cost more than the short loop (conv patches [64,8,8,9]: 43 -> 65 us).
        if !reassociate, shape.count == 2, shape.last! < Self.shortInnerExtent, shape.reduce(1, *) >= 4 * Self.shortInnerExtent {
            let inner = shape.dropFirst().reduce(1, *)
            if let (begin, end) = range {
                let (lo, hi) = (LLVMBuildMul(b, begin, constI64(inner), "")!, LLVMBuildMul(b, end, constI64(inner), "")!)
                loop(from: lo, to: hi) { lin in body(Index(linear: lin, shape: shape, emitter: self)) }
            } else {
                loop(shape.reduce(1, *)) { lin in body(Index(linear: lin, shape: shape, emitter: self)) }
            }
            return
        }
        func level(_ d: Int, _ ivs: [LLVMValueRef], _ linear: LLVMValueRef) {
            if d == shape.count {
                body(Index(multi: ivs, linear: linear, shape: shape, emitter: self))
                return
            }
            if d == 0, let (begin, end) = range {
                loop(from: begin, to: end) { iv in level(1, [iv], iv) }
                return
            }
            if shape[d] == 1 {
                level(d + 1, ivs + [constI64(0)], LLVMBuildMul(b, linear, constI64(1), "")!)
                return
            }
            let innermost = shape[(d + 1)...].allSatisfy { $0 == 1 }
            loop(shape[d], forceVectorize: reassociate && innermost, keepRolled: !innermost) { iv in
                let lin = LLVMBuildAdd(b, LLVMBuildMul(b, linear, constI64(shape[d]), ""), iv, "")!
                level(d + 1, ivs + [iv], lin)
            }
        }
        level(0, [], constI64(0))
    }

    /// `for iv in begin..<end` with bounds known only at run time.
    func loop(from begin: LLVMValueRef, to end: LLVMValueRef, forceVectorize: Bool = false, _ body: (LLVMValueRef) -> Void) {
        let pre = LLVMGetInsertBlock(b)
        let header = LLVMAppendBasicBlockInContext(ctx, fn, "loop")!
        let exit = LLVMAppendBasicBlockInContext(ctx, fn, "done")!
        LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, begin, end, ""), header, exit)
        LLVMPositionBuilderAtEnd(b, header)
        let iv = LLVMBuildPhi(b, i64, "i")!
        body(iv)
        let next = LLVMBuildAdd(b, iv, constI64(1), "")!
        let latch = LLVMGetInsertBlock(b)
        var vals: [LLVMValueRef?] = [begin, next]
        var blocks: [LLVMBasicBlockRef?] = [pre, latch]
        LLVMAddIncoming(iv, &vals, &blocks, 2)
        let br = LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntSLT, next, end, ""), header, exit)!
        if forceVectorize { attachLoopHint(br, "llvm.loop.vectorize.enable") }
        LLVMPositionBuilderAtEnd(b, exit)
    }

    /// A counted loop `for iv in 0..<count`, bottom-tested (count > 0).
    func loop(_ count: Int, forceVectorize: Bool = false, keepRolled: Bool = false, _ body: (LLVMValueRef) -> Void) {
        let pre = LLVMGetInsertBlock(b)
        let header = LLVMAppendBasicBlockInContext(ctx, fn, "loop")!
        let exit = LLVMAppendBasicBlockInContext(ctx, fn, "done")!
        LLVMBuildBr(b, header)
        LLVMPositionBuilderAtEnd(b, header)
        let iv = LLVMBuildPhi(b, i64, "i")!
        body(iv)
        let next = LLVMBuildAdd(b, iv, constI64(1), "")!
        let latch = LLVMGetInsertBlock(b)
        var vals: [LLVMValueRef?] = [constI64(0), next]
        var blocks: [LLVMBasicBlockRef?] = [pre, latch]
        LLVMAddIncoming(iv, &vals, &blocks, 2)
        let br = LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntULT, next, constI64(count), ""), header, exit)!
        if forceVectorize { attachLoopHint(br, "llvm.loop.vectorize.enable") }
        // Fully unrolling a short outer loop copies the whole vectorised inner loop each time:
        // bigger code and much slower compiles for nothing.
        if keepRolled { attachLoopHint(br, "llvm.loop.unroll.disable") }
        LLVMPositionBuilderAtEnd(b, exit)
    }

    /// `!llvm.loop !{self, !{"llvm.loop.vectorize.enable", true}}`: an explicit vectorisation
    /// request is what lets LLVM reorder a floating-point reduction (the C API has no fast-math flags).
    func attachLoopHint(_ branch: LLVMValueRef, _ key: String) {
        var flag: [LLVMMetadataRef?] = key.hasSuffix(".enable")
            ? [LLVMMDStringInContext2(ctx, key, key.utf8.count), LLVMValueAsMetadata(LLVMConstInt(i1, 1, 0))]
            : [LLVMMDStringInContext2(ctx, key, key.utf8.count)]
        let enable = LLVMMDNodeInContext2(ctx, &flag, flag.count)
        var none: [LLVMMetadataRef?] = []
        let temp = LLVMTemporaryMDNode(ctx, &none, 0)
        var ops: [LLVMMetadataRef?] = [temp, enable]
        let loopID = LLVMMDNodeInContext2(ctx, &ops, 2)!
        LLVMMetadataReplaceAllUsesWith(temp, loopID)
        let kind = LLVMGetMDKindIDInContext(ctx, "llvm.loop", 9)
        LLVMSetMetadata(branch, kind, LLVMMetadataAsValue(ctx, loopID))
    }

    /// Stack slot in the entry block, where mem2reg can promote it.
    func entryAlloca(_ t: LLVMTypeRef) -> LLVMValueRef {
        let here = LLVMGetInsertBlock(b)
        let tmp = LLVMCreateBuilderInContext(ctx)!
        defer { LLVMDisposeBuilder(tmp) }
        if let first = LLVMGetFirstInstruction(entryBlock) { LLVMPositionBuilderBefore(tmp, first) } else {
            LLVMPositionBuilderAtEnd(tmp, entryBlock)
        }
        _ = here
        return LLVMBuildAlloca(tmp, t, "acc")!
    }

    // MARK: memory

    func constI64(_ v: Int) -> LLVMValueRef { LLVMConstInt(i64, UInt64(bitPattern: Int64(v)), 1) }
    func constI32(_ v: Int) -> LLVMValueRef { LLVMConstInt(i32, UInt64(bitPattern: Int64(v)), 1) }

    /// Booleans are i1 in registers and one byte in memory.
    func registerType(_ d: DType) -> LLVMTypeRef {
        switch d {
        case .float32: return f32
        case .float64: return f64
        case .int32: return i32
        case .int64: return i64
        case .uint8: return i8
        case .bool: return i1
        case .string: return ptr
        }
    }

    func memoryType(_ d: DType) -> LLVMTypeRef { d == .bool ? i8 : registerType(d) }

    func load(_ base: LLVMValueRef, _ index: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        var idx: [LLVMValueRef?] = [index]
        let p = LLVMBuildGEP2(b, memoryType(d), base, &idx, 1, "")
        let v = LLVMBuildLoad2(b, memoryType(d), p, "")!
        if let buffer = bufferOfPointer[base] { bufferAccesses.append((v, buffer)) }
        return d == .bool ? LLVMBuildICmp(b, LLVMIntNE, v, LLVMConstInt(i8, 0, 0), "")! : v
    }

    func store(_ v: LLVMValueRef, _ base: LLVMValueRef, _ index: LLVMValueRef, _ d: DType) {
        var idx: [LLVMValueRef?] = [index]
        let p = LLVMBuildGEP2(b, memoryType(d), base, &idx, 1, "")
        let st = LLVMBuildStore(b, d == .bool ? LLVMBuildZExt(b, v, i8, "") : v, p)!
        if let buffer = bufferOfPointer[base] { bufferAccesses.append((st, buffer)) }
    }

    func registerConstant(_ v: ScalarValue, _ d: DType) -> LLVMValueRef {
        switch d {
        case .float32, .float64: return LLVMConstReal(registerType(d), v.asDouble)
        case .bool: return LLVMConstInt(i1, v.asDouble != 0 ? 1 : 0, 0)
        default:
            if case .i(let x) = v { return LLVMConstInt(registerType(d), UInt64(bitPattern: x), 1) }
            return LLVMConstInt(registerType(d), UInt64(bitPattern: Int64(v.asDouble)), 1)
        }
    }

    func memoryConstant(_ v: ScalarValue, _ d: DType) -> LLVMValueRef {
        d == .bool ? LLVMConstInt(i8, v.asDouble != 0 ? 1 : 0, 0) : registerConstant(v, d)
    }

    func constValue(_ x: Double, _ d: DType) -> LLVMValueRef {
        registerConstant(d.isFloatingPoint ? .f(x) : d == .bool ? .b(x != 0) : .i(Int64(x)), d)
    }

    func reduceIdentity(_ r: ReduceOp, _ d: DType) -> LLVMValueRef {
        switch r {
        case .sum: return constValue(0, d)
        case .prod: return constValue(1, d)
        case .max:
            switch d {
            case .float32, .float64: return constValue(-.infinity, d)
            case .int32: return registerConstant(.i(Int64(Int32.min)), d)
            case .int64: return registerConstant(.i(Int64.min), d)
            default: return constValue(0, d)
            }
        case .min:
            switch d {
            case .float32, .float64: return constValue(.infinity, d)
            case .int32: return registerConstant(.i(Int64(Int32.max)), d)
            case .int64: return registerConstant(.i(Int64.max), d)
            case .uint8: return registerConstant(.i(255), d)
            default: return constValue(1, d)
            }
        }
    }

    // MARK: calls

    func declare(_ name: String, _ type: LLVMTypeRef) -> LLVMValueRef {
        if let f = LLVMGetNamedFunction(module, name) { return f }
        return LLVMAddFunction(module, name, type)!
    }

    func intrinsic(_ name: String, _ overloads: [LLVMTypeRef], _ args: [LLVMValueRef]) -> LLVMValueRef {
        let id = LLVMLookupIntrinsicID(name, name.utf8.count)
        var tys: [LLVMTypeRef?] = overloads
        let decl = LLVMGetIntrinsicDeclaration(module, id, &tys, tys.count)
        let fnType = LLVMIntrinsicGetType(ctx, id, &tys, tys.count)
        var a: [LLVMValueRef?] = args
        return LLVMBuildCall2(b, fnType, decl, &a, UInt32(a.count), "")!
    }

    func libm(_ name: String, _ x: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        let t = registerType(d)
        var params: [LLVMTypeRef?] = [t]
        let fnType = LLVMFunctionType(t, &params, 1, 0)!
        let f = declare(d == .float32 ? name + "f" : name, fnType)
        var a: [LLVMValueRef?] = [x]
        return LLVMBuildCall2(b, fnType, f, &a, 1, "")!
    }
}
