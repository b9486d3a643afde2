import KilnIR

/// A function lowered at one batch size (the template's `batch`) that also stands for the same
/// run at every batch size n up to it: which values carry the batch (their leading dimension is
/// `k * n`) and which scalar constants lowering folded from it (a mean's `1/N`). An executable
/// compiled from it runs every batch n <= `batch` from an arena laid out for `batch` rows, its
/// loops, products and batch scalars taking n at run time (KernelWriter's batch rows).
///
/// It is derived by comparing the function lowered at two batch sizes (`derive`): every
/// difference must be a leading dimension that scales with the batch, a shape attribute that
/// follows its value's type, a constant whose rows do not move, or a constant whose elements are
/// `c * n` or `c / n`. Whether it stands for batch n is checked, not assumed: the function
/// lowering gives at n must compute what `instantiate(n)` does (`mismatch`, the same check
/// `derive` ends with), which costs a lowering (a few milliseconds) instead of a compile.
public struct BatchTemplate: Hashable, Sendable {
    /// How a scalar constant folded from the batch size follows it.
    public enum Scalar: Hashable, Sendable {
        /// `c * n` (an element count).
        case scaled(Double)
        /// `c / n` (a mean's scale).
        case reciprocal(Double)

        public func value(_ n: Int) -> Double {
            switch self {
            case .scaled(let c): return c * Double(n)
            case .reciprocal(let c): return c / Double(n)
            }
        }
    }

    /// The batch size the function was lowered at: the largest the executable runs.
    public let batch: Int
    /// The function at `batch`.
    public let function: Function
    /// Values (parameters and instructions, by id) whose leading dimension is `k * n`: k.
    public let carriers: [Int: Int]
    /// Constants (by instruction id) whose every element is one value that follows the batch
    /// (a mean's 1/N, folded into a scalar or a tensor of the batch's shape).
    public let scalars: [Int: Scalar]

    /// Why two lowerings do not make a template (for KILN_DEBUG).
    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// The template of `f` (lowered at batch `batch`) from `g`, the same run lowered at
    /// `otherBatch`, or why there is none.
    public static func derive(_ f: Function, batch: Int, other g: Function, otherBatch: Int) -> Result<BatchTemplate, Refusal> {
        func refuse(_ why: String) -> Result<BatchTemplate, Refusal> { .failure(Refusal(description: why)) }
        guard batch >= 1, otherBatch >= 1, batch != otherBatch else { return refuse("batch sizes \(batch) and \(otherBatch)") }
        guard f.params.count == g.params.count, f.body.count == g.body.count, f.results == g.results else {
            return refuse("the run lowers to different functions at batch \(batch) and \(otherBatch)")
        }
        var carriers: [Int: Int] = [:]
        /// nil when the types differ other than in a leading dimension that scales with the batch.
        func carrier(_ a: TensorType, _ b: TensorType) -> Int?? {
            if a == b { return .some(nil) }
            guard a.dtype == b.dtype, a.rank == b.rank, a.rank >= 1, a.shape.dropFirst() == b.shape.dropFirst(),
                  a.shape[0] % batch == 0, a.shape[0] > 0 else { return nil }
            let k = a.shape[0] / batch
            guard b.shape[0] == k * otherBatch else { return nil }
            return .some(k)
        }
        for (i, (p, q)) in zip(f.params, g.params).enumerated() {
            guard p.name == q.name, p.kind == q.kind, let k = carrier(p.type, q.type) else {
                return refuse("parameter \(p.name) is \(p.type) at batch \(batch) and \(q.type) at \(otherBatch)")
            }
            if let k { carriers[i] = k }
        }
        var scalars: [Int: Scalar] = [:]
        for (x, y) in zip(f.body, g.body) {
            guard x.id == y.id, x.operands == y.operands, x.op.mnemonic == y.op.mnemonic else {
                return refuse("%\(x.id) is \(x.op.mnemonic) at batch \(batch) and \(y.op.mnemonic) at \(otherBatch)")
            }
            if let a = x.type, let b = y.type {
                guard let k = carrier(a, b) else { return refuse("%\(x.id) (\(x.op.mnemonic)) is \(a) at batch \(batch) and \(b) at \(otherBatch)") }
                if let k { carriers[x.id] = k }
            } else if x.type != y.type {
                return refuse("%\(x.id) (\(x.op.mnemonic)) is typed at one batch size only")
            }
            // A constant of the batch's shape whose rows do not follow the batch (a folded iota)
            // is read by its first rows; one whose value does is a batch scalar.
            if case .constant(let s) = x.op, case .constant(let t) = y.op, s != t {
                if let k = carriers[x.id], rows(s, k * otherBatch) == t { continue }
                guard let form = scalarForm(s, batch, t, otherBatch) else {
                    return refuse("constant %\(x.id) \(s.dtype)\(s.shape) differs at batch \(batch) and \(otherBatch) other than as c*N or c/N")
                }
                scalars[x.id] = form
            }
        }
        // Kernels index these by the operand's whole leading extent; as lowered they read rows
        // the batch does not have.
        for x in f.body where carriers[x.id] != nil || x.operands.contains(where: { carriers[$0] != nil }) {
            switch x.op {
            case .concat(let axis) where axis == 0:
                return refuse("%\(x.id) concatenates along the batch axis")
            case .gather(let axis, _) where axis == 0 && carriers[x.operands[0]] != nil:
                return refuse("%\(x.id) gathers rows of the batch")
            default: break
            }
        }
        let template = BatchTemplate(batch: batch, function: f, carriers: carriers, scalars: scalars)
        if let why = template.mismatch(g, batch: otherBatch) {
            return refuse("at batch \(otherBatch), \(why)")
        }
        return .success(template)
    }

