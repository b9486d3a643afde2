import KilnIR

/// The inputs that TensorFlow's op definitions type as integers (shapes, axes, permutations,
/// paddings, multiples, sizes: attrs such as `Tshape`, `Tidx`, `Tpaddings`) and the form their
/// value must have. TensorFlow refuses a float there when the node is made ("Value for attr
/// 'Tshape' of float is not in the list of allowed values: int32, int64"); so does Kiln, in
/// `Graph.addOperation` (which API calls and GraphDef import share) and again where lowering
/// reads a value folded at compile time, so no shape or axis is ever taken from a float, a string
/// or a tensor of the wrong rank.
struct IntegerInput: Sendable {
    /// What the value must look like.
    enum Form: Sendable {
        /// A scalar (an axis, a depth, a segment count).
        case scalar
        /// A scalar or a one-element vector (ExpandDims' dim).
        case single
        /// A vector (a shape, a permutation, multiples, begin/size).
        case vector
        /// A scalar or a vector (reduction axes).
        case scalarOrVector
        /// An [n, 2] matrix (paddings).
        case pairs
        /// Any shape (segment ids).
        case any
    }

    /// Input position; negative counts from the end (ConcatV2's axis is its last input).
    let index: Int
    /// The TensorFlow attr that types this input, named in errors.
    let attr: String
    let form: Form
    /// The dtypes TensorFlow allows there.
    var allowed: [DType] = [.int32, .int64]

    /// Inputs several families share.
    static let paddings = [IntegerInput(index: 1, attr: "Tpaddings", form: .pairs)]
    static let reductionAxes = [IntegerInput(index: 1, attr: "Tidx", form: .scalarOrVector)]
    static let argAxis = [IntegerInput(index: 1, attr: "Tidx", form: .scalar)]
    static let shape = [IntegerInput(index: 0, attr: "T", form: .vector)]

    /// The entry for input `i` of an op with `count` inputs, if that input must be an integer
    /// (each op's entry lists its own: `OpDef.integerInputs`).
    static func entry(_ opType: String, input i: Int, of count: Int) -> IntegerInput? {
        OpRegistry.def(opType)?.integerInputs.first { ($0.index < 0 ? count + $0.index : $0.index) == i }
    }

    /// Checks a value's dtype and static shape against the entry; `explicitType` is the attr's
    /// value when the node states it (GraphDef nodes do), which must agree with the input.
    func check(dtype: DType, shape: Shape, explicitType: DType?, input: String, node: String, op: String) throws {
        guard allowed.contains(dtype) else {
            throw KilnError.invalidArgument("Value for attr '\(attr)' of \(dtype.name) is not in the list of allowed values: \(allowed.map(\.name).joined(separator: ", ")) (input '\(input)' of '\(node)' (op: '\(op)'))")
        }
        if let explicitType, explicitType != dtype {
            throw KilnError.invalidArgument("Input '\(input)' of '\(node)' (op: '\(op)') is \(dtype.name), incompatible with its attr '\(attr)' = \(explicitType.name)")
        }
        guard let dims = shape.dims else { return }
        let fits: Bool
        switch form {
        case .scalar: fits = dims.isEmpty
        case .single: fits = dims.isEmpty || (dims.count == 1 && (dims[0] ?? 1) == 1)
        case .vector: fits = dims.count == 1
        case .scalarOrVector: fits = dims.count <= 1
        case .any: fits = true
        case .pairs: fits = dims.count == 2 && (dims[1] ?? 2) == 2
        }
        guard fits else {
            let want: String
            switch form {
            case .scalar: want = "a scalar"
            case .single: want = "a scalar or a vector of one element"
            case .vector: want = "a vector (rank 1)"
            case .scalarOrVector: want = "a scalar or a vector (rank at most 1)"
            case .any: want = "a tensor"
            case .pairs: want = "a [n, 2] matrix"
            }
            throw KilnError.invalidArgument("'\(input)' (\(attr)) of '\(node)' (op: '\(op)') must be \(want), got shape \(shape)")
        }
    }
}
