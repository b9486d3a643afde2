import KilnIR

/// Ops of TensorFlow's input pipelines besides the queues: the epoch counter that limits an input
/// producer to `num_epochs` passes (answered by the session from its variable store).
public enum InputOps {
    /// CountUpTo's limit.
    public static let limit = Attr<Int>("limit", default: 0)

    static let defs: [OpDef] = [
        // Returns the variable's value and adds one to it; at `limit` it fails with outOfRange
        // ("Reached limit of N"), which ends the producer's queue runner.
        OpDef("CountUpTo", arity: .exactly(1), refInputs: [0], stateful: true, infer: { ctx in
            guard ctx.inputs[0].isRef else { throw ctx.error("input 0 of CountUpTo must be a variable, got '\(ctx.inputs[0].name)'") }
            guard ctx.dtype(0) == .int32 || ctx.dtype(0) == .int64 else { throw ctx.error("CountUpTo counts int32 or int64 variables, got \(ctx.dtype(0).name)") }
            guard ctx.shape(0).isCompatible(with: Shape([])) else { throw ctx.error("CountUpTo needs a scalar variable, got shape \(ctx.shape(0))") }
            return [(ctx.dtype(0), Shape([]))]
        }).declaring(limit).answeredBySession(.variableStore).notDifferentiable(),
    ]
}
