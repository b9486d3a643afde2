import KilnIR

/// Elementwise ops: unary math, broadcasting binary math, comparisons, logic, select and cast.
public enum ElementwiseOps {
    enum Types { case float, numeric, bool, any }

    static func allowed(_ d: DType, _ t: Types) -> Bool {
        switch t {
        case .float: return d.isFloatingPoint
        case .numeric: return d.isNumeric
        case .bool: return d == .bool
        case .any: return d != .string
        }
    }

    /// tf.nn.leaky_relu's slope for negative inputs (LeakyReluGrad shares it).
    public enum LeakyRelu { public static let alpha = Attr<Double>("alpha", default: 0.2) }

    typealias UnaryLowering = @Sendable (inout LoweringContext, Int) throws -> Int
    typealias BinaryLowering = @Sendable (inout LoweringContext, Int, Int) throws -> Int

    static func unary(_ name: String, _ types: Types, attrs: [String: AttrValue] = [:], _ lower: @escaping UnaryLowering) -> OpDef {
        OpDef(name, arity: .exactly(1), attrs: attrs, infer: { ctx in
            guard allowed(ctx.dtype(0), types) else { throw ctx.error("\(name) does not support dtype \(ctx.dtype(0))") }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            return [.value(try lower(&ctx, x))]
        })
    }

    static func simple(_ name: String, _ op: UnaryOp, _ types: Types = .float) -> OpDef {
        unary(name, types) { ctx, x in try ctx.unary(op, x) }
    }

