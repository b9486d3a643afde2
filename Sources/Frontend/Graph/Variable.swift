import KilnIR

/// A TensorFlow-1.x variable: a `VariableV2` op holding state in the session, the `Assign` that
/// initialises it, and the `read` snapshot used as its value.
public final class Variable: OutputConvertible, Hashable, CustomStringConvertible, @unchecked Sendable {
    public let variableOp: Operation
    public let initializer: Operation
    public let initialValue: Output
    /// The `<name>/read` snapshot.
    public let value: Output
    public let trainable: Bool

    init(variableOp: Operation, initializer: Operation, initialValue: Output, value: Output, trainable: Bool) {
        self.variableOp = variableOp
        self.initializer = initializer
        self.initialValue = initialValue
        self.value = value
        self.trainable = trainable
    }

    public var output: Output { value }

    /// TensorFlow's `initialized_value()`: the variable's value when it has one, else its initial
    /// value, for initialising other variables from it whatever the order. Evaluating it never
    /// assigns the variable.
    public func initializedValue() throws -> Output {
        try graph.withoutControlDependencies {
            try graph.addOperation("KilnInitializedValue", name: name + "/initialized_value", inputs: [initialValue],
                                   attrs: ["variable": .string(name), "T": .type(dtype)]).output()
        }
    }

    /// TensorFlow 1's `read_value()`: an Identity of the variable made here, so it takes the
    /// control dependencies in effect here; its consumers see the variable as of when they run.
    public func readValue() throws -> Output { try graph.identity(ref, name: "read") }

    /// The variable itself (a ref), as Assign and friends take it.
    public var ref: Output { variableOp.output() }
    public var name: String { variableOp.name }
    public var dtype: DType { ref.dtype }
    public var shape: Shape { ref.shape }
    public var graph: Graph { variableOp.graph }

    public static func == (a: Variable, b: Variable) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }
    public var description: String { "<Variable '\(name):0' shape=\(shape) dtype=\(dtype)>" }
}

/// TensorFlow's GraphKeys.
public enum GraphKeys {
    public static let globalVariables = "variables"
    public static let trainableVariables = "trainable_variables"
    public static let localVariables = "local_variables"
    public static let modelVariables = "model_variables"
    public static let updateOps = "update_ops"
    public static let losses = "losses"
    public static let regularizationLosses = "regularization_losses"
    public static let summaries = "summaries"
    public static let trainOp = "train_op"
    public static let globalStep = "global_step"
    public static let movingAverageVariables = "moving_average_variables"
}

extension Graph {
    /// A variable initialised to `initialValue` (TensorFlow's `Variable(initial_value, name=...)`).
    public func variable(_ initialValue: some OutputConvertible, name: String = "Variable", trainable: Bool = true,
                         collections: [String]? = nil) throws -> Variable {
        let initial = initialValue.output
        guard initial.shape.isFullyDefined else {
            throw KilnError.invalidArgument("variable '\(name)': initial value '\(initial.name)' must have a fully defined shape, got \(initial.shape)")
        }
        let full = uniqueName(name, markAsUsed: false)
        return try createVariable(fullName: full, initial: initial, trainable: trainable, collections: collections)
    }

    /// The VariableV2 / Assign / read trio under exactly `fullName`.
    func createVariable(fullName: String, initial: Output, trainable: Bool, collections: [String]?) throws -> Variable {
        try withoutControlDependencies {
            try nameScope(fullName + "/") {
                let v = try addOperation("VariableV2", name: fullName, attrs: ["dtype": .type(initial.dtype), "shape": .shape(initial.shape)],
                                         nameIsFinal: true)
                let assign = try addOperation("Assign", name: "Assign", inputs: [v.output(), initial], attrs: ["T": .type(initial.dtype)])
                let read = try addOperation("Identity", name: "read", inputs: [v.output()], attrs: ["T": .type(initial.dtype)])
                let variable = Variable(variableOp: v, initializer: assign, initialValue: initial, value: read.output(), trainable: trainable)
                for key in collections ?? [GraphKeys.globalVariables] { addToCollection(key, variable) }
                if trainable && !(collections ?? []).contains(GraphKeys.trainableVariables) { addToCollection(GraphKeys.trainableVariables, variable) }
                return variable
            }
        }
    }

    /// A variable initialised from a Swift value; the constant is named `<name>/initial_value`.
    public func variable<L: TensorLiteral>(_ initialValue: L, dtype: DType? = nil, name: String = "Variable", trainable: Bool = true) throws -> Variable {
        try variable(Tensor(literal: initialValue, dtype: dtype ?? L.Scalar.dtype), name: name, trainable: trainable)
    }

    /// A variable initialised from a host tensor.
    public func variable(_ initialValue: Tensor, name: String = "Variable", trainable: Bool = true) throws -> Variable {
        // `full` already carries the current name scope; the constant goes under it exactly.
        let full = uniqueName(name, markAsUsed: false)
        let c = try withoutControlDependencies {
            try nameScope(full + "/") { try constant(initialValue, name: "initial_value") }
        }
        return try createVariable(fullName: full, initial: c, trainable: trainable, collections: nil)
    }

    /// Ops registered in UPDATE_OPS (batch-norm moving statistics): run them with the train op.
    public var updateOps: [Operation] { collection(GraphKeys.updateOps).compactMap { $0 as? Operation } }

    public var localVariables: [Variable] { collection(GraphKeys.localVariables).compactMap { $0 as? Variable } }
    public var modelVariables: [Variable] { collection(GraphKeys.modelVariables).compactMap { $0 as? Variable } }

    /// TensorFlow 1's old name for globalVariablesInitializer.
    public func initializeAllVariables() throws -> Operation { try globalVariablesInitializer() }
    public func allVariables() -> [Variable] { globalVariables }
    public func localVariablesInitializer() throws -> Operation { try variablesInitializer(localVariables, name: "init_1") }

    public var globalVariables: [Variable] { collection(GraphKeys.globalVariables).compactMap { $0 as? Variable } }
    public var trainableVariables: [Variable] { collection(GraphKeys.trainableVariables).compactMap { $0 as? Variable } }

    /// `variable = value`; the output is the variable after the write.
    @discardableResult
    public func assign(_ variable: Variable, _ value: some OutputConvertible, name: String = "Assign") throws -> Output {
        try addOperation("Assign", name: name, inputs: [variable.ref, value.output], attrs: ["T": .type(variable.dtype)]).output()
    }

    @discardableResult
    public func assignAdd(_ variable: Variable, _ value: some OutputConvertible, name: String = "AssignAdd") throws -> Output {
        try addOperation("AssignAdd", name: name, inputs: [variable.ref, value.output], attrs: ["T": .type(variable.dtype)]).output()
    }

    @discardableResult
    public func assignSub(_ variable: Variable, _ value: some OutputConvertible, name: String = "AssignSub") throws -> Output {
        try addOperation("AssignSub", name: name, inputs: [variable.ref, value.output], attrs: ["T": .type(variable.dtype)]).output()
    }

    /// One op that runs the initialisers of `variables` (TensorFlow's variables_initializer).
    public func variablesInitializer(_ variables: [Variable], name: String = "init") throws -> Operation {
        try group(variables.map(\.initializer), name: name)
    }

    /// Runs every global variable's initialiser (TensorFlow's global_variables_initializer).
    public func globalVariablesInitializer() throws -> Operation {
        try variablesInitializer(globalVariables, name: "init")
    }
}