    /// `c * N` or `c / N`, from a constant's values at two batch sizes (every element the
    /// same in each), when it is one.
    static func scalarForm(_ s: Tensor, _ n: Int, _ t: Tensor, _ m: Int) -> Scalar? {
        guard s.dtype == t.dtype, s.elementCount >= 1, t.elementCount >= 1, s.dtype != .string, s.dtype != .bool else { return nil }
        let a = s.double(at: 0)
        for form in [Scalar.scaled(a / Double(n)), .reciprocal(a * Double(n))] {
            if splat(form, s.dtype, s.shape, n) == s, splat(form, t.dtype, t.shape, m) == t { return form }
        }
        return nil
    }

    /// A tensor of `shape` whose every element is `form` at n, stored as `dtype` stores it.
    static func splat(_ form: Scalar, _ dtype: DType, _ shape: [Int], _ n: Int) -> Tensor? {
        guard var t = try? Tensor(zeros: dtype, shape: shape) else { return nil }
        let v = form.value(n)
        let element: ScalarValue
        if dtype.isFloatingPoint { element = .f(v) } else {
            guard v.rounded() == v, abs(v) < 9.0e18 else { return nil }
            element = .i(Int64(v))
        }
        for i in 0..<t.elementCount { try? t.setElement(element, at: i) }
        return t
    }