    static func binary(_ name: String, _ types: Types, result: DType? = nil, _ lower: @escaping BinaryLowering) -> OpDef {
        OpDef(name, arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            guard allowed(d, types) else { throw ctx.error("\(name) does not support dtype \(d)") }
            return [(result ?? d, try ShapeFunctions.broadcast(ctx.shape(0), ctx.shape(1), ctx))]
        }, lower: { ctx in
            let (x, y) = (try ctx.value(0), try ctx.value(1))
            return [.value(try lower(&ctx, x, y))]
        })
    }

    static func arithmetic(_ name: String, _ op: BinaryOp, _ types: Types = .numeric) -> OpDef {
        binary(name, types) { ctx, x, y in try ctx.binary(op, x, y) }
    }

    /// Integer division and modulo fail on a zero divisor, as TensorFlow's kernels do.
    static func division(_ name: String, _ op: BinaryOp) -> OpDef {
        binary(name, .numeric) { ctx, x, y in try ctx.binary(op, x, ctx.divisor(y)) }
    }

    static func comparison(_ name: String, _ op: CompareOp, _ types: Types = .numeric) -> OpDef {
        binary(name, types, result: .bool) { ctx, x, y in try ctx.compare(op, x, y) }
    }

    static let defs: [OpDef] = [
        simple("Neg", .neg, .numeric).gradient(MathGradients.neg), simple("Abs", .abs, .numeric).gradient(MathGradients.abs),
        simple("Sign", .sign, .numeric).notDifferentiable(),
        simple("Exp", .exp).gradient(MathGradients.exp), simple("Log", .log).gradient(MathGradients.log),
        simple("Log1p", .log1p).gradient(MathGradients.log1p), simple("Sqrt", .sqrt).gradient(MathGradients.sqrt),
        simple("Rsqrt", .rsqrt).gradient(MathGradients.rsqrt),
        simple("Tanh", .tanh).gradient(MathGradients.tanh), simple("Sigmoid", .sigmoid).gradient(MathGradients.sigmoid),
        simple("Floor", .floor).notDifferentiable(), simple("Ceil", .ceil).notDifferentiable(),
        simple("Round", .round).notDifferentiable(), simple("Sin", .sin).gradient(MathGradients.sin),
        simple("Cos", .cos).gradient(MathGradients.cos), simple("Erf", .erf).gradient(MathGradients.erf),
        simple("Erfc", .erfc).gradient(MathGradients.erfc),
        simple("LogicalNot", .not, .bool).notDifferentiable(),
        unary("Square", .numeric) { ctx, x in try ctx.binary(.mul, x, x) }.gradient(MathGradients.square),
        unary("Reciprocal", .numeric) { ctx, x in try ctx.binary(.div, ctx.scalar(1, ctx.type(x).dtype), ctx.divisor(x)) }
            .gradient(MathGradients.reciprocal),
        unary("Inv", .numeric) { ctx, x in try ctx.binary(.div, ctx.scalar(1, ctx.type(x).dtype), ctx.divisor(x)) }
            .gradient(MathGradients.reciprocal),
        unary("Relu", .numeric) { ctx, x in try ctx.binary(.max, x, scalar: 0) }.gradient(MathGradients.relu),
        unary("Relu6", .numeric) { ctx, x in try ctx.binary(.min, ctx.binary(.max, x, scalar: 0), scalar: 6) }.gradient(MathGradients.relu6),
        unary("LeakyRelu", .float) { ctx, x in
            let alpha = ctx.attrs[LeakyRelu.alpha]
            let positive = try ctx.compare(.gt, x, ctx.scalar(0, ctx.type(x).dtype))
            return try ctx.select(positive, x, ctx.binary(.mul, x, scalar: alpha))
        }.declaring(LeakyRelu.alpha).gradient(MathGradients.leakyRelu),
        unary("Elu", .float) { ctx, x in
            let positive = try ctx.compare(.gt, x, ctx.scalar(0, ctx.type(x).dtype))
            return try ctx.select(positive, x, ctx.binary(.sub, ctx.unary(.exp, x), scalar: 1))
        }.gradient(MathGradients.elu),
        // max(x, 0) + log1p(exp(-|x|)) never overflows.
        unary("Softplus", .float) { ctx, x in
            let tail = try ctx.unary(.log1p, ctx.unary(.exp, ctx.unary(.neg, ctx.unary(.abs, x))))
            return try ctx.binary(.add, ctx.binary(.max, x, scalar: 0), tail)
        }.gradient(MathGradients.softplus),
        // x / (1 + |x|).
        unary("Softsign", .float) { ctx, x in try ctx.binary(.div, x, ctx.binary(.add, ctx.unary(.abs, x), scalar: 1)) }
            .gradient(NNGradients.softsign),

        arithmetic("AddV2", .add).gradient(MathGradients.addV2), arithmetic("Add", .add).gradient(MathGradients.addV2),
        arithmetic("Sub", .sub).gradient(MathGradients.sub), arithmetic("Mul", .mul).gradient(MathGradients.mul),
        arithmetic("RealDiv", .div, .float).gradient(MathGradients.realDiv),
        division("Div", .div).gradient(MathGradients.realDiv), division("FloorDiv", .floordiv).notDifferentiable(),
        division("FloorMod", .floormod).gradient(MathGradients.floorMod),
        arithmetic("Maximum", .max).gradient(MathGradients.maximum), arithmetic("Minimum", .min).gradient(MathGradients.minimum),
        arithmetic("Pow", .pow).gradient(MathGradients.pow), arithmetic("LogicalAnd", .and, .bool).notDifferentiable(),
        arithmetic("LogicalOr", .or, .bool).notDifferentiable(),
        binary("SquaredDifference", .numeric) { ctx, x, y in
            let d = try ctx.binary(.sub, x, y)
            return try ctx.binary(.mul, d, d)
        }.gradient(MathGradients.squaredDifference),

        comparison("Equal", .eq, .any).notDifferentiable(), comparison("NotEqual", .ne, .any).notDifferentiable(),
        comparison("Less", .lt).notDifferentiable(),
        comparison("LessEqual", .le).notDifferentiable(), comparison("Greater", .gt).notDifferentiable(),
        comparison("GreaterEqual", .ge).notDifferentiable(),

        // TensorFlow 1's Select: a vector condition picks whole rows of x and y.
        OpDef("Select", arity: .exactly(3), infer: { ctx in
            guard ctx.dtype(0) == .bool else { throw ctx.error("condition must be bool, got \(ctx.dtype(0))") }
            let d = try ctx.sameDType([1, 2])
            guard let shape = ctx.shape(1).merged(with: ctx.shape(2)) else { throw ctx.error("x and y must have the same shape") }
            if let cr = ctx.shape(0).rank, let r = shape.rank, cr != r, cr != 1 {
                throw ctx.error("condition must be a vector or have the shape of x")
            }
            return [(d, shape)]
        }, lower: { ctx in
            var c = try ctx.value(0)
            let (x, y) = (try ctx.value(1), try ctx.value(2))
            let shape = ctx.type(x).shape
            if ctx.type(c).shape != shape {
                guard ctx.type(c).rank == 1, ctx.type(c).shape[0] == shape.first else {
                    throw ctx.error("condition of shape \(ctx.type(c).shape) does not fit values of shape \(shape)")
                }
                c = try ctx.emit(.broadcast(shape: shape, dims: [0]), [c])
            }
            return [.value(try ctx.emit(.select, [c, x, y]))]
        }).gradient(MathGradients.select),
        OpDef("SelectV2", arity: .exactly(3), infer: { ctx in
            guard ctx.dtype(0) == .bool else { throw ctx.error("condition must be bool, got \(ctx.dtype(0))") }
            let d = try ctx.sameDType([1, 2])
            let s = try ShapeFunctions.broadcast(ShapeFunctions.broadcast(ctx.shape(0), ctx.shape(1), ctx), ctx.shape(2), ctx)
            return [(d, s)]
        }, lower: { ctx in
            [.value(try ctx.select(try ctx.value(0), try ctx.value(1), try ctx.value(2)))]
        }).gradient(MathGradients.selectV2),
        OpDef("Cast", arity: .exactly(1), attrs: ["Truncate": .bool(false)], infer: { ctx in
            guard let to = ctx.attrs["DstT"]?.type else { throw ctx.error("Cast needs DstT") }
            guard ctx.dtype(0) != .string, to != .string else { throw ctx.error("Cast between \(ctx.dtype(0)) and \(to) is not supported") }
            return [(to, ctx.shape(0))]
        }, lower: { ctx in [.value(try ctx.cast(try ctx.value(0), ctx.attrs["DstT"]!.type!))] }).gradient(MathGradients.cast),
    ]
}
