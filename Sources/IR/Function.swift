/// The type of an IR value: an element type and a fully known shape. IR functions are always
/// specialised to concrete shapes; unknown dimensions live only in the frontend's `Shape`.
public struct TensorType: Hashable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(_ dtype: DType, _ shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    public var rank: Int { shape.count }
    /// Saturates at Int.max instead of trapping; the builder refuses values that large, so an IR
    /// value's count is always exact.
    public var elementCount: Int { Sizes.product(shape) ?? Int.max }
    public var byteCount: Int { Sizes.bytes(elementCount, dtype) ?? Int.max }
    /// The byte count, or nil when the shape's size does not fit in an Int.
    public var checkedByteCount: Int? { Sizes.product(shape).flatMap { Sizes.bytes($0, dtype) } }
    /// `f32[2,3]`, `i32[]`.
    public var description: String { "\(dtype.rawValue)[\(shape.map(String.init).joined(separator: ","))]" }
}

public enum UnaryOp: String, CaseIterable, Hashable, Sendable {
    case neg, abs, exp, log, log1p, sqrt, rsqrt, tanh, sigmoid, floor, ceil, round, sign, sin, cos
    /// The error function and its complement 1 - erf(x).
    case erf, erfc
    case not

    /// Whether an element costs many instructions (a call or a long polynomial): the planner
    /// computes such a value once instead of recomputing it in each consumer. Exhaustive, so a
    /// new op decides here.
    public var isCostly: Bool {
        switch self {
        case .exp, .log, .log1p, .tanh, .sigmoid, .sin, .cos, .sqrt, .rsqrt, .erf, .erfc: return true
        case .neg, .abs, .floor, .ceil, .round, .sign, .not: return false
        }
    }
}

public enum BinaryOp: String, CaseIterable, Hashable, Sendable {
    case add, sub, mul, div, max, min, pow
    /// TensorFlow's floordiv and floormod: rounded toward negative infinity.
    case floordiv, floormod
    case and, or
}

public enum CompareOp: String, CaseIterable, Hashable, Sendable {
    case eq, ne, lt, le, gt, ge
}

public enum ReduceOp: String, CaseIterable, Hashable, Sendable {
    case sum, prod, max, min

    /// The binary op that folds two partial results into one.
    public var combiner: BinaryOp {
        switch self {
        case .sum: return .add
        case .prod: return .mul
        case .max: return .max
        case .min: return .min
        }
    }
}

public enum ArgReduceOp: String, CaseIterable, Hashable, Sendable {
    case argmax, argmin
}

public enum PadMode: String, CaseIterable, Hashable, Sendable {
    /// Operand 1 (a scalar) fills the border.
    case constant
    /// Mirror without repeating the edge: [1,2,3] pads to [3,2,1,2,3,2,1].
    case reflect
    /// Mirror repeating the edge: [1,2,3] pads to [2,1,1,2,3,3,2].
    case symmetric
}

/// Distributions of the counter-based random primitive. Every element is a pure function of
/// (seed, run counter, element index), so runs are reproducible across processes.
public enum RandomKind: String, CaseIterable, Hashable, Sendable {
    /// Floats uniform in [0, 1).
    case uniform
    /// Standard normal floats (Box-Muller).
    case normal
    /// Standard normal floats, redrawn until within 2 standard deviations.
    case truncatedNormal = "truncated_normal"
    /// int64 uniform in [0, 2^63).
    case bits
}

