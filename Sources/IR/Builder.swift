/// Appends instructions to a function, computing each result type as it goes so that a
/// mistake surfaces at the instruction that made it.
public struct FunctionBuilder {
    public private(set) var function: Function
    private var types: [Int: TensorType]
    /// The id the next instruction gets (`Function.nextID` scans the body: quadratic over a build).
    private var nextID = 0

    public init(name: String) {
        function = Function(name: name)
        types = [:]
    }

    public mutating func addParam(_ name: String, kind: Param.Kind, type: TensorType) -> Int {
        precondition(function.body.isEmpty, "parameters come before instructions")
        let id = function.params.count
        function.params.append(Param(name: name, kind: kind, type: type))
        types[id] = type
        nextID = id + 1
        return id
    }

    public func type(of id: Int) -> TensorType {
        guard let t = types[id] else { preconditionFailure("value %\(id) has no type") }
        return t
    }

    @discardableResult
    public mutating func emit(_ op: Op, _ operands: [Int]) throws -> Int {
        let id = nextID
        let ty = try op.resultType(operands: operands.map { type(of: $0) })
        if let ty, ty.checkedByteCount == nil {
            throw KilnError.invalidArgument("\(op.mnemonic): the result \(Sizes.describe(ty.shape, ty.dtype)) is too large to address")
        }
        function.body.append(Instruction(id: id, op: op, operands: operands, type: ty))
        if let ty { types[id] = ty }
        nextID = id + 1
        return id
    }

    public mutating func constant(_ t: Tensor) -> Int { try! emit(.constant(t), []) }

    /// A scalar constant of any numeric dtype.
    public mutating func scalar(_ v: Double, _ dtype: DType) -> Int {
        // A string "scalar" (ZerosLike of a string tensor) becomes "", which every primitive but
        // the data movers refuses with an error naming the op.
        constant((try? Tensor(literal: v, dtype: dtype)) ?? Tensor(""))
    }

    /// Broadcast `x` to `shape` with numpy's rule (trailing dimensions aligned).
    public mutating func broadcast(_ x: Int, to shape: [Int]) throws -> Int {
        let t = type(of: x)
        if t.shape == shape { return x }
        guard t.rank <= shape.count else {
            throw KilnError.invalidArgument("cannot broadcast \(t) to \(shape)")
        }
        let offset = shape.count - t.rank
        return try emit(.broadcast(shape: shape, dims: (0..<t.rank).map { $0 + offset }), [x])
    }

    public mutating func setResults(_ r: [Int]) { function.results = r }
}
