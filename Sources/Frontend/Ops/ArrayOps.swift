import KilnIR

public enum ArrayOps {
    /// Placeholder's (and PlaceholderWithDefault's) declared shape: unknown unless given.
    public static let shape = Attr<Shape>("shape", default: .unknown)

    static let defs: [OpDef] = [
        OpDef("Const", arity: .exactly(0), infer: { ctx in
            guard let t = ctx.attrs["value"]?.tensor else { throw ctx.error("Const needs a 'value' tensor") }
            if let d = ctx.attrs["dtype"]?.type, d != t.dtype {
                throw ctx.error("Type mismatch between value (\(t.dtype.name)) and dtype (\(d.name))")
            }
            return [(t.dtype, Shape(t.shape))]
        }, lower: { ctx in [.value(ctx.builder.constant(ctx.attrs["value"]!.tensor!))] }).notDifferentiable(),

        OpDef("Placeholder", arity: .exactly(0), infer: { ctx in
            guard let d = ctx.attrs["dtype"]?.type else { throw ctx.error("Placeholder needs a dtype") }
            return [(d, ctx.attrs[shape])]
        }, lower: { ctx in
            let o = ctx.op.output(0)
            throw KilnError.invalidArgument("You must feed a value for placeholder tensor '\(ctx.op.name)' with dtype \(o.dtype) and shape \(o.shape)")
        }).declaring(shape).notDifferentiable(),

        OpDef("PlaceholderWithDefault", arity: .exactly(1), infer: { ctx in
            let declared = ctx.attrs[shape]
            guard declared.isCompatible(with: ctx.shape(0)) else {
                throw ctx.error("default value of shape \(ctx.shape(0)) does not match the declared shape \(declared)")
            }
            return [(ctx.dtype(0), declared)]
        }, lower: { ctx in [ctx.forward(0)] }).declaring(shape).gradient(ArrayGradients.placeholderWithDefault),

        OpDef("Identity", arity: .exactly(1), infer: { ctx in [(ctx.dtype(0), ctx.shape(0))] },
              lower: { ctx in [ctx.forward(0)] }).gradient(MathGradients.identity),

        OpDef("Reshape", arity: .exactly(2), infer: { ctx in
            guard let target = ctx.constantValue(1) else { return [(ctx.dtype(0), .unknown)] }
            let dims = ShapeFunctions.ints(target)
            if dims.filter({ $0 == -1 }).count > 1 { throw ctx.error("can only infer one unknown dimension in shape \(dims)") }
            if dims.contains(where: { $0 < -1 }) { throw ctx.error("invalid target dimension in shape \(dims)") }
            guard let n = ctx.shape(0).elementCount else {
                return [(ctx.dtype(0), Shape(dims: dims.map { $0 == -1 ? nil : $0 }))]
            }
            return [(ctx.dtype(0), Shape(try resolveReshape(n, dims, ctx.error)))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let dims = try resolveReshape(ctx.type(x).elementCount, ShapeFunctions.ints(try ctx.constant(1)), ctx.error)
            return [.value(try ctx.builder.emit(.reshape(shape: dims), [x]))]
        }).integerInputs([IntegerInput(index: 1, attr: "Tshape", form: .vector)]).gradient(ArrayGradients.reshape),
    ]

    /// Fills in a -1 and checks the element count. (Public: the session reshapes host values too.)
    public static func resolveReshape(_ n: Int, _ dims: [Int], _ error: (String) -> KilnError) throws -> [Int] {
        guard dims.allSatisfy({ $0 >= -1 }) else { throw error("Size \(dims.firstIndex { $0 < -1 }!) must be non-negative, not \(dims.first { $0 < -1 }!)") }
        guard let known = Sizes.product(dims.filter { $0 != -1 }) else {
            throw error("Input to reshape is a tensor with \(n) values, but the requested shape \(dims) has more elements than can be addressed")
        }
        if let k = dims.firstIndex(of: -1) {
            guard known > 0, n % known == 0 else {
                throw error("Input to reshape is a tensor with \(n) values, but the requested shape \(dims) is not a multiple of \(known)")
            }
            var out = dims
            out[k] = n / known
            return out
        }
        guard known == n else {
            throw error("Input to reshape is a tensor with \(n) values, but the requested shape has \(known)")
        }
        return dims
    }
}

extension Graph {
    /// A constant from a Swift value: a scalar or nested arrays. With `shape`, a single value is
    /// repeated to fill it (TensorFlow's `constant(0., shape=[3, 3])`); otherwise the element
    /// count must match.
    public func constant<L: TensorLiteral>(_ value: L, dtype: DType? = nil, shape: [Int]? = nil, name: String = "Const") throws -> Output {
        var t = try Tensor(literal: value, dtype: dtype ?? L.Scalar.dtype)
        if let shape {
            let n = try Tensor.checkedCount(shape, t.dtype)
            // TensorFlow's limit: a constant is one protobuf message.
            if n * t.dtype.byteSize > Int(Int32.max) {
                throw KilnError.invalidArgument("constant '\(name)' of shape \(shape): Cannot create a tensor proto whose content is larger than 2GB.")
            }
            if t.elementCount == 1 && n != 1 {
                let v = t.element(at: 0)
                t = try Tensor(zeros: t.dtype, shape: shape)
                for i in 0..<n { try t.setElement(v, at: i) }
            } else if t.elementCount == n {
                t = try t.reshaped(to: shape)
            } else {
                throw KilnError.invalidArgument("constant '\(name)': \(t.elementCount) values cannot fill shape \(shape)")
            }
        }
        return try constant(t, name: name)
    }

    public func constant(_ t: Tensor, name: String = "Const") throws -> Output {
        try addOperation("Const", name: name, attrs: ["value": .tensor(t), "dtype": .type(t.dtype)]).output()
    }

    /// A value fed at run time. Dimensions given as nil (and the whole shape, by default) are unknown.
    public func placeholder(_ dtype: DType, shape: Shape = ArrayOps.shape.defaultValue, name: String = "Placeholder") throws -> Output {
        try addOperation("Placeholder", name: name, attrs: ["dtype": .type(dtype), "shape": .shape(shape)]).output()
    }

    public func placeholderWithDefault(_ value: some OutputConvertible, shape: Shape, name: String = "PlaceholderWithDefault") throws -> Output {
        try addOperation("PlaceholderWithDefault", name: name, inputs: [value.output],
                         attrs: ["dtype": .type(value.output.dtype), "shape": .shape(shape)]).output()
    }

    public func identity(_ x: some OutputConvertible, name: String = "Identity") throws -> Output {
        try addOperation("Identity", name: name, inputs: [x.output], attrs: ["T": .type(x.output.dtype)]).output()
    }

    /// Reshape to `shape`; one dimension may be -1 and is inferred.
    public func reshape(_ x: some OutputConvertible, _ shape: [Int], name: String = "Reshape") throws -> Output {
        let opName = uniqueName(name)
        let t = try Tensor(shape: [shape.count], scalars: try Graph.narrow(shape, name: opName + "/shape"))
        let s = try addOperation("Const", name: opName + "/shape", attrs: ["value": .tensor(t), "dtype": .type(.int32)], nameIsFinal: true)
        return try addOperation("Reshape", name: opName, inputs: [x.output, s.output()],
                                attrs: ["T": .type(x.output.dtype), "Tshape": .type(.int32)], nameIsFinal: true).output()
    }
}
