import KilnIR

/// Folds a constant per-output-channel scale into the constant weights of the matrix product it
/// multiplies, as inference engines fold batch norm into the convolution before it: once a frozen
/// graph's batch norm is constant-folded it is `dot(a, w) * scale + shift` (a convolution's
/// product seen through the reshape back to NHWC), and `dot(a, w * scale) + shift` gives the
/// same values with one multiply per weight at compile time instead of one per output element
/// on every run (float32 rounding aside, as in TensorFlow's optimize_for_inference).
///
/// Matched: `mul(x, broadcast(s))` (either operand order) where `s` is a float constant (or a
/// small expression of constants) that is a scalar or one value per column of the product
/// (broadcast along the last axis), `x` is a rank-2 `dot(a, w)` or a reshape of one that keeps
/// its columns as the last axis, `w` is a constant, and the product (and the reshape) has no
/// other user. The mul's users read `x` instead; the old weights and the mul are left for
/// dead-code elimination.
public struct BatchNormFoldingPass: Pass {
    public init() {}
    public var name: String { "batch-norm-folding" }

    public func run(_ f: inout Function) throws {
        // Nothing folds unless a product's weights are a constant (a frozen graph's): a training
        // step's come from variables, and this scan is a tenth of the rebuild (the digits step:
        // ~0.4 ms of each of its three lowerings).
        var constants = Set<Int>()
        for inst in f.body { if case .constant = inst.op { constants.insert(inst.id) } }
        guard f.body.contains(where: { inst in
            guard case .dot = inst.op, inst.operands.count == 2 else { return false }
            return constants.contains(inst.operands[1])
        }) else { return }
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
    /// column broadcast along the last axis. `s` may be an expression of constants that constant
    /// folding left alone because a broadcast in it grows its operand (`rsqrt(variance +
    /// broadcast(epsilon))` for 32 channels): it is evaluated here, small values only.
    static func scale(_ inst: Instruction, x: Int, body: [Instruction], position: [Int: Int]) -> Tensor? {
        let other = inst.operands[0] == x ? inst.operands[1] : inst.operands[0]
        guard let ok = position[other], case .broadcast(let shape, let dims) = body[ok].op,
              let s = constantValue(body[ok].operands[0], body: body, position: position, depth: 0),
              s.dtype == inst.type?.dtype else { return nil }
        if s.shape.isEmpty && dims.isEmpty { return s }
        guard s.shape.count == 1, dims == [shape.count - 1], s.shape[0] == shape.last else { return nil }
        return s
    }

    /// Values of at most this many elements are evaluated from constants by the pass.
    static let evaluatedElementsLimit = 4096
    /// How deep an expression of constants the pass evaluates (a batch norm's scale is 4 deep;
    /// unmemoised, a shared subexpression is evaluated once per path, at most 2^8 times).
    static let evaluatedDepthLimit = 8

    /// The value of `id` when it is a constant or a small, shallow expression of constants
    /// without state or randomness; nil otherwise.
    static func constantValue(_ id: Int, body: [Instruction], position: [Int: Int], depth: Int) -> Tensor? {
        guard let k = position[id] else { return nil }
        let i = body[k]
        if case .constant(let t) = i.op { return t }
        guard depth < evaluatedDepthLimit, !i.op.hasSideEffects, i.op != .varRead, let t = i.type,
              t.elementCount <= evaluatedElementsLimit else { return nil }
        switch i.op {
        case .random, .check: return nil
        default: break
        }
        var operands: [Tensor] = []
        for o in i.operands {
            guard let v = constantValue(o, body: body, position: position, depth: depth + 1) else { return nil }
            operands.append(v)
        }
        return try? ReferenceEvaluator.evaluate(i.op, operands)
    }
}
