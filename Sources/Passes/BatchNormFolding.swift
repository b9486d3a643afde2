import KilnIR

/// Folds a constant per-output-channel scale into the constant weights of the matrix product it
/// multiplies, as inference engines fold batch norm into the convolution before it: once a frozen
/// graph's batch norm is constant-folded it is `dot(a, w) * scale + shift` (a convolution's
/// product seen through the reshape back to NHWC), and `dot(a, w * scale) + shift` gives the
/// same values with one multiply per weight at compile time instead of one per output element
/// on every run (float32 rounding aside, as in TensorFlow's optimize_for_inference).
///
/// Matched: `mul(x, broadcast(s))` (either operand order) where `s` is a float constant that is a
/// scalar or one value per column of the product (broadcast along the last axis), `x` is a
/// rank-2 `dot(a, w)` or a reshape of one that keeps its columns as the last axis, `w` is a
/// constant, and the product (and the reshape) has no other user. The mul's users read `x`
/// instead; the old weights and the mul are left for dead-code elimination.
public struct BatchNormFoldingPass: Pass {
    public init() {}
    public var name: String { "batch-norm-folding" }

    public func run(_ f: inout Function) throws {
        var uses: [Int: Int] = [:]
        for inst in f.body { for o in inst.operands { uses[o, default: 0] += 1 } }
        for r in f.results { uses[r, default: 0] += 1 }
        var nextID = max(f.params.count, (f.body.map(\.id).max() ?? -1) + 1)
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count)
        var position: [Int: Int] = [:]   // id -> index in `body`
        var replace: [Int: Int] = [:]
        let types = f.typeTable()
        for var inst in f.body {
            inst.operands = inst.operands.map { replace[$0] ?? $0 }
            if let (x, dotIndex, weights) = Self.match(inst, body: body, position: position, uses: uses, types: types) {
                let dot = body[dotIndex]
                guard case .dot(_, let transposeB) = dot.op, case .constant(let w) = body[position[weights]!].op,
                      let scale = Self.scale(inst, x: x, body: body, position: position) else {
                    throw KilnError.internalError("batch-norm folding matched %\(inst.id) without its product's constant weights")
                }
                let column = transposeB ? 0 : 1
                let spread = try ReferenceEvaluator.evaluate(.broadcast(shape: w.shape, dims: scale.shape.isEmpty ? [] : [column]), [scale])
                let folded = try ReferenceEvaluator.evaluate(.binary(.mul), [w, spread])
                let constant = Instruction(id: nextID, op: .constant(folded), operands: [], type: TensorType(w.dtype, w.shape))
                nextID += 1
                body[dotIndex].operands[1] = constant.id
                body.insert(constant, at: dotIndex)
                for k in dotIndex..<body.count { position[body[k].id] = k }
                uses[weights, default: 1] -= 1
                uses[constant.id] = 1
                // The mul's users now read x: x keeps one use per user of the mul.
                uses[x] = uses[inst.id] ?? 0
                replace[inst.id] = x
                continue
            }
            position[inst.id] = body.count
            body.append(inst)
        }
        f.body = body
        f.results = f.results.map { replace[$0] ?? $0 }
    }

    /// For `mul(x, broadcast(s))`: x, the index in `body` of the product under x, and the id of
    /// its constant weights; nil where the pattern does not hold.
    static func match(_ inst: Instruction, body: [Instruction], position: [Int: Int], uses: [Int: Int],
                      types: [Int: TensorType]) -> (Int, Int, Int)? {
        guard case .binary(.mul) = inst.op, inst.operands.count == 2, let t = inst.type,
              t.dtype == .float32 || t.dtype == .float64 else { return nil }
        for (x, other) in [(inst.operands[0], inst.operands[1]), (inst.operands[1], inst.operands[0])] {
            guard x != other, uses[x] == 1, let xk = position[x], let ok = position[other],
                  case .broadcast = body[ok].op else { continue }
            var dk = xk
            if case .reshape = body[xk].op {
                let d = body[xk].operands[0]
                guard uses[d] == 1, let k = position[d] else { continue }
                dk = k
            }
            let dot = body[dk]
            guard case .dot = dot.op, let dt = dot.type, dt.rank == 2, dt.dtype == t.dtype,
                  t.shape.last == dt.shape[1], let wk = position[dot.operands[1]], case .constant = body[wk].op,
                  dot.operands[0] != dot.operands[1], scale(inst, x: x, body: body, position: position) != nil else { continue }
            return (x, dk, dot.operands[1])
        }
        return nil
    }

    /// The constant `s` of the mul's other operand `broadcast(s)`: a scalar, or one value per
    /// column broadcast along the last axis.
    static func scale(_ inst: Instruction, x: Int, body: [Instruction], position: [Int: Int]) -> Tensor? {
        let other = inst.operands[0] == x ? inst.operands[1] : inst.operands[0]
        guard let ok = position[other], case .broadcast(let shape, let dims) = body[ok].op,
              let sk = position[body[ok].operands[0]], case .constant(let s) = body[sk].op, s.dtype == inst.type?.dtype else { return nil }
        if s.shape.isEmpty && dims.isEmpty { return s }
        guard s.shape.count == 1, dims == [shape.count - 1], s.shape[0] == shape.last else { return nil }
        return s
    }
}
