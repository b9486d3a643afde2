import CLLVM
import KilnIR
import KilnPasses

/// Run-time checks (`Op.check`) without branches in the loops: each element's failure is OR-ed
/// into a flag held in a stack slot (a reduction LLVM vectorises, one compare and one OR per
/// element); after its loops a kernel whose flag is set scans the checked tensor for its first
/// failing element and calls `kiln_fault_record` (CKilnRT) on the arena's fault record, and the
/// entry returns after any kernel that may fault once the record holds one. The runtime turns
/// the record into the check's error.
extension Emitter {
    /// Whether kernel `k` evaluates a check (as its own value or inline).
    func mayFault(_ k: KernelPlan.Kernel) -> Bool {
        guard let v = k.value else { return false }
        func isCheck(_ v: Int) -> Bool { if case .check? = inst[v]?.op { return true } else { return false } }
        return isCheck(v) || (plan.fused[v] ?? []).contains(where: isCheck)
    }

    /// Folds element `idx` of check `i` (value `x`) into the check's flag for this function.
    func emitCheck(_ i: Instruction, _ c: Check, _ x: LLVMValueRef, _ idx: Index) {
        let slot: LLVMValueRef
        if let s = faultSlots.first(where: { $0.check == i.id })?.slot { slot = s } else {
            slot = entryAlloca(i1)
            let tmp = LLVMCreateBuilderInContext(ctx)!
            LLVMPositionBuilderBefore(tmp, entryTerminator)
            LLVMBuildStore(tmp, LLVMConstInt(i1, 0, 0), slot)
            LLVMDisposeBuilder(tmp)
            faultSlots.append((i.id, slot))
        }
        let failed = checkFails(c, widened(x, types[i.operands[0]]!.dtype), idx)
        LLVMBuildStore(b, LLVMBuildOr(b, LLVMBuildLoad2(b, i1, slot, "")!, failed, "")!, slot)
    }

    /// Whether value `v` (widened to i64) at `idx` fails check `c`.
    func checkFails(_ c: Check, _ v: LLVMValueRef, _ idx: Index) -> LLVMValueRef {
        switch c.kind {
        case .index(let bounds):
            // One unsigned compare catches negative indices too.
            var limit = constI64(bounds[0])
            if bounds.count > 1, let last = idx.multi.last {
                for (k, n) in bounds.enumerated().dropFirst() {
                    limit = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, last, constI64(k), ""), constI64(n), limit, "")!
                }
            }
            return LLVMBuildICmp(b, LLVMIntUGE, v, limit, "")!
        case .below(let n): return LLVMBuildICmp(b, LLVMIntSGE, v, constI64(n), "")!
        case .nonzero: return LLVMBuildICmp(b, LLVMIntEQ, v, constI64(0), "")!
        case .positive: return LLVMBuildICmp(b, LLVMIntSLE, v, constI64(0), "")!
        }
    }

    func widened(_ x: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        switch d {
        case .int64: return x
        case .uint8: return LLVMBuildZExt(b, x, i64, "")!
        default: return LLVMBuildSExt(b, x, i64, "")!
        }
    }

    /// After a function's loops: for each check whose flag is set (the slow path, taken only on
    /// a fault), scans the checked tensor from its start for the first failing element and
    /// records it. Every part of a split kernel that failed finds the same element.
    func recordFaults() {
        guard !faultSlots.isEmpty, let offset = plan.faultRecord else { return }
        let record = arenaPointer(offset, "fault")
        var params: [LLVMTypeRef?] = [ptr, i64, i64, i64]
        let type = LLVMFunctionType(void, &params, 4, 0)!
        let callee = declare("kiln_fault_record", type)
        for (check, slot) in faultSlots.sorted(by: { $0.check < $1.check }) {
            guard case .check(let c) = inst[check]!.op else { continue }
            let x = inst[check]!.operands[0], xt = types[x]!
            let scan = LLVMAppendBasicBlockInContext(ctx, fn, "fault")!, next = LLVMAppendBasicBlockInContext(ctx, fn, "checked")!
            setUnlikely(LLVMBuildCondBr(b, LLVMBuildLoad2(b, i1, slot, "")!, scan, next)!)
            LLVMPositionBuilderAtEnd(b, scan)
            let counter = entryAlloca(i64)
            LLVMBuildStore(b, constI64(0), counter)
            let header = LLVMAppendBasicBlockInContext(ctx, fn, "scan")!, body = LLVMAppendBasicBlockInContext(ctx, fn, "scan.body")!
            let found = LLVMAppendBasicBlockInContext(ctx, fn, "scan.found")!, latch = LLVMAppendBasicBlockInContext(ctx, fn, "scan.next")!
            LLVMBuildBr(b, header)
            LLVMPositionBuilderAtEnd(b, header)
            let position = LLVMBuildLoad2(b, i64, counter, "")!
            LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntULT, position, constI64(xt.elementCount), ""), body, next)
            LLVMPositionBuilderAtEnd(b, body)
            let at = Index(linear: position, shape: xt.shape, emitter: self)
            diagnosing = true
            let value = widened(element(x, at), xt.dtype)
            diagnosing = false
            LLVMBuildCondBr(b, checkFails(c, value, at), found, latch)
            LLVMPositionBuilderAtEnd(b, found)
            var args: [LLVMValueRef?] = [record, constI64(plan.checks.firstIndex(of: check)! + 1), position, value]
            LLVMBuildCall2(b, type, callee, &args, 4, "")
            LLVMBuildBr(b, next)
            LLVMPositionBuilderAtEnd(b, latch)
            LLVMBuildStore(b, LLVMBuildAdd(b, position, constI64(1), "")!, counter)
            LLVMBuildBr(b, header)
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
