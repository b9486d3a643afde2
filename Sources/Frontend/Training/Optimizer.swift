import KilnIR

/// A learning rate: a number, or a tensor such as a decay schedule of the global step.
public enum LearningRate: Sendable {
    case constant(Double)
    case tensor(Output)

    func output(_ g: Graph, _ d: DType, name: String = "learning_rate") throws -> Output {
        switch self {
        case .constant(let v): return try g.constant(v, dtype: d, name: name)
        case .tensor(let t): return try g.cast(t, to: d)
        }
    }
}

extension LearningRate: ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral {
    public init(floatLiteral v: Double) { self = .constant(v) }
    public init(integerLiteral v: Int) { self = .constant(Double(v)) }
}

/// TensorFlow 1's Optimizer: computeGradients, applyGradients and minimize, with slot variables
/// named as TensorFlow names them (`w/Momentum`, `w/Adam`, `w/Adam_1`, ...).
open class Optimizer: @unchecked Sendable {
    public let name: String
    public let learningRate: LearningRate
    public let graph: Graph
    private var slotTable: [Variable: [String: Variable]] = [:]
    private var nonSlots: [String: Variable] = [:]

    public init(graph: Graph, learningRate: LearningRate, name: String) {
        self.graph = graph
        self.learningRate = learningRate
        self.name = name
    }

    /// Gradients of `loss` for `varList` (default: the trainable variables), as (gradient, variable)
    /// pairs; a variable the loss does not depend on has a nil gradient.
    public func computeGradients(_ loss: some OutputConvertible, varList: [Variable]? = nil) throws -> [(gradient: Output?, variable: Variable)] {
        let vars = varList ?? graph.trainableVariables
        guard !vars.isEmpty else { throw KilnError.invalidArgument("No variables to optimize.") }
        let grads = try graph.gradients([loss.output], vars.map(\.ref))
        return Array(zip(grads, vars)).map { (gradient: $0.0, variable: $0.1) }
    }

    /// One update op per variable with a gradient, then `globalStep += 1`.
    public func applyGradients(_ pairs: [(gradient: Output?, variable: Variable)], globalStep: Variable? = nil,
                               name opName: String? = nil) throws -> Operation {
        let usable = pairs.compactMap { p in p.gradient.map { ($0, p.variable) } }
        guard !usable.isEmpty else {
            throw KilnError.invalidArgument("No gradients provided for any variable, check your graph for ops that do not support gradients, between variables [\(pairs.map { "'\($0.variable.name):0'" }.joined(separator: ", "))] and loss.")
        }
        for (g, v) in usable where g.dtype != v.dtype {
            throw KilnError.invalidArgument("gradient '\(g.name)' has dtype \(g.dtype) but variable '\(v.name)' has dtype \(v.dtype)")
        }
        for (g, v) in usable where !g.shape.isCompatible(with: v.shape) {
            throw KilnError.invalidArgument("gradient '\(g.name)' has shape \(g.shape) but variable '\(v.name)' has shape \(v.shape)")
        }
        let vars = usable.map(\.1)
        try graph.withoutControlDependencies { try createSlots(vars) }
        return try graph.nameScope(opName ?? name) {
            // As TensorFlow: the returned op carries the scope's own name (`train`, not
            // `train/train`); with a global step the updates are grouped as `<scope>/update`.
            let scope = graph.currentNameScope + "/"
            try prepare()
            var updates: [Operation] = []
            for (g, v) in usable {
                let u = try graph.nameScope("update_" + v.name.replacingOccurrences(of: "/", with: "_")) { try applyDense(g, v) }
                updates.append(u)
            }
            guard let globalStep else { return try finish(updates, name: scope) }
            let finished = try finish(updates, name: "update")
            return try graph.controlDependencies([finished]) {
                try graph.assignAdd(globalStep, graph.constant(1, dtype: globalStep.dtype, name: "value"), name: scope).op
            }
        }
    }

    /// computeGradients + applyGradients.
    public func minimize(_ loss: some OutputConvertible, globalStep: Variable? = nil, varList: [Variable]? = nil,
                         name opName: String? = nil) throws -> Operation {
        try applyGradients(computeGradients(loss, varList: varList), globalStep: globalStep, name: opName)
    }

    // MARK: for subclasses

    open func createSlots(_ vars: [Variable]) throws {}
    open func prepare() throws {}
    open func applyDense(_ grad: Output, _ v: Variable) throws -> Operation { fatalError("subclasses implement applyDense") }
    /// Runs after every update; the default groups them into one op named `name`.
    open func finish(_ updates: [Operation], name: String) throws -> Operation { try graph.group(updates, name: name) }

    /// The slot `slotName` of `v` (e.g. "m" for Adam), once created.
    public func slot(_ v: Variable, _ slotName: String) -> Variable? { slotTable[v]?[slotName] }
    public func slotNames(_ v: Variable) -> [String] { slotTable[v].map { Array($0.keys).sorted() } ?? [] }
    public func nonSlotVariable(_ name: String) -> Variable? { nonSlots[name] }

    /// A slot for `v` named `<v>/<opName>` (made unique: `<v>/<opName>_1`), initialised to `value`.
    public func makeSlot(_ v: Variable, _ slotName: String, opName: String, value: Double) throws {
        if slotTable[v]?[slotName] != nil { return }
        guard let shape = v.shape.concrete else { throw KilnError.invalidArgument("slot for '\(v.name)' needs its shape") }
        let base = v.name + "/" + opName
        var full = base
        var k = 0
        while graph.operation(named: full) != nil { k += 1; full = base + "_\(k)" }
        let initial = try graph.nameScope(full + "/Initializer/") { try graph.constant(value, dtype: v.dtype, shape: shape, name: "Const") }
        let s = try graph.createVariable(fullName: full, initial: initial, trainable: false, collections: nil)
        slotTable[v, default: [:]][slotName] = s
    }

    /// A variable shared by every update (e.g. Adam's beta1_power), made once.
    public func makeNonSlot(_ name: String, value: Double, dtype: DType) throws -> Variable {
        if let v = nonSlots[name] { return v }
        let v = try graph.withoutControlDependencies {
            try graph.createVariable(fullName: graph.uniqueName(name, markAsUsed: false), initial: graph.constant(value, dtype: dtype, name: name + "/initial_value"),
                                     trainable: false, collections: nil)
        }
        nonSlots[name] = v
        return v
    }

    /// The learning rate as a tensor of `d`.
    public func lr(_ d: DType) throws -> Output { try learningRate.output(graph, d) }
    public func const(_ v: Double, _ d: DType, _ n: String = "Const") throws -> Output { try graph.constant(v, dtype: d, name: n) }
}
