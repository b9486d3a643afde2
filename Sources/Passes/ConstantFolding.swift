import KilnIR

/// Replaces every instruction whose operands are all constants by the constant it computes,
/// evaluated with the reference evaluator so folding can never change a result.
public struct ConstantFoldingPass: Pass {
    public init() {}
    public var name: String { "constant-folding" }

    /// Ops that grow data (broadcast, iota, pad, ...) stay as they are unless tiny: codegen
    /// computes them inside loops for free, while a folded copy costs memory and bandwidth on
    /// every run.
    static func shouldFold(_ inst: Instruction, operands: [Tensor]) -> Bool {
        guard !inst.op.hasSideEffects, inst.op != .varRead else { return false }
        if case .random = inst.op { return false }
        let input = operands.reduce(0) { $0 + $1.elementCount }
        if let t = inst.type, t.elementCount > max(input, KernelPlan.immediateConstantLimit) { return false }
        return true
    }

    public func run(_ f: inout Function) throws {
        var constants: [Int: Tensor] = [:]
        for k in f.body.indices {
            let inst = f.body[k]
            if case .constant(let t) = inst.op { constants[inst.id] = t; continue }
            let ops = inst.operands.compactMap { constants[$0] }
            guard ops.count == inst.operands.count, Self.shouldFold(inst, operands: ops) else { continue }
            let value = try ReferenceEvaluator.evaluate(inst.op, ops)
            f.body[k] = Instruction(id: inst.id, op: .constant(value), operands: [], type: inst.type)
            constants[inst.id] = value
        }
    }
}