/// The primitives codegen understands. Every graph op lowers to these.
public enum Op: Hashable, Sendable {
    case constant(Tensor)
    case unary(UnaryOp)
    case binary(BinaryOp)
    case compare(CompareOp)
    /// select(cond, a, b): all the same shape.
    case select
    case cast(DType)
    /// Operand dimension i becomes result dimension `dims[i]`; the rest are replicated.
    case broadcast(shape: [Int], dims: [Int])
    case reshape(shape: [Int])
    case transpose(perm: [Int])
    /// Reduces over `axes` (sorted, unique); the result drops those dimensions.
    case reduce(ReduceOp, axes: [Int])
    /// Matrix product over the last two dimensions; leading (batch) dimensions must match.
    case dot(transposeA: Bool, transposeB: Bool)
    /// Element i along `axis` of `shape` has value i.
    case iota(dtype: DType, shape: [Int], axis: Int)
    /// out[i] = x[start + i * stride] per dimension; `shape` is the result's (strides may be negative).
    case slice(start: [Int], strides: [Int], shape: [Int])
    /// Pads each dimension by low/high elements; operand 1 is the scalar border value.
    case pad(low: [Int], high: [Int], mode: PadMode)
    /// Joins the operands along `axis`.
    case concat(axis: Int)
    /// out = params indexed along `axis` by the integer `indices` operand (TensorFlow's GatherV2);
    /// an index out of range gives 0 (lowering puts a `check` on the indices, so the run fails).
    case gather(axis: Int, batchDims: Int)
    /// Index of the largest/smallest element along `axis` (first on ties), as `outType`.
    case argReduce(ArgReduceOp, axis: Int, outType: DType)
    /// A reduction over a sliding window (pooling): window and strides per dimension, with padding
    /// whose elements are skipped.
    case reduceWindow(ReduceOp, window: [Int], strides: [Int], padLow: [Int], padHigh: [Int])
    /// Image patches of an NHWC tensor: result [N, OH, OW, KH*KW*C] with zeros outside the image,
    /// so a convolution is one matrix product.
    case patches(window: [Int], strides: [Int], dilations: [Int], padLow: [Int], padHigh: [Int])
    /// The adjoint of `patches`: sums each patch element back onto the image position it came
    /// from, giving [N, H, W, C] for `image` = [H, W] (col2im; convolution and pooling gradients).
    case unpatches(window: [Int], strides: [Int], dilations: [Int], padLow: [Int], padHigh: [Int], image: [Int])
    /// Counter-based random numbers; operand 0 is the run counter (an i64 scalar).
    case random(RandomKind, dtype: DType, shape: [Int], seed: UInt64)
    /// Reads the variable parameter that is the only operand.
    case varRead
    /// Writes operand 1 into the variable parameter operand 0. Produces no value.
    case varWrite
    /// The integer operand unchanged; an element that fails the check is a run-time fault: the
    /// run throws the check's invalidArgument error naming the graph node (see `Check`).
    case check(Check)

    /// The mnemonic of the textual form.
    public var mnemonic: String {
        switch self {
        case .constant: return "constant"
        case .unary(let u): return u.rawValue
        case .binary(let b): return b.rawValue
        case .compare(let c): return c.rawValue
        case .select: return "select"
        case .cast: return "cast"
        case .broadcast: return "broadcast"
        case .reshape: return "reshape"
        case .transpose: return "transpose"
        case .reduce(let r, _): return "reduce.\(r.rawValue)"
        case .dot: return "dot"
        case .iota: return "iota"
        case .slice: return "slice"
        case .pad(_, _, let m): return "pad.\(m.rawValue)"
        case .concat: return "concat"
        case .gather: return "gather"
        case .argReduce(let a, _, _): return a.rawValue
        case .reduceWindow(let r, _, _, _, _): return "reduce_window.\(r.rawValue)"
        case .patches: return "patches"
        case .unpatches: return "unpatches"
        case .random(let k, _, _, _): return "random.\(k.rawValue)"
        case .varRead: return "var.read"
        case .varWrite: return "var.write"
        case .check(let c): return "check.\(c.kind.name)"
        }
    }

    public var producesValue: Bool { self != .varWrite }
    public var isReshape: Bool { if case .reshape = self { return true } else { return false } }
    /// Ops that touch state; passes must keep them and their relative order.
    public var hasSideEffects: Bool { self == .varWrite }
    public var isElementwise: Bool {
        switch self {
        case .unary, .binary, .compare, .select, .cast, .random, .check: return true
        default: return false
        }
    }
}

