import KilnIR

/// Replaces instructions that return their operand unchanged by the operand itself: a reduction
/// over no axes, a reshape or broadcast to the operand's own shape, the identity transpose, a cast
/// to the operand's dtype, a whole-tensor slice, a pad of zero width, a concat of one tensor.
///
/// Gradient graphs are full of these: TensorFlow's `Sum(grad, BroadcastGradientArgs(...))` sums
/// over no axes wherever an add's operands already had the same shape, and the kernel plan would
/// otherwise give such a copy a buffer and a loop of its own whenever its value has two users.
public struct AlgebraicSimplificationPass: Pass {
    public init() {}
    public var name: String { "simplify" }

    public func run(_ f: inout Function) throws {
        var types = f.typeTable()
        var replace: [Int: Int] = [:]
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count)
        for var inst in f.body {
            inst.operands = inst.operands.map { replace[$0] ?? $0 }
            if let type = inst.type, let x = inst.operands.first, let xt = types[x],
               Self.returnsOperand(inst.op, operandCount: inst.operands.count, operand: xt, result: type) {
                replace[inst.id] = x
                continue
            }
            if let t = inst.type { types[inst.id] = t }
            body.append(inst)
        }
        f.body = body
        f.results = f.results.map { replace[$0] ?? $0 }
    }

    /// Whether `op` applied to a value of type `operand` gives that value back, bit for bit.
    static func returnsOperand(_ op: Op, operandCount: Int, operand: TensorType, result: TensorType) -> Bool {
        guard operand == result else { return false }
        let rank = operand.rank
        switch op {
        case .reduce(_, let axes): return axes.isEmpty
        case .reshape: return true
        case .broadcast(_, let dims): return dims == Array(0..<rank)
        case .transpose(let perm): return perm == Array(0..<rank)
        case .cast: return true
        case .slice(let start, let strides, _):
            return start.allSatisfy { $0 == 0 } && strides.allSatisfy { $0 == 1 }
        case .pad(let low, let high, _): return low.allSatisfy { $0 == 0 } && high.allSatisfy { $0 == 0 }
        case .concat: return operandCount == 1
        default: return false
        }
    }
}
