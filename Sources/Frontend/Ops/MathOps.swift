import KilnIR

enum MathOps {
    static let defs: [OpDef] = [
        binary("AddV2", .add), binary("Add", .add), binary("Sub", .sub), binary("Mul", .mul),
        binary("RealDiv", .div, floatOnly: true), binary("Div", .div),
        binary("Maximum", .max), binary("Minimum", .min),
        unary("Neg", .neg, numeric: true), unary("Exp", .exp), unary("Log", .log), unary("Tanh", .tanh),
        unary("Sigmoid", .sigmoid),
        OpDef("Relu", arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0).isNumeric else { throw ctx.error("Relu needs a numeric input, got \(ctx.dtype(0))") }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let t = ctx.type(x)
            let zero = try ctx.builder.broadcast(ctx.builder.scalar(0, t.dtype), to: t.shape)
            return [.value(try ctx.builder.emit(.binary(.max), [x, zero]))]
        }),
        matmul,
        reduction("Sum", .sum), reduction("Max", .max), reduction("Min", .min), reduction("Prod", .prod),
        reduction("Mean", .sum, mean: true),
    ]

    static func binary(_ name: String, _ op: BinaryOp, floatOnly: Bool = false) -> OpDef {
        OpDef(name, arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            if floatOnly ? !d.isFloatingPoint : !d.isNumeric {
                throw ctx.error("\(name) does not support dtype \(d)")
            }
            return [(d, try ShapeFunctions.broadcast(ctx.shape(0), ctx.shape(1), ctx))]
        }, lower: { ctx in
            let (x, y) = (try ctx.value(0), try ctx.value(1))
            guard let shape = ShapeFunctions.broadcast(ctx.type(x).shape, ctx.type(y).shape) else {
                throw ctx.error("Incompatible shapes: \(ctx.type(x).shape) vs. \(ctx.type(y).shape)")
            }
            let bx = try ctx.builder.broadcast(x, to: shape), by = try ctx.builder.broadcast(y, to: shape)
            return [.value(try ctx.builder.emit(.binary(op), [bx, by]))]
        })
    }

    static func unary(_ name: String, _ op: UnaryOp, numeric: Bool = false) -> OpDef {
        OpDef(name, arity: .exactly(1), infer: { ctx in
            let d = ctx.dtype(0)
            if numeric ? !d.isNumeric : !d.isFloatingPoint { throw ctx.error("\(name) does not support dtype \(d)") }
            return [(d, ctx.shape(0))]
        }, lower: { ctx in [.value(try ctx.builder.emit(.unary(op), [try ctx.value(0)]))] })
    }

    static let matmul = OpDef("MatMul", arity: .exactly(2), attrs: ["transpose_a": .bool(false), "transpose_b": .bool(false)], infer: { ctx in
        let d = try ctx.sameDType()
        guard d.isNumeric && d != .bool else { throw ctx.error("MatMul does not support dtype \(d)") }
        let ta = ctx.attrs["transpose_a"]?.bool ?? false, tb = ctx.attrs["transpose_b"]?.bool ?? false
        for i in 0..<2 {
            if let r = ctx.shape(i).rank, r != 2 { throw ctx.error("Shape must be rank 2 but is rank \(r)") }
        }
        let a = ctx.shape(0).dims ?? [nil, nil], b = ctx.shape(1).dims ?? [nil, nil]
        let (m, ka) = ta ? (a[1], a[0]) : (a[0], a[1])
        let (kb, n) = tb ? (b[1], b[0]) : (b[0], b[1])
        if let ka, let kb, ka != kb { throw ctx.error("Dimensions must be equal, but are \(ka) and \(kb)") }
        return [(d, Shape(dims: [m, n]))]
    }, lower: { ctx in
        let (a, b) = (try ctx.value(0), try ctx.value(1))
        let op = Op.dot(transposeA: ctx.attrs["transpose_a"]?.bool ?? false, transposeB: ctx.attrs["transpose_b"]?.bool ?? false)
        return [.value(try ctx.builder.emit(op, [a, b]))]
    })

    static func reduction(_ name: String, _ op: ReduceOp, mean: Bool = false) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: ["keep_dims": .bool(false), "Tidx": .type(.int32)], infer: { ctx in
            let d = ctx.dtype(0)
            guard d.isNumeric else { throw ctx.error("\(name) does not support dtype \(d)") }
            let keep = ctx.attrs["keep_dims"]?.bool ?? false
            guard let dims = ctx.shape(0).dims, let axesT = ctx.constantValue(1) else { return [(d, .unknown)] }
            let axes = try ShapeFunctions.axes(axesT, rank: dims.count, ctx.error)
            let out = dims.enumerated().compactMap { k, v -> Int?? in
                axes.contains(k) ? (keep ? .some(1) : nil) : .some(v)
            }
            return [(d, Shape(dims: out))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let t = ctx.type(x)
            let axes = try ShapeFunctions.axes(try ctx.constant(1), rank: t.rank, ctx.error)
            var r = try ctx.builder.emit(.reduce(op, axes: axes), [x])
            if mean {
                let n = axes.map { t.shape[$0] }.reduce(1, *)
                let count = try ctx.builder.broadcast(ctx.builder.scalar(Double(n), t.dtype), to: ctx.type(r).shape)
                r = try ctx.builder.emit(.binary(.div), [r, count])
            }
            if ctx.attrs["keep_dims"]?.bool ?? false {
                let kept = t.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                r = try ctx.builder.emit(.reshape(shape: kept), [r])
            }
            return [.value(r)]
        })
    }
}

