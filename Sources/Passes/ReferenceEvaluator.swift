import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// A deliberately simple interpreter: one function per primitive, element by element. It defines
/// what each primitive means; constant folding uses it and the JIT is tested against it.
public enum ReferenceEvaluator {
    /// Runs `f` with one tensor per parameter (feeds and variables alike). Returns the results and
    /// the parameter tensors after the run, so variable writes are visible.
    public static func run(_ f: Function, parameters: [Tensor]) throws -> (results: [Tensor], parameters: [Tensor]) {
        guard parameters.count == f.params.count else {
            throw KilnError.invalidArgument("'\(f.name)' takes \(f.params.count) parameter(s), got \(parameters.count)")
        }
        var env: [Int: Tensor] = [:]
        var params = parameters
        for (i, p) in parameters.enumerated() { env[i] = p }
        for inst in f.body {
            switch inst.op {
            case .varRead:
                env[inst.id] = params[inst.operands[0]]
            case .varWrite:
                params[inst.operands[0]] = env[inst.operands[1]]!
            default:
                env[inst.id] = try evaluate(inst.op, inst.operands.map { env[$0]! })
            }
        }
        return (f.results.map { env[$0]! }, params)
    }

    public static func evaluate(_ op: Op, _ x: [Tensor]) throws -> Tensor {
        guard let type = try op.resultType(operands: x.map { TensorType($0.dtype, $0.shape) }) else {
            throw KilnError.internalError("\(op.mnemonic) has no value to evaluate")
        }
        switch op {
        case .constant(let t): return t
        case .varRead: return x[0]
        case .varWrite: throw KilnError.internalError("var.write has no value")
        case .unary(let u):
            return try map(type, x) { unary(u, $0[0], x[0].dtype) }
        case .binary(let b):
            return try map(type, x) { binary(b, $0[0], $0[1], x[0].dtype) }
        case .compare(let c):
            return try map(type, x) { .b(compare(c, $0[0], $0[1])) }
        case .select:
            return try map(type, x) { v in
                if case .b(true) = v[0] { return v[1] }
                return v[2]
            }
        case .cast:
            return try x[0].converted(to: type.dtype)
        case .reshape(let shape):
            return try x[0].reshaped(to: shape)
        case .broadcast(_, let dims):
            return try gather(type, x[0]) { out in
                dims.enumerated().map { i, d in x[0].shape[i] == 1 ? 0 : out[d] }
            }
        case .transpose(let perm):
            return try gather(type, x[0]) { out in
                var idx = [Int](repeating: 0, count: perm.count)
                for (i, p) in perm.enumerated() { idx[p] = out[i] }
                return idx
            }
        case .reduce(let r, let axes):
            return try reduce(r, axes, x[0], type)
        case .dot(let ta, let tb):
            return try dot(x[0], x[1], ta, tb, type)
        case .iota(let d, _, let axis):
            var out = try Tensor(zeros: d, shape: type.shape)
            for i in 0..<type.elementCount {
                let v = multiIndex(i, type.shape)[axis]
                try out.setElement(d.isFloatingPoint ? .f(Double(v)) : .i(Int64(v)), at: i)
            }
            return out
        case .slice(let start, let strides, _):
            return try gather(type, x[0]) { out in out.indices.map { start[$0] + out[$0] * strides[$0] } }
        case .pad(let low, _, let mode):
            return try padded(x[0], x[1], low, mode, type)
        case .concat(let axis):
            return try concat(x, axis, type)
        case .gather(let axis, let batchDims):
            return try gatherAxis(x[0], x[1], axis, batchDims, type)
        case .argReduce(let a, let axis, _):
            return try argReduce(a, axis, x[0], type)
        case .reduceWindow(let r, let window, let strides, let lo, _):
            return try reduceWindow(r, window, strides, lo, x[0], type)
        case .patches(let window, let strides, let dilations, let lo, _):
            return try patches(x[0], window, strides, dilations, lo, type)
        case .unpatches(let window, let strides, let dilations, let lo, _, _):
            return try unpatches(x[0], window, strides, dilations, lo, type)
        case .random(let kind, let d, _, let seed):
            return try random(kind, d, seed, counter: try x[0].scalar(as: Int64.self), type)
        case .check(let c):
            try check(c, x[0])
            return x[0]
        }
    }

