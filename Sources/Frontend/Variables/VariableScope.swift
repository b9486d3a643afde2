import KilnIR

/// TensorFlow's reuse setting of a variable scope.
public enum Reuse: Sendable {
    /// Creating an existing variable is an error (reuse=None/False).
    case no
    /// Every getVariable must find an existing variable (reuse=True).
    case yes
    /// Find it if it exists, else create it (tf.AUTO_REUSE).
    case auto
}

/// A variable scope: the prefix of getVariable names, its reuse mode and default initializer
/// and regularizer.
public final class VariableScope: @unchecked Sendable {
    public let name: String
    public internal(set) var reuse: Reuse
    public let initializer: Initializer?
    public let regularizer: Regularizer?
    /// Replaces what getVariable returns (TensorFlow's custom_getter), e.g. with a moving average.
    public let customGetter: CustomGetter?

    init(name: String, reuse: Reuse, initializer: Initializer?, regularizer: Regularizer?, customGetter: CustomGetter? = nil) {
        self.name = name
        self.reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.customGetter = customGetter
    }
}

public typealias CustomGetter = @Sendable (Variable) throws -> Variable

extension VariableScope {
}

extension Graph {
    /// The innermost open variable scope, or the graph's root scope (which reuseVariables can set too).
    public var currentVariableScope: VariableScope {
        if let s = variableScopes.last { return s }
        if let root = collection("__variable_scope_root").first as? VariableScope { return root }
        let root = VariableScope(name: "", reuse: .no, initializer: nil, regularizer: nil)
        addToCollection("__variable_scope_root", root)
        return root
    }

    /// Opens a variable scope (and a name scope of the same name, made unique as TensorFlow does).
    /// Reuse is inherited: inside a reusing scope every sub-scope reuses.
    public func variableScope<R>(_ name: String, reuse: Reuse? = nil, initializer: Initializer? = nil, regularizer: Regularizer? = nil,
                                 customGetter: CustomGetter? = nil, _ body: () throws -> R) rethrows -> R {
        let parent = currentVariableScope
        let full = parent.name.isEmpty ? name : parent.name + "/" + name
        let inherited: Reuse = parent.reuse == .no ? (reuse ?? .no) : (reuse == .auto ? .auto : parent.reuse)
        // Entering a scope restarts the default-name counts of its sub-scopes, as TensorFlow does,
        // so a reused model gets the same layer names again.
        for k in variableScopeCounts.keys where k.hasPrefix(full + "/") { variableScopeCounts[k] = nil }
        variableScopeCounts[full, default: 0] += 1
        let scope = VariableScope(name: full, reuse: inherited, initializer: initializer ?? parent.initializer,
                                  regularizer: regularizer ?? parent.regularizer, customGetter: customGetter ?? parent.customGetter)
        variableScopes.append(scope)
        defer { variableScopes.removeLast() }
        return try nameScope(name) { try body() }
    }

    /// `prefix`, or `prefix_k` when a sub-scope of that name was already opened in this scope.
    func uniqueVariableScopeName(_ prefix: String) -> String {
        let parent = currentVariableScope.name
        let key = { (n: String) in parent.isEmpty ? n : parent + "/" + n }
        if (variableScopeCounts[key(prefix)] ?? 0) == 0 { return prefix }
        var k = 1
        while (variableScopeCounts[key("\(prefix)_\(k)")] ?? 0) > 0 { k += 1 }
        return "\(prefix)_\(k)"
    }

    /// From here on the current variable scope reuses its variables (scope.reuse_variables()).
    public func reuseVariables() {
        currentVariableScope.reuse = .yes
    }

    /// TensorFlow's get_variable: the variable `scope/name`, created or shared per the scope's
    /// reuse mode, with TensorFlow's errors for the ways this goes wrong.
    public func getVariable(_ name: String, shape: [Int]? = nil, dtype: DType = .float32, initializer: Initializer? = nil,
                            regularizer: Regularizer? = nil, trainable: Bool = true, collections: [String]? = nil) throws -> Variable {
        let v = try findOrCreateVariable(name, shape: shape, dtype: dtype, initializer: initializer, regularizer: regularizer,
                                         trainable: trainable, collections: collections)
        return try currentVariableScope.customGetter?(v) ?? v
    }

    func findOrCreateVariable(_ name: String, shape: [Int]?, dtype: DType, initializer: Initializer?,
                              regularizer: Regularizer?, trainable: Bool, collections: [String]?) throws -> Variable {
        let scope = currentVariableScope
        let full = scope.name.isEmpty ? name : scope.name + "/" + name
        if let existing = variableStore[full] {
            guard scope.reuse != .no else {
                throw KilnError.invalidArgument("Variable \(full) already exists, disallowed. Did you mean to set reuse=True or reuse=tf.AUTO_REUSE in VarScope?")
            }
            if let shape, !Shape(shape).isCompatible(with: existing.shape) {
                throw KilnError.invalidArgument("Trying to share variable \(full), but specified shape \(Shape(shape)) and found shape \(existing.shape).")
            }
            if dtype != existing.dtype {
                throw KilnError.invalidArgument("Trying to share variable \(full), but specified dtype \(dtype) and found dtype \(existing.dtype).")
            }
            return existing
        }
        if scope.reuse == .yes {
            throw KilnError.invalidArgument("Variable \(full) does not exist, or was not created with tf.get_variable(). Did you mean to set reuse=tf.AUTO_REUSE in VarScope?")
        }
        guard let shape else {
            throw KilnError.invalidArgument("Shape of a new variable (\(full)) must be fully defined, but instead was <unknown>.")
        }
        let make = initializer ?? scope.initializer ?? (dtype.isFloatingPoint ? .glorotUniform() : .zeros)
        let initial = try withoutControlDependencies {
            try nameScope(full + "/Initializer/") { try make(self, shape: shape, dtype: dtype) }
        }
        let v = try createVariable(fullName: full, initial: initial, trainable: trainable, collections: collections)
        variableStore[full] = v
        if let reg = regularizer ?? scope.regularizer {
            let loss = try nameScope(full + "/Regularizer/") { try reg.make(self, v.value) }
            addToCollection(GraphKeys.regularizationLosses, loss)
        }
        return v
    }

    /// All variables made with getVariable, by name.
    public var sharedVariables: [String: Variable] { variableStore }

    /// The shared step counter (tf.train.get_or_create_global_step): an int64 scalar, not trainable.
    public func globalStep() throws -> Variable {
        if let v = collection(GraphKeys.globalStep).first as? Variable { return v }
        let v = try withoutControlDependencies {
            try createVariable(fullName: "global_step", initial: constant(Tensor(Int64(0)), name: "global_step/Initializer/zeros"),
                               trainable: false, collections: [GraphKeys.globalVariables, GraphKeys.globalStep])
        }
        variableStore["global_step"] = v
        return v
    }
}
