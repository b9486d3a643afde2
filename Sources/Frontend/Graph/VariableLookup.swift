import KilnIR

extension Output {
    /// The variable op (VariableV2, VarHandleOp) whose value this tensor is: the variable's own
    /// output, or one reached back through reads (`v/read`, ReadVariableOp), identities and
    /// writes that return the variable (Assign). Nil for any other tensor. Savers use this to
    /// find the variables behind a SaveV2 node's inputs.
    public var underlyingVariable: Operation? {
        var o = self
        // Bounded by the graph's size: every step moves to an earlier op.
        while true {
            let def = OpRegistry.def(o.op.type)
            if def?.isVariable == true { return o.op }
            let forwards = o.op.type == "Identity" || o.op.type == "ReadVariableOp" || (def?.refInputs.contains(0) == true && def?.refOutputs.contains(o.index) == true)
            guard forwards, let input = o.op.inputs.first else { return nil }
            o = input
        }
    }
}
