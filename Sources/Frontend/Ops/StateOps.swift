import KilnIR

enum StateOps {
    static let defs: [OpDef] = [
        variable("VariableV2", attrs: ["container": .string(""), "shared_name": .string("")]).notDifferentiable(),

        assign("Assign", nil).notDifferentiable(),
        assign("AssignAdd", .add).notDifferentiable(),
        assign("AssignSub", .sub).notDifferentiable(),

        // TensorFlow 2's resource variables, mapped onto the same machinery: the handle is the
        // variable (a ref with the variable's dtype and shape, not a DT_RESOURCE scalar), reads
        // are explicit, and writes have no outputs. This is what lets TensorFlow 2-era .meta
        // files import and run.
        variable("VarHandleOp", attrs: ["container": .string(""), "shared_name": .string(""), "allowed_devices": .strings([])]),

        OpDef("ReadVariableOp", arity: .exactly(1), refInputs: [0], infer: { ctx in
            try checkHandle(ctx)
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            // A read at this point of the program: later writes do not change the value.
            [.value(try ctx.value(0))]
        }).gradient { ctx in [try ctx.grad()] },

        assignVariable("AssignVariableOp", nil),
        assignVariable("AssignAddVariableOp", .add),
        assignVariable("AssignSubVariableOp", .sub),
    ]

    /// A variable op: a parameter of every executable that uses it, its value kept by the session.
    static func variable(_ name: String, attrs: [String: AttrValue]) -> OpDef {
        OpDef(name, arity: .exactly(0), attrs: attrs, refOutputs: [0], variable: true, infer: { ctx in
            guard let d = ctx.attrs["dtype"]?.type, let s = ctx.attrs["shape"]?.shape else { throw ctx.error("\(name) needs dtype and shape") }
            return [(d, s)]
        }, lower: { _ in throw KilnError.internalError("variables are parameters, not lowered ops") }).notDifferentiable()
    }

    /// Input 0 must be a variable, and an explicit `dtype` attribute must be its dtype.
    static func checkHandle(_ ctx: InferenceContext) throws {
        guard ctx.inputs[0].isRef else { throw ctx.error("input 0 of \(ctx.opType) must be a variable, got '\(ctx.inputs[0].name)'") }
        if let d = ctx.attrs["dtype"]?.type, d != ctx.dtype(0) {
            throw ctx.error("dtype \(d) does not match variable '\(ctx.inputs[0].op.name)' of dtype \(ctx.dtype(0))")
        }
    }

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
            let p = try write(&ctx, update)
            return [.variable(param: p)]
        })
    }

    /// The resource-variable writes: like Assign, with no output (reads are separate ops).
    static func assignVariable(_ name: String, _ update: BinaryOp?) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: update == nil ? ["validate_shape": .bool(false)] : [:],
              refInputs: [0], stateful: true, infer: { ctx in
            try checkHandle(ctx)
            _ = try ctx.sameDType()
            guard ctx.shape(0).isCompatible(with: ctx.shape(1)) else {
                throw ctx.error("Shapes must be equal: variable \(ctx.shape(0)) and value \(ctx.shape(1))")
            }
            return []
        }, lower: { ctx in
            _ = try write(&ctx, update)
            return []
        }).notDifferentiable()
    }

    /// Writes input 1 (combined with the old value by `update`) to the variable of input 0.
    private static func write(_ ctx: inout LoweringContext, _ update: BinaryOp?) throws -> Int {
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
        return p
    }
}
