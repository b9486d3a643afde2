import KilnIR

enum StateOps {
    static let defs: [OpDef] = [
        OpDef("VariableV2", arity: .exactly(0), attrs: ["container": .string(""), "shared_name": .string("")],
              refOutputs: [0], stateful: true, infer: { ctx in
            guard let d = ctx.attrs["dtype"]?.type, let s = ctx.attrs["shape"]?.shape else { throw ctx.error("VariableV2 needs dtype and shape") }
            return [(d, s)]
        }, lower: { _ in throw KilnError.internalError("variables are parameters, not lowered ops") }),

        assign("Assign", nil),
        assign("AssignAdd", .add),
        assign("AssignSub", .sub),
    ]

    /// Assign and its read-modify-write relatives. The output refers to the variable, so
    /// consumers see the value after the write.
    static func assign(_ name: String, _ update: BinaryOp?) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: ["use_locking": .bool(update == nil), "validate_shape": .bool(true)],
              refInputs: [0], refOutputs: [0], stateful: true, infer: { ctx in
            guard ctx.inputs[0].isRef else { throw ctx.error("input 0 of \(name) must be a variable, got '\(ctx.inputs[0].name)'") }
            _ = try ctx.sameDType()
            guard ctx.shape(0).isCompatible(with: ctx.shape(1)) else {
                throw ctx.error("Shapes must be equal: variable \(ctx.shape(0)) and value \(ctx.shape(1))")
            }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let p = try ctx.variable(0)
            var v = try ctx.value(1)
            if let update {
                let old = try ctx.builder.emit(.varRead, [p])
                v = try ctx.builder.emit(.binary(update), [old, v])
            }
            guard ctx.type(v) == ctx.type(p) else {
                throw ctx.error("cannot assign a value of type \(ctx.type(v)) to variable '\(ctx.op.inputs[0].op.name)' of type \(ctx.type(p))")
            }
            try ctx.builder.emit(.varWrite, [p, v])
            return [.variable(param: p)]
        })
    }
}
