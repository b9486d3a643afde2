import CLLVM
import KilnIR
import KilnPasses

/// Run-time checks (`Op.check`) without branches in the loops: each element's failure folds into
/// an unsigned minimum of failing positions held in a stack slot (a reduction LLVM vectorises);
/// after its loops a kernel that saw a failure reads the value at the first failing position
/// again and calls `kiln_fault_record` (CKilnRT) on the arena's fault record, and the entry
/// returns after any kernel that may fault once the record holds one. The runtime turns the
/// record into the check's error.
extension Emitter {
    /// Whether kernel `k` evaluates a check (as its own value or inline).
    func mayFault(_ k: Int) -> Bool {
        func isCheck(_ v: Int) -> Bool { if case .check? = inst[v]?.op { return true } else { return false } }
        return isCheck(k) || (plan.fused[k] ?? []).contains(where: isCheck)
    }

    /// Folds element `idx` of check `i` (value `x`) into the check's slot of this function.
    func emitCheck(_ i: Instruction, _ c: Check, _ x: LLVMValueRef, _ idx: Index) {
        let slot: LLVMValueRef
        if let s = faultSlots.first(where: { $0.check == i.id })?.slot { slot = s } else {
            slot = entryAlloca(i64)
            let tmp = LLVMCreateBuilderInContext(ctx)!
            LLVMPositionBuilderBefore(tmp, entryTerminator)
            LLVMBuildStore(tmp, constI64(-1), slot)
            LLVMDisposeBuilder(tmp)
            faultSlots.append((i.id, slot))
        }
        let v = widened(x, types[i.operands[0]]!.dtype)
        let failed: LLVMValueRef
        switch c.kind {
        case .index(let bounds):
            // One unsigned compare catches negative indices too.
            var limit = constI64(bounds[0])
            if bounds.count > 1, let last = idx.multi.last {
                for (k, n) in bounds.enumerated().dropFirst() {
                    limit = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, last, constI64(k), ""), constI64(n), limit, "")!
                }
            }
            failed = LLVMBuildICmp(b, LLVMIntUGE, v, limit, "")!
        case .below(let n): failed = LLVMBuildICmp(b, LLVMIntSGE, v, constI64(n), "")!
        case .nonzero: failed = LLVMBuildICmp(b, LLVMIntEQ, v, constI64(0), "")!
        }
        let at = LLVMBuildSelect(b, failed, idx.linear, constI64(-1), "")!
        let old = LLVMBuildLoad2(b, i64, slot, "")!
        LLVMBuildStore(b, intrinsic("llvm.umin", [i64], [old, at]), slot)
    }

    func widened(_ x: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        switch d {
        case .int64: return x
        case .uint8: return LLVMBuildZExt(b, x, i64, "")!
        default: return LLVMBuildSExt(b, x, i64, "")!
        }
    }

    /// After a function's loops: for each check that failed, its first failing element goes to
    /// the fault record (the slow path, taken only on a fault).
    func recordFaults() {
        guard !faultSlots.isEmpty, let offset = plan.faultRecord else { return }
        let record = arenaPointer(offset, "fault")
        var params: [LLVMTypeRef?] = [ptr, i64, i64, i64]
        let type = LLVMFunctionType(void, &params, 4, 0)!
        let callee = declare("kiln_fault_record", type)
        for (check, slot) in faultSlots.sorted(by: { $0.check < $1.check }) {
            let position = LLVMBuildLoad2(b, i64, slot, "")!
            let failed = LLVMBuildICmp(b, LLVMIntNE, position, constI64(-1), "")!
            let record_ = LLVMAppendBasicBlockInContext(ctx, fn, "fault")!, next = LLVMAppendBasicBlockInContext(ctx, fn, "checked")!
            let branch = LLVMBuildCondBr(b, failed, record_, next)!
            setUnlikely(branch)
            LLVMPositionBuilderAtEnd(b, record_)
            let x = inst[check]!.operands[0], xt = types[x]!
            diagnosing = true
            let value = widened(element(x, Index(linear: position, shape: xt.shape, emitter: self)), xt.dtype)
            diagnosing = false
            var args: [LLVMValueRef?] = [record, constI64(plan.checks.firstIndex(of: check)! + 1), position, value]
            LLVMBuildCall2(b, type, callee, &args, 4, "")
            LLVMBuildBr(b, next)
            LLVMPositionBuilderAtEnd(b, next)
        }
    }

    /// In the entry: return now if a kernel has recorded a fault, so nothing after it runs
    /// (in particular no variable is written).
    func returnIfFaulted() {
        guard let offset = plan.faultRecord else { return }
        var idx: [LLVMValueRef?] = [constI64(offset)]
        let site = LLVMBuildLoad2(b, i64, LLVMBuildGEP2(b, i8, LLVMGetParam(fn, 2)!, &idx, 1, "")!, "")!
        let faulted = LLVMBuildICmp(b, LLVMIntNE, site, constI64(0), "")!
        let stop = LLVMAppendBasicBlockInContext(ctx, fn, "faulted")!, go = LLVMAppendBasicBlockInContext(ctx, fn, "run")!
        setUnlikely(LLVMBuildCondBr(b, faulted, stop, go)!)
        LLVMPositionBuilderAtEnd(b, stop)
        LLVMBuildRetVoid(b)
        LLVMPositionBuilderAtEnd(b, go)
    }

    /// Branch weights saying the true edge is almost never taken.
    func setUnlikely(_ branch: LLVMValueRef) {
        var ops: [LLVMMetadataRef?] = [LLVMMDStringInContext2(ctx, "branch_weights", 14),
                                       LLVMValueAsMetadata(LLVMConstInt(i32, 1, 0)), LLVMValueAsMetadata(LLVMConstInt(i32, 1 << 20, 0))]
        let node = LLVMMDNodeInContext2(ctx, &ops, 3)
        LLVMSetMetadata(branch, LLVMGetMDKindIDInContext(ctx, "prof", 4), LLVMMetadataAsValue(ctx, node))
    }
}
