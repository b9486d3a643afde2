import KilnIR
import KilnFrontend

/// The ops a session computes on the host instead of compiling: ops with a `hostKernel`
/// (data-dependent output shapes), questions about the session's variable store, checkpoint
/// I/O, and the string plumbing around it (compiled code has no strings).
extension Session {
    /// The outputs of `op` if the session computes it on the host, nil if it is compiled.
    /// `feeds` holds the tensors already known (fed, or computed on the host earlier in graph order).
    func hostOutputs(of op: KilnFrontend.Operation, feeds: [Output: Tensor]) throws -> [Tensor]? {
        // Called for every op of every run: most ops are compiled, and this says so quickly.
        let hostKernel = OpRegistry.def(op.type)?.hostKernel
        guard hostKernel != nil || op.outputSpecs.first?.dtype == .string || Session.answeredOps.contains(op.type)
                || QueueOps.types.contains(op.type) || ReaderOps.types.contains(op.type) else { return nil }
        switch op.type {
        case _ where QueueOps.types.contains(op.type):
            return try queueOutputs(of: op, feeds: feeds)
        case _ where ReaderOps.types.contains(op.type):
            return try readerOutputs(of: op, feeds: feeds)
        case "ReportUninitializedVariables":
            let initialized = Set(variables.keys.map(\.name))
            let missing = (op.attrs["var_names"]?.stringList ?? []).filter { !initialized.contains($0) }
            return [try Tensor(shape: [missing.count], strings: missing.map { Array($0.utf8) })]
        case "VarIsInitializedOp", "IsVariableInitialized":
            guard let variable = op.inputs[0].underlyingVariable else {
                throw KilnError.invalidArgument("input 0 of '\(op.name)' (op: \(op.type)) must be a variable, got '\(op.inputs[0].name)'")
            }
            return [Tensor(variables[variable] != nil)]
        case "KilnInitializedValue":
            // Uninitialised: nil, so it compiles to the initial value it takes as input.
            guard let name = op.attrs["variable"]?.string, let variable = graph.operation(named: name) else {
                throw KilnError.invalidArgument("'\(op.name)' (op: \(op.type)) names no variable of this graph ('\(op.attrs["variable"]?.string ?? "")')")
            }
            try syncToHost(variable)
            return variables[variable].map { [$0] }
        case "SaveV2":
            try CheckpointKernels.save(try hostInputs(of: op, feeds: feeds), node: op)
            return []
        case "RestoreV2":
            return try CheckpointKernels.restore(try hostInputs(of: op, feeds: feeds), node: op)
        case "Const":
            guard let value = op.attrs["value"]?.tensor, value.dtype == .string else { return nil }
            return [value]
        case "Identity", "PlaceholderWithDefault":
            // A string passed along (the Saver's filename and save/control_dependency).
            guard op.output().dtype == .string, let value = feeds[op.inputs[0]] else { return nil }
            return [value]
        default:
            guard let hostKernel else { return nil }
            return try hostKernel(try hostInputs(of: op, feeds: feeds), op.attrs)
        }
    }

    /// Ops with no kernel or lowering of their own: the session answers them itself.
    static let answeredOps: Set<String> = ["ReportUninitializedVariables", "VarIsInitializedOp", "IsVariableInitialized", "SaveV2", "RestoreV2", "KilnInitializedValue"]
    /// Answered on the host only in some runs (KilnInitializedValue once its variable has a
    /// value): a run signature containing one is never marked free of host ops.
    static let sometimesAnsweredOps: Set<String> = ["KilnInitializedValue"]

    /// The input values of a host op: fed ones directly, the rest computed by a run of their own.
    func hostInputs(of op: KilnFrontend.Operation, feeds: [Output: Tensor]) throws -> [Tensor] {
        // Const inputs (a parse op's defaults and keys) are read from the graph: a host op whose
        // other inputs are fed then needs no compiled run at all.
        var known = feeds
        for i in op.inputs where known[i] == nil && i.op.type == "Const" {
            if let v = i.op.attrs["value"]?.tensor { known[i] = v }
        }
        return try runLocked(op.inputs, feeds: known, targets: [])
    }
}
