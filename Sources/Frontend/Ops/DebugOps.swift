import KilnIR

/// TensorFlow's CheckNumerics: passes its input through, failing the run when it holds a NaN or
/// an infinity. It lowers to a `.finite` check, so every backend evaluates it where its value is
/// computed, inside a fused kernel too.
enum DebugOps {
    static let defs: [OpDef] = [
        OpDef("CheckNumerics", arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0).isFloatingPoint else {
                throw ctx.error("CheckNumerics checks floating-point tensors, got \(ctx.dtype(0).name)")
            }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            // check_numerics_op.cc: "<message> : Tensor had NaN values" (or Inf, or Inf and NaN).
            let message = ctx.attrs[GradientOps.message]
            return [.value(try ctx.check(try ctx.value(0), .finite, "\(message) : Tensor had {kinds} values"))]
        }).declaring(GradientOps.message).gradient { ctx in
            // array_grad.py's _CheckNumericsGrad: the incoming gradient is checked too.
            let message = ctx.attrs[GradientOps.message]
            return [try ctx.graph.checkNumerics(try ctx.grad(),
                                                message: "Not a number (NaN) or infinity (Inf) values detected in gradient. \(message)")]
        },
    ]
}

extension Graph {
    /// `x`, failing the run with "<message> : Tensor had NaN values" (or Inf values, or Inf and
    /// NaN values) when it holds any (tf.debugging.check_numerics).
    public func checkNumerics(_ x: some OutputConvertible, message: String, name: String = "CheckNumerics") throws -> Output {
        try addOperation("CheckNumerics", name: name, inputs: [x.output],
                         attrs: ["T": .type(x.output.dtype), "message": .string(message)]).output()
    }

    /// tf.add_check_numerics_ops: a CheckNumerics on every floating-point output of the graph
    /// (variables' refs excepted, as TensorFlow's `float32_ref` is not a float type), with the
    /// message "<op name>:<index>", grouped into one op to run as a target.
    public func addCheckNumericsOps(name: String = "CheckNumericsGroup") throws -> Operation {
        var checks: [Operation] = []
        for op in operations where op.type != "CheckNumerics" {
            for o in op.outputs where o.dtype.isFloatingPoint && !o.isRef {
                let c = try nameScope(op.name + "/") {
                    try checkNumerics(o, message: "\(op.name):\(o.index)", name: "CheckNumerics_\(o.index)")
                }
                checks.append(c.op)
            }
        }
        return try group(checks, name: name)
    }
}