    /// Throws the check's error for the first element (row-major) that fails it, as compiled
    /// code reports the first offending position.
    public static func check(_ c: Check, _ x: Tensor) throws {
        if c.kind == .finite {
            // CheckNumerics names every kind the whole tensor holds.
            var kinds: Int64 = 0, first = -1
            for i in 0..<x.elementCount {
                guard case .f(let v) = x.element(at: i) else { continue }
                let k = Check.nonFiniteKinds(v)
                if k != 0 && first < 0 { first = i }
                kinds |= k
            }
            if first >= 0 { throw c.error(position: first, value: kinds, shape: x.shape) }
            return
        }
        let last = x.shape.last ?? 1
        for i in 0..<x.elementCount {
            guard case .i(let v) = x.element(at: i) else { continue }
            if !c.kind.passes(v, last: x.rank == 0 ? 0 : i % max(last, 1)) {
                throw c.error(position: i, value: v, shape: x.shape)
            }
        }
    }

    // MARK: index maps and windows

    static func padded(_ x: Tensor, _ border: Tensor, _ low: [Int], _ mode: PadMode, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let xs = strides(x.shape)
        for i in 0..<type.elementCount {
            var src = 0, inside = true
            for (d, o) in multiIndex(i, type.shape).enumerated() {
                guard let k = padSource(o - low[d], x.shape[d], mode) else { inside = false; break }
                src += k * xs[d]
            }
            try out.setElement(inside ? x.element(at: src) : border.element(at: 0), at: i)
        }
        return out
    }

    /// The source index for position `i` (relative to the unpadded start) of a dimension of size n.
    public static func padSource(_ i: Int, _ n: Int, _ mode: PadMode) -> Int? {
        if i >= 0 && i < n { return i }
        switch mode {
        case .constant: return nil
        case .reflect: return i < 0 ? -i : 2 * (n - 1) - i
        case .symmetric: return i < 0 ? -i - 1 : 2 * n - 1 - i
        }
    }

    static func concat(_ xs: [Tensor], _ axis: Int, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        for i in 0..<type.elementCount {
            var idx = multiIndex(i, type.shape)
            var k = 0
            while idx[axis] >= xs[k].shape[axis] { idx[axis] -= xs[k].shape[axis]; k += 1 }
            let src = zip(idx, strides(xs[k].shape)).reduce(0) { $0 + $1.0 * $1.1 }
            try out.setElement(xs[k].element(at: src), at: i)
        }
        return out
    }

    static func gatherAxis(_ p: Tensor, _ indices: Tensor, _ axis: Int, _ batchDims: Int, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let ps = strides(p.shape), isStrides = strides(indices.shape)
        let idxRank = indices.rank - batchDims
        for i in 0..<type.elementCount {
            let o = multiIndex(i, type.shape)
            let batch = Array(o.prefix(batchDims))
            let idxPos = batch + Array(o[axis..<(axis + idxRank)])
            let k = Int(indices.element(at: zip(idxPos, isStrides).reduce(0) { $0 + $1.0 * $1.1 }).asDouble)
            guard k >= 0 && k < p.shape[axis] else { continue }
            let src = Array(o.prefix(axis)) + [k] + Array(o.dropFirst(axis + idxRank))
            try out.setElement(p.element(at: zip(src, ps).reduce(0) { $0 + $1.0 * $1.1 }), at: i)
        }
        return out
    }

    static func argReduce(_ a: ArgReduceOp, _ axis: Int, _ x: Tensor, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let xs = strides(x.shape)
        for i in 0..<type.elementCount {
            var idx = multiIndex(i, type.shape)
            idx.insert(0, at: axis)
            let base = zip(idx, xs).reduce(0) { $0 + $1.0 * $1.1 }
            var best = x.element(at: base), bestK = 0
            for k in 1..<x.shape[axis] {
                let v = x.element(at: base + k * xs[axis])
                if compare(a == .argmax ? .gt : .lt, v, best) { best = v; bestK = k }
            }
            try out.setElement(.i(Int64(bestK)), at: i)
        }
        return out
    }

