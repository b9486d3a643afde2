import KilnIR

enum ControlOps {
    static let defs: [OpDef] = [
        OpDef("NoOp", arity: .exactly(0), infer: { _ in [] }, lower: { _ in [] }).notDifferentiable(),
    ]
}

extension Graph {
    /// An op that does nothing; with control inputs it runs them (TensorFlow's no_op).
    @discardableResult
    public func noOp(name: String = "NoOp") throws -> Operation {
        try addOperation("NoOp", name: name)
    }

    /// One op that runs all of `ops` (TensorFlow's group).
    public func group(_ ops: [Operation], name: String = "group_deps") throws -> Operation {
        try addOperation("NoOp", name: name, controlInputs: ops)
    }

    public func group(_ outputs: [Output], name: String = "group_deps") throws -> Operation {
        try group(outputs.map(\.op), name: name)
    }
}