    /// The first `rows` rows of `t`.
    static func rows(_ t: Tensor, _ rows: Int) -> Tensor? {
        guard t.rank >= 1, rows <= t.shape[0], var out = try? Tensor(zeros: t.dtype, shape: [rows] + t.shape.dropFirst()) else { return nil }
        let bytes = out.byteCount
        _ = try? out.withUnsafeMutableBytes { dst in t.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src.prefix(bytes))) } }
        return out
    }

    /// Batch scalar `id`'s value at batch `n` (one element), as the executable stores it for a run.
    public func scalar(_ id: Int, batch n: Int) -> Tensor {
        guard case .constant(let t) = function.body.first(where: { $0.id == id })?.op, let form = scalars[id],
              let v = BatchTemplate.splat(form, t.dtype, [], n) else { preconditionFailure("%\(id) is no batch scalar") }
        return v
    }

    /// The type of value `id` at batch `n`.
    public func type(_ t: TensorType, of id: Int, batch n: Int) -> TensorType {
        guard let k = carriers[id] else { return t }
        var u = t
        u.shape[0] = k * n
        return u
    }

    /// The function as lowering gives it at batch `n`: carriers' leading dimensions, the shape
    /// attributes that follow them, and the batch scalars at n.
    public func instantiate(_ n: Int) -> Function {
        var g = function
        for i in g.params.indices { g.params[i].type = type(g.params[i].type, of: i, batch: n) }
        for j in g.body.indices {
            let x = g.body[j]
            if let t = x.type { g.body[j].type = type(t, of: x.id, batch: n) }
            if case .constant(let c) = x.op, let shape = g.body[j].type?.shape {
                if let form = scalars[x.id], let v = BatchTemplate.splat(form, c.dtype, shape, n) {
                    g.body[j].op = .constant(v)
                } else if let k = carriers[x.id], let v = BatchTemplate.rows(c, k * n) {
                    g.body[j].op = .constant(v)
                }
            }
            guard carriers[x.id] != nil, let shape = g.body[j].type?.shape else { continue }
            switch x.op {
            case .reshape: g.body[j].op = .reshape(shape: shape)
            case .broadcast(_, let dims): g.body[j].op = .broadcast(shape: shape, dims: dims)
            case .iota(let dtype, _, let axis): g.body[j].op = .iota(dtype: dtype, shape: shape, axis: axis)
            case .slice(let start, let strides, _): g.body[j].op = .slice(start: start, strides: strides, shape: shape)
            case .random(let kind, let dtype, _, let seed): g.body[j].op = .random(kind, dtype: dtype, shape: shape, seed: seed)
            default: break
            }
        }
        return g
    }

    /// Where `g` (the run lowered at batch `n`) first differs from this template at n; nil when
    /// it computes the same. Lowering numbers values the same way at every batch, so each of g's
    /// instructions must be the template's of the same id, or a constant where the template
    /// computes that same value from constants (small values are folded, so a small batch folds
    /// more); g's side effects must be the template's, in the same order.
    public func mismatch(_ g: Function, batch n: Int) -> String? {
        guard n >= 1, n <= batch else { return "batch \(n) is not in 1...\(batch)" }
        let f = instantiate(n)
        guard f.params == g.params, f.results == g.results else { return "its parameters or results differ" }
        var position: [Int: Int] = [:], inst: [Int: Instruction] = [:]
        for (k, x) in f.body.enumerated() { position[x.id] = k; inst[x.id] = x }
        var values: [Int: Tensor?] = [:]
        /// Value `id` of the template at n when constants alone compute it.
        func value(_ id: Int) -> Tensor? {
            if let v = values[id] { return v }
            var v: Tensor?
            if let x = inst[id], !x.op.hasSideEffects, x.op != .varRead {
                if case .constant(let t) = x.op { v = t } else if case .random = x.op { v = nil } else {
                    let operands = x.operands.compactMap(value)
                    if operands.count == x.operands.count { v = try? ReferenceEvaluator.evaluate(x.op, operands) }
                }
            }
            values[id] = v
            return v
        }
        var last = -1
        var kept = Set<Int>()
        for y in g.body {
            guard let k = position[y.id], let x = inst[y.id] else { return "%\(y.id) (\(y.op.mnemonic)) is not in the template" }
            guard k > last else { return "%\(y.id) (\(y.op.mnemonic)) runs in another order than in the template" }
            last = k
            kept.insert(y.id)
            if x == y { continue }
            if case .constant(let c) = y.op, x.type == y.type, value(x.id) == c { continue }
            return "%\(x.id) is \(x.op.mnemonic) \(x.type.map { "\($0)" } ?? "") in the template and \(y.op.mnemonic) \(y.type.map { "\($0)" } ?? "")"
        }
        if let x = f.body.first(where: { $0.op.hasSideEffects && !kept.contains($0.id) }) {
            return "the template's %\(x.id) (\(x.op.mnemonic)) is not in the run"
        }
        return nil
    }
}