    static func reduceWindow(_ r: ReduceOp, _ window: [Int], _ strideBy: [Int], _ lo: [Int], _ x: Tensor, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let xs = strides(x.shape)
        let windowCount = window.reduce(1, *)
        for i in 0..<type.elementCount {
            let o = multiIndex(i, type.shape)
            var acc: ScalarValue? = nil
            for w in 0..<windowCount {
                let wi = multiIndex(w, window)
                var src = 0, inside = true
                for d in 0..<x.rank {
                    let k = o[d] * strideBy[d] + wi[d] - lo[d]
                    if k < 0 || k >= x.shape[d] { inside = false; break }
                    src += k * xs[d]
                }
                guard inside else { continue }
                let v = x.element(at: src)
                guard let a = acc else { acc = v; continue }
                let op = r.combiner
                acc = binary(op, a, v, x.dtype)
            }
            try out.setElement(acc ?? .f(0), at: i)
        }
        return out
    }

    static func patches(_ x: Tensor, _ window: [Int], _ strideBy: [Int], _ dil: [Int], _ lo: [Int], _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
        for i in 0..<type.elementCount {
            let o = multiIndex(i, type.shape)
            let (kh, rest) = (o[3] / (window[1] * c), o[3] % (window[1] * c))
            let (kw, ci) = (rest / c, rest % c)
            let y = o[1] * strideBy[0] + kh * dil[0] - lo[0], xx = o[2] * strideBy[1] + kw * dil[1] - lo[1]
            guard y >= 0 && y < h && xx >= 0 && xx < w else { continue }
            try out.setElement(x.element(at: ((o[0] * h + y) * w + xx) * c + ci), at: i)
        }
        return out
    }

    static func unpatches(_ p: Tensor, _ window: [Int], _ strideBy: [Int], _ dil: [Int], _ lo: [Int], _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let (h, w, c) = (type.shape[1], type.shape[2], type.shape[3])
        let (oh, ow, k) = (p.shape[1], p.shape[2], p.shape[3])
        var acc = [ScalarValue?](repeating: nil, count: type.elementCount)
        for i in 0..<p.elementCount {
            let o = multiIndex(i, p.shape)
            let (kh, rest) = (o[3] / (window[1] * c), o[3] % (window[1] * c))
            let (kw, ci) = (rest / c, rest % c)
            let y = o[1] * strideBy[0] + kh * dil[0] - lo[0], xx = o[2] * strideBy[1] + kw * dil[1] - lo[1]
            guard y >= 0 && y < h && xx >= 0 && xx < w else { continue }
            let dst = ((o[0] * h + y) * w + xx) * c + ci
            let v = p.element(at: i)
            acc[dst] = acc[dst].map { binary(.add, $0, v, p.dtype) } ?? v
        }
        _ = (oh, ow, k)
        for (i, v) in acc.enumerated() { if let v { try out.setElement(v, at: i) } }
        return out
    }

    // MARK: random numbers

    /// SplitMix64's finaliser: a bijective 64-bit mixer with full avalanche.
    @inline(__always) public static func mix64(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 64 random bits for element `i` of run `counter`, draw `k` (truncated normal redraws).
    @inline(__always) public static func randomBits(seed: UInt64, counter: Int64, count: Int, index: Int, draw: Int = 0) -> UInt64 {
        let key = mix64(seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(draw &+ 1))
        let ctr = UInt64(bitPattern: counter) &* UInt64(count) &+ UInt64(index)
        return mix64(key ^ mix64(ctr &* 0x9E37_79B9_7F4A_7C15))
    }

    /// Box-Muller on the two halves of one 64-bit draw.
    public static func normal(_ bits: UInt64) -> Double {
        let u1 = Double((bits >> 40) + 1) * 0x1p-24
        let u2 = Double((bits >> 16) & 0xFF_FFFF) * 0x1p-24
        return (-2 * Glibc.log(u1)).squareRoot() * Glibc.cos(2 * Double.pi * u2)
    }

    static func random(_ kind: RandomKind, _ d: DType, _ seed: UInt64, counter: Int64, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: d, shape: type.shape)
        let n = type.elementCount
        for i in 0..<n {
            let bits = randomBits(seed: seed, counter: counter, count: n, index: i)
            switch kind {
            case .bits: try out.setElement(.i(Int64(bitPattern: bits >> 1)), at: i)
            case .uniform:
                try out.setElement(.f(d == .float32 ? Double(bits >> 40) * 0x1p-24 : Double(bits >> 11) * 0x1p-53), at: i)
            case .normal:
                try out.setElement(.f(normal(bits)), at: i)
            case .truncatedNormal:
                var v = normal(bits), k = 1
                while Swift.abs(v) > 2 {
                    v = normal(randomBits(seed: seed, counter: counter, count: n, index: i, draw: k))
                    k += 1
                }
                try out.setElement(.f(v), at: i)
            }
        }
        return out
    }

