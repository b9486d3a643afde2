import KilnIR

/// Freezing for ahead-of-time compilation: every variable parameter's reads become constants of
/// the given values, and the variable parameters leave the function, so its parameters are
/// exactly its feeds (TensorFlow's freeze_graph, on the IR).
public enum VariableFreezing {
    /// `f` with each `var.read` of variable parameter p replaced by `values[p]` (which must have
    /// p's type). Value ids in the body stay as they are: they are all at least the old parameter
    /// count, so they cannot collide with the remaining (renumbered) feed parameters.
    /// Throws if `f` writes a variable, or a variable parameter has no value.
    public static func freeze(_ f: Function, values: [Int: Tensor]) throws -> Function {
        var remap: [Int: Int] = [:]
        var params: [Param] = []
        for (i, p) in f.params.enumerated() {
            switch p.kind {
            case .feed:
                remap[i] = params.count
                params.append(p)
            case .variable:
                guard let t = values[i] else { throw KilnError.invalidArgument("variable '\(p.name)' has no value to freeze") }
                guard t.dtype == p.type.dtype, t.shape == p.type.shape else {
                    throw KilnError.invalidArgument("variable '\(p.name)' is \(p.type), its frozen value is \(TensorType(t.dtype, t.shape))")
                }
            }
        }
        if let minBody = f.body.map(\.id).min(), minBody < f.params.count {
            throw KilnError.internalError("@\(f.name): instruction %\(minBody) has a parameter's id")
        }
        var out = Function(name: f.name, params: params)
        let id = { (v: Int) -> Int in f.isParam(v) ? remap[v]! : v }
        for inst in f.body {
            switch inst.op {
            case .varRead:
                out.body.append(Instruction(id: inst.id, op: .constant(values[inst.operands[0]]!), operands: [], type: inst.type))
            case .varWrite:
                throw KilnError.invalidArgument("a frozen function cannot write variable '\(f.params[inst.operands[0]].name)'")
            default:
                out.body.append(Instruction(id: inst.id, op: inst.op, operands: inst.operands.map(id), type: inst.type))
            }
        }
        out.results = f.results.map(id)
        return out
    }
}