extension Graph {
    func binaryOp(_ type: String, _ x: Output, _ y: Output, name: String?) throws -> Output {
        try addOperation(type, name: name ?? type, inputs: [x, y], attrs: ["T": .type(x.dtype)]).output()
    }

    func unaryOp(_ type: String, _ x: Output, name: String?) throws -> Output {
        try addOperation(type, name: name ?? type, inputs: [x], attrs: ["T": .type(x.dtype)]).output()
    }

    public func add(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "add") throws -> Output {
        try binaryOp("AddV2", x.output, y.output, name: name)
    }
    public func subtract(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "sub") throws -> Output {
        try binaryOp("Sub", x.output, y.output, name: name)
    }
    public func multiply(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "mul") throws -> Output {
        try binaryOp("Mul", x.output, y.output, name: name)
    }
    /// Division as TensorFlow's `div`: true division for floats, truncating for integers.
    public func divide(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "div") throws -> Output {
        try binaryOp(x.output.dtype.isFloatingPoint ? "RealDiv" : "Div", x.output, y.output, name: name)
    }
    public func maximum(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Maximum") throws -> Output {
        try binaryOp("Maximum", x.output, y.output, name: name)
    }
    public func minimum(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Minimum") throws -> Output {
        try binaryOp("Minimum", x.output, y.output, name: name)
    }

    public func negative(_ x: some OutputConvertible, name: String = "Neg") throws -> Output { try unaryOp("Neg", x.output, name: name) }
    public func exp(_ x: some OutputConvertible, name: String = "Exp") throws -> Output { try unaryOp("Exp", x.output, name: name) }
    public func log(_ x: some OutputConvertible, name: String = "Log") throws -> Output { try unaryOp("Log", x.output, name: name) }
    public func tanh(_ x: some OutputConvertible, name: String = "Tanh") throws -> Output { try unaryOp("Tanh", x.output, name: name) }
    public func sigmoid(_ x: some OutputConvertible, name: String = "Sigmoid") throws -> Output { try unaryOp("Sigmoid", x.output, name: name) }
    public func relu(_ x: some OutputConvertible, name: String = "Relu") throws -> Output { try unaryOp("Relu", x.output, name: name) }

    public func matmul(_ a: some OutputConvertible, _ b: some OutputConvertible, transposeA: Bool = false, transposeB: Bool = false,
                       name: String = "MatMul") throws -> Output {
        try addOperation("MatMul", name: name, inputs: [a.output, b.output],
                         attrs: ["T": .type(a.output.dtype), "transpose_a": .bool(transposeA), "transpose_b": .bool(transposeB)]).output()
    }

    func reduction(_ type: String, _ x: Output, axes: [Int]?, keepDims: Bool, name: String) throws -> Output {
        let all: [Int]
        if let axes { all = axes } else {
            guard let r = x.shape.rank else {
                throw KilnError.unimplemented("reducing all axes of '\(x.name)' needs its rank, which is unknown")
            }
            all = Array(0..<r)
        }
        let idx = try constant(Tensor(shape: [all.count], scalars: all.map(Int32.init)), name: "Const")
        return try addOperation(type, name: name, inputs: [x, idx],
                                attrs: ["T": .type(x.dtype), "keep_dims": .bool(keepDims), "Tidx": .type(.int32)]).output()
    }

    /// Sum over `axes` (all axes when nil); negative axes count from the end.
    public func reduceSum(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = false, name: String = "Sum") throws -> Output {
        try reduction("Sum", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceMean(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = false, name: String = "Mean") throws -> Output {
        try reduction("Mean", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceMax(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = false, name: String = "Max") throws -> Output {
        try reduction("Max", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceMin(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = false, name: String = "Min") throws -> Output {
        try reduction("Min", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceProd(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = false, name: String = "Prod") throws -> Output {
        try reduction("Prod", x.output, axes: axes, keepDims: keepDims, name: name)
    }
}