    // MARK: element semantics

    static func unary(_ u: UnaryOp, _ v: ScalarValue, _ dtype: DType) -> ScalarValue {
        switch v {
        case .f(let d):
            let f32 = dtype == .float32 || dtype.isHalf  // half ops compute in float32
            func r(_ x: Double) -> ScalarValue { .f(f32 ? Double(Float(x)) : x) }
            switch u {
            case .neg: return .f(-d)
            case .abs: return .f(Swift.abs(d))
            case .exp: return r(Glibc.exp(d))
            case .log: return r(Glibc.log(d))
            case .log1p: return r(Glibc.log1p(d))
            case .sqrt: return r(d.squareRoot())
            case .rsqrt: return r(1 / d.squareRoot())
            case .tanh: return r(Glibc.tanh(d))
            case .sigmoid: return r(1 / (1 + Glibc.exp(-d)))
            case .floor: return .f(d.rounded(.down))
            case .ceil: return .f(d.rounded(.up))
            case .round: return .f(d.rounded(.toNearestOrEven))
            case .sign: return .f(d.isNaN ? d : d > 0 ? 1 : d < 0 ? -1 : 0)
            case .sin: return r(Glibc.sin(d))
            case .cos: return r(Glibc.cos(d))
            case .erf: return r(Glibc.erf(d))
            case .erfc: return r(Glibc.erfc(d))
            case .not: return v
            }
        case .i(let i):
            switch u {
            case .neg: return .i(wrap(0 &- i, dtype))
            case .abs: return .i(wrap(i < 0 ? 0 &- i : i, dtype))
            case .sign: return .i(i > 0 ? 1 : i < 0 ? -1 : 0)
            default: return v
            }
        case .b(let b):
            return u == .not ? .b(!b) : v
        }
    }

    /// Integer results wrap to the dtype's width, as two's-complement hardware does.
    static func wrap(_ x: Int64, _ t: DType) -> Int64 {
        switch t {
        case .int32: return Int64(Int32(truncatingIfNeeded: x))
        case .uint8: return Int64(UInt8(truncatingIfNeeded: x))
        case .int16: return Int64(Int16(truncatingIfNeeded: x))
        default: return x
        }
    }

    static func binary(_ op: BinaryOp, _ a: ScalarValue, _ b: ScalarValue, _ dtype: DType) -> ScalarValue {
        switch (a, b) {
        case (.f(let x), .f(let y)):
            let f32 = dtype == .float32 || dtype.isHalf  // half ops compute in float32
            func r(_ v: Double) -> ScalarValue { .f(f32 ? Double(Float(v)) : v) }
            switch op {
            case .add: return r(x + y)
            case .sub: return r(x - y)
            case .mul: return r(x * y)
            case .div: return r(x / y)
            case .max: return .f(x.isNaN || x > y ? x : y)
            case .min: return .f(x.isNaN || x < y ? x : y)
            case .pow: return r(Glibc.pow(x, y))
            case .floordiv: return r((f32 ? Double(Float(x / y)) : x / y).rounded(.down))
            case .floormod:
                var m = Glibc.fmod(x, y)
                if m != 0 && (m < 0) != (y < 0) { m += y }
                return r(m)
            case .and, .or: return a
            }
        case (.i(let x), .i(let y)):
            switch op {
            case .add: return .i(wrap(x &+ y, dtype))
            case .sub: return .i(wrap(x &- y, dtype))
            case .mul: return .i(wrap(x &* y, dtype))
            case .div:
                if y == 0 { return .i(0) }
                if y == -1 { return .i(wrap(0 &- x, dtype)) }
                return .i(x / y)
            case .max: return .i(Swift.max(x, y))
            case .min: return .i(Swift.min(x, y))
            case .pow:
                if y < 0 { return .i(x == 1 ? 1 : x == -1 ? (y % 2 == 0 ? 1 : -1) : 0) }
                var result: Int64 = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 { result = result &* base }
                    base = base &* base
                    e >>= 1
                }
                return .i(wrap(result, dtype))
            case .floordiv:
                if y == 0 { return .i(0) }
                if y == -1 { return .i(wrap(0 &- x, dtype)) }
                let q = x / y
                return .i((x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q)
            case .floormod:
                if y == 0 || y == -1 { return .i(0) }
                let m = x % y
                return .i(m != 0 && (m < 0) != (y < 0) ? m + y : m)
            case .and, .or: return a
            }
        case (.b(let x), .b(let y)):
            switch op {
            case .and, .min: return .b(x && y)
            case .or, .max: return .b(x || y)
            default: return a
            }
        default:
            return a
        }
    }

