/// The result type of each primitive from its operand types: the single source of truth for the
/// builder, the verifier and shape inference.
extension Op {
    public func resultType(operands t: [TensorType]) throws -> TensorType? {
        func fail(_ why: String) -> KilnError {
            KilnError.invalidArgument("\(mnemonic): \(why) (operands \(t.map(\.description).joined(separator: ", ")))")
        }
        func arity(_ n: Int) throws {
            if t.count != n { throw fail("expects \(n) operand(s), got \(t.count)") }
        }
        switch self {
        case .constant(let v):
            try arity(0)
            return TensorType(v.dtype, v.shape)
        case .unary(let u):
            try arity(1)
            let d = t[0].dtype
            switch u {
            case .not: if d != .bool { throw fail("needs bool") }
            case .neg, .abs, .sign:
                if !d.isNumeric { throw fail("needs a numeric type") }
            default:
                if !d.isFloatingPoint { throw fail("needs a floating-point type") }
            }
            return t[0]
        case .binary(let b):
            try arity(2)
            if t[0] != t[1] { throw fail("operands must have the same type") }
            switch b {
            case .and, .or: if t[0].dtype != .bool { throw fail("needs bool") }
            default: if !t[0].dtype.isNumeric { throw fail("needs a numeric type") }
            }
            return t[0]
        case .compare:
            try arity(2)
            if t[0] != t[1] { throw fail("operands must have the same type") }
            return TensorType(.bool, t[0].shape)
        case .select:
            try arity(3)
            if t[0].dtype != .bool || t[0].shape != t[1].shape || t[1] != t[2] {
                throw fail("needs a bool condition and two values, all of one shape")
            }
            return t[1]
        case .cast(let to):
            try arity(1)
            if t[0].dtype == .string || to == .string { throw fail("cannot cast strings") }
            return TensorType(to, t[0].shape)
        case .broadcast(let shape, let dims):
            try arity(1)
            if dims.count != t[0].rank { throw fail("dims \(dims) must name one result dimension per operand dimension") }
            for (i, d) in dims.enumerated() {
                guard d >= 0, d < shape.count, i == 0 || dims[i - 1] < d else { throw fail("dims \(dims) must be increasing and within rank \(shape.count)") }
                if t[0].shape[i] != shape[d] && t[0].shape[i] != 1 {
                    throw fail("cannot broadcast dimension \(i) of size \(t[0].shape[i]) to \(shape[d]) in \(shape)")
                }
            }
            return TensorType(t[0].dtype, shape)
        case .reshape(let shape):
            try arity(1)
            if shape.contains(where: { $0 < 0 }) || shape.reduce(1, *) != t[0].elementCount {
                throw fail("cannot reshape \(t[0].elementCount) elements to \(shape)")
            }
            return TensorType(t[0].dtype, shape)
        case .transpose(let perm):
            try arity(1)
            if perm.sorted() != Array(0..<t[0].rank) { throw fail("perm \(perm) is not a permutation of rank \(t[0].rank)") }
            return TensorType(t[0].dtype, perm.map { t[0].shape[$0] })
        case .reduce(let r, let axes):
            try arity(1)
            if axes != Array(Set(axes)).sorted() || axes.contains(where: { $0 < 0 || $0 >= t[0].rank }) {
                throw fail("axes \(axes) must be sorted, unique and within rank \(t[0].rank)")
            }
            if !t[0].dtype.isNumeric { throw fail("reduce.\(r.rawValue) needs a numeric type") }
            let kept = t[0].shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
            return TensorType(t[0].dtype, kept)
        case .dot(let ta, let tb):
            try arity(2)
            let (a, b) = (t[0], t[1])
            guard a.dtype == b.dtype, a.dtype.isNumeric else { throw fail("operands must share a numeric type") }
            guard a.rank >= 2, a.rank == b.rank, a.shape.dropLast(2) == b.shape.dropLast(2) else {
                throw fail("operands must be matrices with equal batch dimensions")
            }
            let r = a.rank
            let (m, ka) = ta ? (a.shape[r - 1], a.shape[r - 2]) : (a.shape[r - 2], a.shape[r - 1])
            let (kb, n) = tb ? (b.shape[r - 1], b.shape[r - 2]) : (b.shape[r - 2], b.shape[r - 1])
            if ka != kb { throw fail("inner dimensions \(ka) and \(kb) differ") }
            return TensorType(a.dtype, Array(a.shape.dropLast(2)) + [m, n])
        case .varRead:
            try arity(1)
            return t[0]
        case .varWrite:
            try arity(2)
            if t[0] != t[1] { throw fail("value type must equal the variable's type") }
            return nil
        }
    }
}
