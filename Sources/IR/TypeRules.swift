/// The result type of each primitive from its operand types: the single source of truth for the
/// builder, the verifier and shape inference.
extension Op {
    public func resultType(operands t: [TensorType]) throws -> TensorType? {
        func fail(_ why: String) -> KilnError {
            KilnError.invalidArgument("\(mnemonic): \(why) (operands \(t.map(\.description).joined(separator: ", ")))")
        }
        // Attributes can come from parsed text: their arithmetic is checked, never trapping.
        func checked(_ v: Int?) throws -> Int {
            guard let v else { throw fail("the sizes in its attributes overflow") }
            return v
        }
        func span(_ n: Int, _ lo: Int, _ hi: Int, window k: Int, dilation d: Int) throws -> Int {
            let padded = try checked(Sizes.sum(n, lo).flatMap { Sizes.sum($0, hi) })
            let eff = try checked(Sizes.product(k - 1, d).flatMap { Sizes.sum($0, 1) })
            return try checked(Sizes.sum(padded, -eff))
        }
        func arity(_ n: Int) throws {
            if t.count != n { throw fail("expects \(n) operand(s), got \(t.count)") }
        }
        // Strings only move through the graph; no primitive computes on them yet.
        switch self {
        case .constant, .reshape, .varRead, .varWrite: break
        default: if t.contains(where: { $0.dtype == .string }) { throw fail("does not operate on strings") }
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
            if shape.contains(where: { $0 < 0 }) { throw fail("result shape \(shape) has a negative dimension") }
            for (i, d) in dims.enumerated() {
                guard d >= 0, d < shape.count, i == 0 || dims[i - 1] < d else { throw fail("dims \(dims) must be increasing and within rank \(shape.count)") }
                if t[0].shape[i] != shape[d] && t[0].shape[i] != 1 {
                    throw fail("cannot broadcast dimension \(i) of size \(t[0].shape[i]) to \(shape[d]) in \(shape)")
                }
            }
            return TensorType(t[0].dtype, shape)
        case .reshape(let shape):
            try arity(1)
            if Sizes.product(shape) != t[0].elementCount {
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
            if !t[0].dtype.isNumeric && !(t[0].dtype == .bool && (r == .max || r == .min)) {
                throw fail("reduce.\(r.rawValue) needs a numeric type")
            }
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
        case .iota(let d, let shape, let axis):
            try arity(0)
            if !d.isNumeric || axis < 0 || axis >= max(shape.count, 1) || shape.contains(where: { $0 < 0 }) {
                throw fail("needs a numeric type and an axis within \(shape)")
            }
            return TensorType(d, shape)
        case .slice(let start, let strides, let shape):
            try arity(1)
            let x = t[0]
            guard start.count == x.rank, strides.count == x.rank, shape.count == x.rank else {
                throw fail("start \(start), strides \(strides) and shape \(shape) must each have rank \(x.rank)")
            }
            for d in 0..<x.rank where shape[d] != 0 {
                let last = try checked(Sizes.product(shape[d] - 1, strides[d]).flatMap { Sizes.sum(start[d], $0) })
                guard strides[d] != 0, shape[d] > 0, (0..<x.shape[d]).contains(start[d]), (0..<x.shape[d]).contains(last) else {
                    throw fail("dimension \(d): elements \(start[d]) to \(last) step \(strides[d]) are outside 0..<\(x.shape[d])")
                }
            }
            return TensorType(x.dtype, shape)
        case .pad(let low, let high, let mode):
            try arity(2)
            let x = t[0]
            guard t[1].dtype == x.dtype, t[1].rank == 0 else { throw fail("the border value must be a scalar of the operand's type") }
            guard low.count == x.rank, high.count == x.rank, !(low + high).contains(where: { $0 < 0 }) else {
                throw fail("paddings \(low), \(high) must be non-negative, one per dimension")
            }
            if mode != .constant {
                let limit = mode == .reflect ? 1 : 0
                for d in 0..<x.rank where low[d] > x.shape[d] - limit || high[d] > x.shape[d] - limit {
                    throw fail("paddings must be \(mode == .reflect ? "less than" : "no greater than") the dimension size: \(low[d]), \(high[d]) against \(x.shape[d]) in dimension \(d)")
                }
            }
            return TensorType(x.dtype, try (0..<x.rank).map { d in try checked(Sizes.sum(x.shape[d], low[d]).flatMap { Sizes.sum($0, high[d]) }) })
        case .concat(let axis):
            guard let first = t.first else { throw fail("needs at least one operand") }
            guard axis >= 0, axis < first.rank else { throw fail("axis \(axis) is outside rank \(first.rank)") }
            var total = 0
            for x in t {
                var a = x.shape, b = first.shape
                guard x.dtype == first.dtype, x.rank == first.rank else { throw fail("operands must share dtype and rank") }
                total += a[axis]
                a[axis] = 0
                b[axis] = 0
                if a != b { throw fail("operands must match in every dimension but \(axis)") }
            }
            var shape = first.shape
            shape[axis] = total
            return TensorType(first.dtype, shape)
        case .gather(let axis, let batchDims):
            try arity(2)
            let (p, i) = (t[0], t[1])
            guard i.dtype == .int32 || i.dtype == .int64 else { throw fail("indices must be int32 or int64") }
            guard batchDims >= 0, batchDims <= axis, axis < p.rank, batchDims <= i.rank,
                  Array(p.shape.prefix(batchDims)) == Array(i.shape.prefix(batchDims)) else {
                throw fail("axis \(axis) and batch_dims \(batchDims) do not fit params \(p.shape) and indices \(i.shape)")
            }
            return TensorType(p.dtype, Array(p.shape.prefix(axis)) + Array(i.shape.dropFirst(batchDims)) + Array(p.shape.dropFirst(axis + 1)))
        case .argReduce(_, let axis, let out):
            try arity(1)
            guard t[0].dtype.isNumeric, out == .int32 || out == .int64, axis >= 0, axis < t[0].rank, t[0].shape[axis] > 0 else {
                throw fail("needs a numeric operand, a non-empty axis within its rank and an int32/int64 result")
            }
            var shape = t[0].shape
            shape.remove(at: axis)
            return TensorType(out, shape)
        case .reduceWindow(_, let window, let strides, let lo, let hi):
            try arity(1)
            let x = t[0]
            guard [window, strides, lo, hi].allSatisfy({ $0.count == x.rank }), !(window + strides).contains(where: { $0 < 1 }) else {
                throw fail("window, strides and paddings need one positive entry per dimension")
            }
            let shape = try (0..<x.rank).map { d -> Int in
                let span = try span(x.shape[d], lo[d], hi[d], window: window[d], dilation: 1)
                if span < 0 { throw fail("window \(window[d]) is larger than padded dimension \(d)") }
                return span / strides[d] + 1
            }
            return TensorType(x.dtype, shape)
        case .patches(let window, let strides, let dilations, let lo, let hi):
            try arity(1)
            let x = t[0]
            guard x.rank == 4, [window, strides, dilations, lo, hi].allSatisfy({ $0.count == 2 }),
                  !(window + strides + dilations).contains(where: { $0 < 1 }) else {
                throw fail("needs an NHWC operand and 2-element window, strides, dilations and paddings")
            }
            let out = try (0..<2).map { d -> Int in
                let span = try span(x.shape[d + 1], lo[d], hi[d], window: window[d], dilation: dilations[d])
                if span < 0 { throw fail("the dilated window is larger than the padded image") }
                return span / strides[d] + 1
            }
            return TensorType(x.dtype, [x.shape[0], out[0], out[1], try checked(Sizes.product([window[0], window[1], x.shape[3]]))])
        case .unpatches(let window, let strides, let dilations, let lo, let hi, let image):
            try arity(1)
            let x = t[0]
            guard x.rank == 4, [window, strides, dilations, lo, hi, image].allSatisfy({ $0.count == 2 }),
                  !(window + strides + dilations + image).contains(where: { $0 < 1 }), let taps = Sizes.product(window[0], window[1]),
                  x.shape[3] % taps == 0 else {
                throw fail("needs [N, OH, OW, KH*KW*C] patches and 2-element window, strides, dilations, paddings and image size")
            }
            for d in 0..<2 {
                let span = try span(image[d], lo[d], hi[d], window: window[d], dilation: dilations[d])
                if span < 0 || span / strides[d] + 1 != x.shape[d + 1] {
                    throw fail("patches of \(x.shape[d + 1]) positions do not come from an image dimension of \(image[d])")
                }
            }
            return TensorType(x.dtype, [x.shape[0], image[0], image[1], x.shape[3] / taps])
        case .random(let kind, let d, let shape, _):
            try arity(1)
            guard t[0] == TensorType(.int64, []) else { throw fail("operand must be the i64 run counter") }
            if kind == .bits ? d != .int64 : !d.isFloatingPoint { throw fail("\(kind.rawValue) cannot produce \(d)") }
            if shape.contains(where: { $0 < 0 }) { throw fail("result shape \(shape) has a negative dimension") }
            return TensorType(d, shape)
        case .varRead:
            try arity(1)
            return t[0]
        case .varWrite:
            try arity(2)
            if t[0] != t[1] { throw fail("value type must equal the variable's type") }
            return nil
        case .check(let c):
            try arity(1)
            if c.kind == .finite {
                guard t[0].dtype.isFloatingPoint else { throw fail("a finite check needs a floating-point operand") }
                return t[0]
            }
            guard [.int32, .int64, .int16, .uint8].contains(t[0].dtype) else { throw fail("needs an integer operand") }
            switch c.kind {
            case .index(let bounds):
                guard bounds.count == 1 || (t[0].rank > 0 && bounds.count == t[0].shape.last!), bounds.allSatisfy({ $0 >= 0 }) else {
                    throw fail("bounds \(bounds) must be one non-negative bound or one per position of the last dimension")
                }
            case .below, .nonzero, .positive, .finite: break
            }
            return t[0]
        }
    }
}
