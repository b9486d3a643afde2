import KilnIR

/// Building blocks for op lowerings: numpy broadcasting, scalars, reductions with keepdims.
extension LoweringContext {
    @discardableResult
    public func emit(_ op: Op, _ operands: [Int]) throws -> Int { try builder.emit(op, operands) }

    public func scalar(_ v: Double, _ d: DType) -> Int { builder.scalar(v, d) }

    public func full(_ v: Double, _ d: DType, _ shape: [Int]) throws -> Int {
        try builder.broadcast(builder.scalar(v, d), to: shape)
    }

    public func broadcast(_ x: Int, to shape: [Int]) throws -> Int { try builder.broadcast(x, to: shape) }

    /// Broadcasts all of `xs` to their common numpy shape.
    public func broadcastTogether(_ xs: [Int]) throws -> [Int] {
        var shape: [Int] = []
        for x in xs {
            guard let s = ShapeFunctions.broadcast(shape, type(x).shape) else {
                throw error("Incompatible shapes: \(xs.map { type($0).shape })")
            }
            shape = s
        }
        return try xs.map { try broadcast($0, to: shape) }
    }

    public func unary(_ op: UnaryOp, _ x: Int) throws -> Int { try emit(.unary(op), [x]) }

    /// `x` checked at run time for this op: a failure is TensorFlow's `message` (`{index}` and
    /// `{value}` name the offending element) as an invalidArgument error naming this node.
    public func check(_ x: Int, _ kind: Check.Kind, _ message: String) throws -> Int {
        try emit(.check(Check(kind, node: op.name, opType: op.type, message: message)), [x])
    }

    /// The divisor of an integer division, checked for zero (floating-point division by zero is
    /// IEEE's infinity or NaN, as in TensorFlow).
    public func divisor(_ y: Int) throws -> Int {
        type(y).dtype.isFloatingPoint ? y : try check(y, .nonzero, "Integer division by zero")
    }

    public func binary(_ op: BinaryOp, _ x: Int, _ y: Int) throws -> Int {
        let b = try broadcastTogether([x, y])
        return try emit(.binary(op), b)
    }

    public func compare(_ op: CompareOp, _ x: Int, _ y: Int) throws -> Int {
        let b = try broadcastTogether([x, y])
        return try emit(.compare(op), b)
    }

    /// `x op scalar` with the scalar in x's dtype.
    public func binary(_ op: BinaryOp, _ x: Int, scalar v: Double) throws -> Int {
        try binary(op, x, scalar(v, type(x).dtype))
    }

    public func select(_ c: Int, _ x: Int, _ y: Int) throws -> Int {
        let b = try broadcastTogether([c, x, y])
        return try emit(.select, b)
    }

    public func cast(_ x: Int, _ d: DType) throws -> Int {
        type(x).dtype == d ? x : try emit(.cast(d), [x])
    }

    public func reshape(_ x: Int, _ shape: [Int]) throws -> Int {
        type(x).shape == shape ? x : try emit(.reshape(shape: shape), [x])
    }

    /// A reduction that keeps reduced axes as size 1 when asked.
    public func reduce(_ r: ReduceOp, _ x: Int, axes: [Int], keepDims: Bool) throws -> Int {
        let shape = type(x).shape
        let sorted = Array(Set(axes)).sorted()
        let out = try emit(.reduce(r, axes: sorted), [x])
        guard keepDims else { return out }
        return try reshape(out, shape.enumerated().map { sorted.contains($0.offset) ? 1 : $0.element })
    }

    public func mean(_ x: Int, axes: [Int], keepDims: Bool) throws -> Int {
        let t = type(x)
        let n = Set(axes).map { t.shape[$0] }.reduce(1, *)
        let s = try reduce(.sum, x, axes: axes, keepDims: keepDims)
        return try binary(.div, s, scalar: Double(n))
    }

    /// Input `i` as integers (axes, shapes, sizes).
    public func ints(_ i: Int) throws -> [Int] { ShapeFunctions.ints(try constant(i)) }

    /// An axis that may be negative, as a position in 0..<rank. A scalar has no axis to name.
    public func axis(_ a: Int, rank: Int) throws -> Int {
        guard a >= -rank && a < rank else { throw error("axis \(a) is out of range [-\(rank), \(rank)) for rank \(rank)") }
        return a < 0 ? a + rank : a
    }
}

extension InferenceContext {
    /// Input `i` as integers when it is a constant.
    public func ints(_ i: Int) -> [Int]? { constantValue(i).map(ShapeFunctions.ints) }

    /// What a shape-valued input says statically (TensorFlow's constant_value_as_shape): the
    /// shape itself when constant, the partial shape of x for `Shape(x)`, else as many unknown
    /// dimensions as the vector's known length.
    public func shapeValue(_ i: Int) -> Shape {
        if let v = ints(i) { return Shape(dims: v.map { $0 < 0 ? nil : $0 }) }
        let o = inputs[i]
        if o.op.type == "Shape" { return o.op.inputs[0].shape }
        if let n = o.shape.dims?.first ?? nil { return Shape(dims: Array(repeating: nil, count: n)) }
        return .unknown
    }

    public func normalizedAxis(_ a: Int, rank: Int) throws -> Int {
        guard a >= -rank && a < rank else { throw error("axis \(a) is out of range [-\(rank), \(rank)) for rank \(rank)") }
        return a < 0 ? a + rank : a
    }
}
