import KilnIR
import KilnPasses

/// Run-time checks (`Op.check`) without branches in the loops: each element's failure is OR-ed
/// into a flag held in a slot (a reduction the target vectorises, one compare and one OR per
/// element); after its loops a kernel whose flag is set scans the checked tensor for its first
/// failing element and calls `kiln_fault_record` (CKilnRT) on the arena's fault record, and the
/// entry returns after any kernel that may fault once the record holds one. The runtime turns
/// the record into the check's error.
extension KernelWriter {
    /// Whether kernel `k` evaluates a check (as its own value or inline).
    func mayFault(_ k: KernelPlan.Kernel) -> Bool {
        guard let v = k.value else { return false }
        func isCheck(_ v: Int) -> Bool { if case .check? = inst[v]?.op { return true } else { return false } }
        return isCheck(v) || (plan.fused[v] ?? []).contains(where: isCheck)
    }

    /// Folds element `idx` of check `i` (value `x`) into the check's flag for this function.
    func foldCheck(_ i: Instruction, _ c: Check, _ x: RValue, _ idx: Index) {
        if target.workItems { return recordDeviceFault(i, c, x, idx) }
        let slot: RSlot
        if let s = faultSlots.first(where: { $0.check == i.id })?.slot { slot = s } else {
            slot = r.slot(.i1, initial: r.constant(int: 0, .i1))
            faultSlots.append((i.id, slot))
        }
        // A finite check: one compare per element, |x| < inf failing for NaN as well.
        let failed = c.kind == .finite ? r.not(r.fcmp(.olt, r.math(.fabs, [x]), r.constant(float: .infinity, .register(types[i.operands[0]]!.dtype))))
            : checkFails(c, widened(x, types[i.operands[0]]!.dtype), idx)
        r.store(r.int(.or, r.load(slot), failed), slot)
    }

    /// The value a check tests and reports, as i64: an integer widened, or for a finite check
    /// the element's kinds (`Check.nanBit`, `Check.infBit`).
    func checkedValue(_ c: Check, _ x: RValue, _ d: DType) -> RValue {
        guard c.kind == .finite else { return widened(x, d) }
        let t = ScalarType.register(d)
        let nan = r.convert(.zext, r.fcmp(.uno, x, x), to: .i64)
        let inf = r.convert(.zext, r.fcmp(.oeq, r.math(.fabs, [x]), r.constant(float: .infinity, t)), to: .i64)
        return r.int(.or, r.int(.mul, nan, c64(Int(Check.nanBit))), r.int(.mul, inf, c64(Int(Check.infBit))))
    }

    /// Whether value `v` (widened to i64) at `idx` fails check `c`.
    func checkFails(_ c: Check, _ v: RValue, _ idx: Index) -> RValue {
        switch c.kind {
        case .index(let bounds):
            // One unsigned compare catches negative indices too.
            var limit = c64(bounds[0])
            if bounds.count > 1, let last = idx.multi.last {
                for (k, n) in bounds.enumerated().dropFirst() {
                    limit = r.select(r.icmp(.eq, last, c64(k)), c64(n), limit)
                }
            }
            return r.icmp(.uge, v, limit)
        case .below(let n): return r.icmp(.sge, v, c64(n))
        case .nonzero: return r.icmp(.eq, v, c64(0))
        case .positive: return r.icmp(.sle, v, c64(0))
        case .finite: return r.icmp(.ne, v, c64(0))
        }
    }

    func widened(_ x: RValue, _ d: DType) -> RValue {
        switch d {
        case .int64: return x
        case .uint8: return r.convert(.zext, x, to: .i64)
        default: return r.convert(.sext, x, to: .i64)
        }
    }

    /// After a function's loops: for each check whose flag is set (the slow path, taken only on
    /// a fault), scans the checked tensor from its start for the first failing element and
    /// records it. Every part of a split kernel that failed finds the same element.
    func recordFaults() {
        guard !faultSlots.isEmpty, let offset = plan.faultRecord else { return }
        let record = scratch(offset, "fault")
        for (check, flag) in faultSlots.sorted(by: { $0.check < $1.check }) {
            guard case .check(let c) = inst[check]!.op else { continue }
            let x = inst[check]!.operands[0], xt = types[x]!
            let site = plan.checks.firstIndex(of: check)! + 1
            r.ifThen(r.load(flag), unlikely: true) {
                // CheckNumerics reports every kind the tensor holds: OR them over all of it.
                let kinds = c.kind == .finite ? r.slot(.i64, initial: c64(0)) : nil
                if let kinds {
                    r.loop(count: xt.elementCount, hints: LoopHints()) { p in
                        diagnosing = true
                        let k = checkedValue(c, element(x, Index(linear: p, shape: xt.shape, writer: self)), xt.dtype)
                        diagnosing = false
                        r.store(r.int(.or, r.load(kinds), k), kinds)
                    }
                }
                let position = r.slot(.i64, initial: c64(0))
                r.whileLoop({ r.icmp(.ult, r.load(position), c64(xt.elementCount)) }) {
                    let p = r.load(position)
                    let at = Index(linear: p, shape: xt.shape, writer: self)
                    diagnosing = true
                    let value = checkedValue(c, element(x, at), xt.dtype)
                    diagnosing = false
                    let fails = checkFails(c, value, at)
                    r.store(r.int(.add, p, c64(1)), position)
                    r.ifThen(fails, unlikely: false) {
                        _ = r.callRuntime(.faultRecord, [record, c64(site), p, kinds.map { r.load($0) } ?? value])
                        // The first failing element is the one to report: stop here.
                        r.store(c64(xt.elementCount), position)
                    }
                }
            }
        }
    }

    /// In the entry: return now if a kernel has recorded a fault, so nothing after it runs
    /// (in particular no variable is written).
    func returnIfFaulted() {
        guard let offset = plan.faultRecord else { return }
        // The record's address is computed where it is read, so the entry keeps no pointer live
        // across its kernel calls.
        let site = r.load(r.offset(r.parameter(2), bytes: c64(offset)), c64(0), .i64)
        r.ifThen(r.icmp(.ne, site, c64(0)), unlikely: true) { r.returnNow() }
    }
}
