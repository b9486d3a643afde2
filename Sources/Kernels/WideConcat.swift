import KilnIR
import KilnPasses

extension KernelWriter {
    /// Operands per function of a concat the plan writes one operand at a time.
    static let concatOperandsPerFunction = 16

    /// A concat the plan writes one operand at a time (a `KernelPlan.Kernel.wideConcat`), cut
    /// into parts of a few operands, each a function of its own: its operands and where along the
    /// axis the first of them starts.
    func concatParts(_ i: Instruction) -> [(operands: ArraySlice<Int>, offset: Int)] {
        guard case .concat(let axis) = i.op else { preconditionFailure("wide concat of \(i.op.mnemonic)") }
        var parts: [(operands: ArraySlice<Int>, offset: Int)] = []
        var offset = 0
        for start in stride(from: 0, to: i.operands.count, by: Self.concatOperandsPerFunction) {
            let operands = i.operands[start..<min(start + Self.concatOperandsPerFunction, i.operands.count)]
            parts.append((operands, offset))
            offset += operands.reduce(0) { $0 + types[$1]!.shape[axis] }
        }
        return parts
    }

    /// One loop nest per operand, storing its elements at its offset along the axis. Selecting
    /// the operand per output element, as an inline concat does, costs time in the number of
    /// operands for every element: quadratic for a concat of thousands of inputs.
    func writeConcatOperands(_ i: Instruction, _ operands: ArraySlice<Int>, from start: Int) {
        guard case .concat(let axis) = i.op else { preconditionFailure("wide concat of \(i.op.mnemonic)") }
        let t = i.type!
        let out = base(i.id)!
        var offset = start
        for o in operands {
            let s = types[o]!.shape
            let at = offset
            loopNest(s) { idx in
                var multi = idx.multi
                multi[axis] = r.int(.add, multi[axis], c64(at))
                store(element(o, idx), out, Index(multi: multi, shape: t.shape, writer: self).linear, t.dtype)
            }
            offset += s[axis]
        }
    }
}
