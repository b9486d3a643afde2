import KilnIR

/// Ops whose output shape depends on the input values. Executables have static shapes, so the
/// session computes these on the host between compiled segments.
public enum HostOps {
    /// ReportUninitializedVariables: the variables to report on.
    public static let varNames = Attr<[String]>("var_names", default: [])
    /// KilnInitializedValue: the variable it reads.
    public static let variable = Attr<String>("variable", default: "")

    static let defs: [OpDef] = [
        // Answered by the session from its variable store (see Session), never compiled.
        OpDef("ReportUninitializedVariables", arity: .exactly(0), infer: { ctx in
            [(.string, Shape(dims: [nil]))]
        }).declaring(varNames).answeredBySession(.variableStore).notDifferentiable(),
        // Whether a variable has a value: also answered from the session's variable store.
        // VarIsInitializedOp takes a resource variable (VarHandleOp), IsVariableInitialized a
        // TensorFlow 1 ref variable.
        isInitialized("VarIsInitializedOp"),
        isInitialized("IsVariableInitialized"),
        // TensorFlow's `initialized_value()`, cond(is_variable_initialized(v), v, initial_value),
        // as one op: the session answers it with the variable's value when it has one; otherwise
        // it compiles to its input, the initial value (so in the run that initialises v it agrees
        // with v's own Assign, and v is never assigned by reading it). `variable` names v.
        OpDef("KilnInitializedValue", arity: .exactly(1), infer: { ctx in
            guard case .string(let name)? = ctx.attrs["variable"], !name.isEmpty else { throw ctx.error("KilnInitializedValue needs the 'variable' it reads") }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in [.value(try ctx.value(0))] }).declaring(variable).answeredBySession(.variableStore).notDifferentiable(),

        // Checkpoint I/O of TensorFlow's Saver subgraph. The session runs them with the
        // runtime's checkpoint reader and writer (the frontend does no file I/O): SaveV2 writes
        // `tensors` under `tensor_names` to the bundle `prefix`, RestoreV2 reads them back.
        // Only whole tensors are supported (every shape_and_slices entry is "").
        OpDef("SaveV2", arity: .atLeast(3), attrs: ["dtypes": .types([])], stateful: true, infer: { ctx in
            try checkCheckpointArguments(ctx, count: ctx.inputs.count - 3)
            let given = ctx.inputs.dropFirst(3).map(\.dtype)
            if case .types(let d)? = ctx.attrs["dtypes"], d != given {
                throw ctx.error("attribute dtypes [\(d.map(\.name).joined(separator: ", "))] does not match the tensors' dtypes [\(given.map(\.name).joined(separator: ", "))]")
            }
            return []
        }).answeredBySession(.checkpoint).notDifferentiable(),
        OpDef("RestoreV2", arity: .exactly(3), attrs: ["dtypes": .types([])], stateful: true, infer: { ctx in
            guard case .types(let dtypes)? = ctx.attrs["dtypes"], !dtypes.isEmpty else {
                throw ctx.error("RestoreV2 needs a non-empty 'dtypes' list")
            }
            try checkCheckpointArguments(ctx, count: dtypes.count)
            return dtypes.map { ($0, Shape.unknown) }
        }).answeredBySession(.checkpoint).notDifferentiable(),

        OpDef("Where", arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0) != .string else { throw ctx.error("Where does not support strings") }
            return [(.int64, Shape(dims: [nil, ctx.shape(0).rank]))]
        }, hostKernel: { inputs, _ in
            let x = inputs[0]
            var coords: [Int64] = []
            var idx = [Int](repeating: 0, count: x.rank)
            for i in 0..<x.elementCount {
                var r = i
                for d in stride(from: x.rank - 1, through: 0, by: -1) {
                    idx[d] = r % x.shape[d]
                    r /= x.shape[d]
                }
                if x.element(at: i).asDouble != 0 { coords += idx.map(Int64.init) }
            }
            return [try Tensor(shape: [coords.count / max(x.rank, 1), x.rank], scalars: coords)]
        }).notDifferentiable(),
    ]

    static func isInitialized(_ name: String) -> OpDef {
        OpDef(name, arity: .exactly(1), refInputs: [0], infer: { ctx in
            guard ctx.inputs[0].isRef else { throw ctx.error("input 0 of \(name) must be a variable, got '\(ctx.inputs[0].name)'") }
            return [(.bool, Shape([]))]
        }).answeredBySession(.variableStore).notDifferentiable()
    }

    /// SaveV2/RestoreV2 take a string scalar prefix, then `count` tensor names and as many
    /// shape-and-slice specs, all strings.
    static func checkCheckpointArguments(_ ctx: InferenceContext, count: Int) throws {
        guard (0..<3).allSatisfy({ ctx.dtype($0) == .string }) else {
            throw ctx.error("prefix, tensor_names and shape_and_slices must be strings, got \((0..<3).map { ctx.dtype($0).name }.joined(separator: ", "))")
        }
        guard ctx.shape(0).isCompatible(with: Shape([])) else { throw ctx.error("prefix must be a scalar") }
        for i in 1...2 where !ctx.shape(i).isCompatible(with: Shape([count])) {
            throw ctx.error("input \(i) must be a vector of \(count) strings (one per tensor), got shape \(ctx.shape(i))")
        }
    }
}