    static func compare(_ c: CompareOp, _ a: ScalarValue, _ b: ScalarValue) -> Bool {
        switch (a, b) {
        case (.i(let x), .i(let y)):
            switch c {
            case .eq: return x == y
            case .ne: return x != y
            case .lt: return x < y
            case .le: return x <= y
            case .gt: return x > y
            case .ge: return x >= y
            }
        default:
            let (x, y) = (a.asDouble, b.asDouble)
            switch c {
            case .eq: return x == y
            case .ne: return x != y
            case .lt: return x < y
            case .le: return x <= y
            case .gt: return x > y
            case .ge: return x >= y
            }
        }
    }

    // MARK: structure

    static func map(_ type: TensorType, _ x: [Tensor], _ f: ([ScalarValue]) -> ScalarValue) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        for i in 0..<type.elementCount { try out.setElement(f(x.map { $0.element(at: i) }), at: i) }
        return out
    }

    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) { s[i] = s[i + 1] * shape[i + 1] }
        return s
    }

    static func multiIndex(_ linear: Int, _ shape: [Int]) -> [Int] {
        var idx = [Int](repeating: 0, count: shape.count)
        var r = linear
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            idx[d] = r % shape[d]
            r /= shape[d]
        }
        return idx
    }

    /// out[i] = x[source(i)] for an index map.
    static func gather(_ type: TensorType, _ x: Tensor, _ source: ([Int]) -> [Int]) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let xs = strides(x.shape)
        for i in 0..<type.elementCount {
            let src = zip(source(multiIndex(i, type.shape)), xs).reduce(0) { $0 + $1.0 * $1.1 }
            try out.setElement(x.element(at: src), at: i)
        }
        return out
    }

    /// Each output's reduced elements, visited in row-major order of the reduced axes. Floating-
    /// point sums are exact enough for any length: they add in Double (every float32 is exact in
    /// it) as a pairwise tree over blocks of `pairwiseBlock` elements and round once, so 2^26
    /// float32 copies of 1.5 sum to exactly 100,663,296 (a float32 running sum stops at 2^25).
    /// Integer sums wrap, which is the same in any order; products, max and min combine in order
    /// with the dtype's own rounding, as compiled code does.
    static func reduce(_ r: ReduceOp, _ axes: [Int], _ x: Tensor, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let xs = strides(x.shape)
        let reducedAxes = axes.sorted(), keptAxes = (0..<x.rank).filter { !axes.contains($0) }
        let rShape = reducedAxes.map { x.shape[$0] }, rStrides = reducedAxes.map { xs[$0] }
        let kShape = keptAxes.map { x.shape[$0] }, kStrides = keptAxes.map { xs[$0] }
        let count = rShape.reduce(1, *)
        /// Calls `body` with the offset in `x` of reduced elements lo..<hi of the output at `base`,
        /// stepping an odometer over the reduced axes instead of dividing per element.
        func walk(_ base: Int, _ lo: Int, _ hi: Int, _ body: (Int) -> Void) {
            guard lo < hi else { return }
            var digits = multiIndex(lo, rShape)
            var off = base + zip(digits, rStrides).reduce(0) { $0 + $1.0 * $1.1 }
            for _ in lo..<hi {
                body(off)
                var d = rShape.count - 1
                while d >= 0 {
                    digits[d] += 1
                    off += rStrides[d]
                    if digits[d] < rShape[d] { break }
                    off -= rStrides[d] * rShape[d]
                    digits[d] = 0
                    d -= 1
                }
            }
        }
        // Reduced axes that are the trailing ones are contiguous: no odometer needed.
        let contiguous = reducedAxes == Array((x.rank - reducedAxes.count)..<x.rank)
        func pairwise(_ base: Int, _ lo: Int, _ hi: Int) -> Double {
            if hi - lo <= pairwiseBlock {
                var s = 0.0
                if contiguous {
                    for k in (base + lo)..<(base + hi) { s += x.double(at: k) }
                } else {
                    walk(base, lo, hi) { s += x.double(at: $0) }
                }
                return s
            }
            let mid = lo + (hi - lo) / 2
            return pairwise(base, lo, mid) + pairwise(base, mid, hi)
        }
        let identity = reduceIdentity(r, x.dtype)
        for o in 0..<type.elementCount {
            let base = zip(multiIndex(o, kShape), kStrides).reduce(0) { $0 + $1.0 * $1.1 }
            let value: ScalarValue
            switch (r, x.dtype) {
            case (.sum, .float32): value = .f(Double(Float(pairwise(base, 0, count))))
            case (.sum, .float64): value = .f(pairwise(base, 0, count))
            case (.sum, .int32), (.sum, .int64), (.sum, .int16), (.sum, .uint8):
                var s: Int64 = 0
                walk(base, 0, count) { if case .i(let v) = x.element(at: $0) { s &+= v } }
                value = .i(wrap(s, x.dtype))
            default:
                var acc = identity
                walk(base, 0, count) { acc = binary(r.combiner, acc, x.element(at: $0), x.dtype) }
                value = acc
            }
            try out.setElement(value, at: o)
        }
        return out
    }

    /// Elements summed in one run before pairwise combination (numpy's choice too: long enough to
    /// be cheap, short enough that a run's own rounding is far below float32's).
    static let pairwiseBlock = 128

    static func reduceIdentity(_ r: ReduceOp, _ d: DType) -> ScalarValue {
        switch r {
        case .sum: return d.isFloatingPoint ? .f(0) : .i(0)
        case .prod: return d.isFloatingPoint ? .f(1) : .i(1)
        case .max: return d == .bool ? .b(false) : d.isFloatingPoint ? .f(-.infinity) : .i(d == .uint8 ? 0 : d == .int16 ? Int64(Int16.min) : d == .int32 ? Int64(Int32.min) : Int64.min)
        case .min: return d == .bool ? .b(true) : d.isFloatingPoint ? .f(.infinity) : .i(d == .uint8 ? 255 : d == .int16 ? Int64(Int16.max) : d == .int32 ? Int64(Int32.max) : Int64.max)
        }
    }

    static func dot(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool, _ type: TensorType) throws -> Tensor {
        var out = try Tensor(zeros: type.dtype, shape: type.shape)
        let r = a.rank
        let (m, n) = (type.shape[r - 2], type.shape[r - 1])
        let k = ta ? a.shape[r - 2] : a.shape[r - 1]
        let batch = type.shape.dropLast(2).reduce(1, *)
        let (aRows, aCols) = (a.shape[r - 2], a.shape[r - 1])
        let (bRows, bCols) = (b.shape[r - 2], b.shape[r - 1])
        for bi in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var acc: ScalarValue = a.dtype.isFloatingPoint ? .f(0) : .i(0)
                    for p in 0..<k {
                        let av = a.element(at: bi * aRows * aCols + (ta ? p * aCols + i : i * aCols + p))
                        let bv = b.element(at: bi * bRows * bCols + (tb ? j * bCols + p : p * bCols + j))
                        // Accumulate in double for floats: BLAS accumulates in higher effective
                        // precision than a naive float loop, and tests compare with a tolerance.
                        switch (acc, av, bv) {
                        case (.f(let s), .f(let x), .f(let y)): acc = .f(s + x * y)
                        default: acc = binary(.add, acc, binary(.mul, av, bv, a.dtype), a.dtype)
                        }
                    }
                    try out.setElement(acc, at: bi * m * n + i * n + j)
                }
            }
        }
        return out
    }
}