/// A run-time condition TensorFlow's kernel would report: on an integer tensor, indices within
/// bounds, segment ids below the segment count, divisors not zero, ranges not empty; on a
/// floating-point one, no NaN or infinity (CheckNumerics). It carries the graph node it
/// came from and TensorFlow's message, so every evaluator (the reference evaluator while folding,
/// compiled code through its fault record) raises the same error.
public struct Check: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// 0 <= x < bound. One bound for all elements, or one per position of the last
        /// dimension (GatherNd's index components).
        case index(bounds: [Int])
        /// x < bound; negative values pass (TensorFlow drops negative segment ids).
        case below(Int)
        /// x != 0 (integer division).
        case nonzero
        /// x > 0 (a range that must not be empty: RandomUniformInt's maxval - minval).
        case positive
        /// A floating-point x is neither NaN nor infinite (CheckNumerics). The value a check
        /// reports is then the kinds found, `Check.nanBit | Check.infBit`, over the whole tensor.
        case finite

        public var name: String {
            switch self {
            case .index: return "index"
            case .below: return "below"
            case .nonzero: return "nonzero"
            case .positive: return "positive"
            case .finite: return "finite"
            }
        }

        /// Whether `x` at last-dimension position `last` passes.
        public func passes(_ x: Int64, last: Int) -> Bool {
            switch self {
            case .index(let bounds): return x >= 0 && x < Int64(bounds.count == 1 ? bounds[0] : bounds[last])
            case .below(let n): return x < Int64(n)
            case .nonzero: return x != 0
            case .positive: return x > 0
            case .finite: return x == 0
            }
        }
    }

    public var kind: Kind
    /// The graph node and its op type, named in the error.
    public var node: String
    public var opType: String
    /// TensorFlow's message; `{index}` becomes the offending element's position (`[1,2]`, empty
    /// for a scalar), `{value}` its value and `{kinds}` (a `.finite` check) what was found:
    /// "NaN", "Inf" or "Inf and NaN", as CheckNumerics words it.
    public var message: String

    public init(_ kind: Kind, node: String, opType: String, message: String) {
        self.kind = kind
        self.node = node
        self.opType = opType
        self.message = message
    }

    /// Bits of a `.finite` check's value: the tensor holds a NaN, an infinity.
    public static let nanBit: Int64 = 1, infBit: Int64 = 2

    /// CheckNumerics' words for the kinds in `mask` (check_numerics_op.cc).
    public static func kinds(_ mask: Int64) -> String {
        switch (mask & infBit != 0, mask & nanBit != 0) {
        case (true, true): return "Inf and NaN"
        case (true, false): return "Inf"
        default: return "NaN"
        }
    }

    /// The `.finite` kind bits of one element.
    public static func nonFiniteKinds(_ x: Double) -> Int64 { x.isNaN ? nanBit : x.isInfinite ? infBit : 0 }

    /// The error for element `position` (row-major in `shape`) holding `value`.
    public func error(position: Int, value: Int64, shape: [Int]) -> KilnError {
        var multi = [Int](repeating: 0, count: shape.count), linear = position
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            multi[d] = linear % shape[d]
            linear /= shape[d]
        }
        let index = shape.isEmpty ? "" : "[" + multi.map(String.init).joined(separator: ",") + "]"
        var text = ""
        var rest = Substring(message)
        while let open = rest.firstIndex(of: "{") {
            text += rest[..<open]
            rest = rest[open...]
            if rest.hasPrefix("{index}") { text += index; rest = rest.dropFirst(7) }
            else if rest.hasPrefix("{value}") { text += String(value); rest = rest.dropFirst(7) }
            else if rest.hasPrefix("{kinds}") { text += Check.kinds(value); rest = rest.dropFirst(7) }
            else { text += "{"; rest = rest.dropFirst() }
        }
        text += rest
        return KilnError.invalidArgument("\(text) for '\(node)' (op: '\(opType)')")
    }
}

public struct Param: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        /// A tensor fed by the caller.
        case feed
        /// A variable's storage, read and written in place.
        case variable = "var"
    }

    public var name: String
    public var kind: Kind
    public var type: TensorType

    public init(name: String, kind: Kind, type: TensorType) {
        self.name = name
        self.kind = kind
        self.type = type
    }
}

/// One SSA instruction. `id` is the value it defines (also for ops without a value, so every
/// instruction has a unique handle); `type` is nil until shape inference fills it and for ops
/// that produce no value.
public struct Instruction: Hashable, Sendable {
    public var id: Int
    public var op: Op
    public var operands: [Int]
    public var type: TensorType?

    public init(id: Int, op: Op, operands: [Int], type: TensorType?) {
        self.id = id
        self.op = op
        self.operands = operands
        self.type = type
    }
}

/// A whole executable's computation: parameters (feeds and variables), a body in execution order,
/// and the values it returns. Value ids 0..<params.count name the parameters.
public struct Function: Hashable, Sendable {
    public var name: String
    public var params: [Param]
    public var body: [Instruction]
    public var results: [Int]

    public init(name: String, params: [Param] = [], body: [Instruction] = [], results: [Int] = []) {
        self.name = name
        self.params = params
        self.body = body
        self.results = results
    }

    public var nextID: Int { max(params.count, (body.map(\.id).max() ?? -1) + 1) }

    /// Type of every value the function defines.
    public func typeTable() -> [Int: TensorType] {
        var t: [Int: TensorType] = [:]
        for (i, p) in params.enumerated() { t[i] = p.type }
        for inst in body { if let ty = inst.type { t[inst.id] = ty } }
        return t
    }

    public func isParam(_ id: Int) -> Bool { id >= 0 && id < params.count }

    /// How many times each value is used as an operand or result.
    public func useCounts() -> [Int: Int] {
        var c: [Int: Int] = [:]
        for inst in body { for o in inst.operands { c[o, default: 0] += 1 } }
        for r in results { c[r, default: 0] += 1 }
        return c
    }
}
