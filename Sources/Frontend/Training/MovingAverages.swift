import KilnIR

/// TensorFlow's ExponentialMovingAverage: shadow variables `<var>/ExponentialMovingAverage`
/// that `apply` moves toward the variables with
/// `shadow -= (1 - d) * (shadow - value)`, `d = min(decay, (1 + n) / (10 + n))` when numUpdates n is given.
public final class ExponentialMovingAverage: @unchecked Sendable {
    public let graph: Graph
    public let decay: Double
    public let numUpdates: Output?
    public let name: String
    private var shadows: [Variable: Variable] = [:]

    public init(_ graph: Graph, decay: Double, numUpdates: (any OutputConvertible)? = nil, name: String = "ExponentialMovingAverage") {
        self.graph = graph
        self.decay = decay
        self.numUpdates = numUpdates?.output
        self.name = name
    }

    /// Creates shadows (initialised to each variable's initial value) on first use and returns the
    /// op that updates them all.
    public func apply(_ vars: [Variable]? = nil) throws -> Operation {
        let g = graph
        let targets = vars ?? g.trainableVariables
        for v in targets where shadows[v] == nil {
            guard v.dtype.isFloatingPoint else { throw KilnError.invalidArgument("ExponentialMovingAverage: variable '\(v.name)' is \(v.dtype), not floating point") }
            let s = try g.withoutControlDependencies {
                try g.createVariable(fullName: averageName(v), initial: v.initializedValue(), trainable: false, collections: nil)
            }
            shadows[v] = s
            g.addToCollection(GraphKeys.movingAverageVariables, v)
        }
        return try g.nameScope(name) {
            let d = try decayTensor(targets.first?.dtype ?? .float32)
            var updates: [Operation] = []
            for v in targets {
                let s = shadows[v]!
                let rate = try g.subtract(g.constant(1, dtype: v.dtype), g.cast(d, to: v.dtype))
                updates.append(try g.assignSub(s, g.multiply(g.subtract(s, v.value), rate), name: "AssignMovingAvg").op)
            }
            return try g.group(updates, name: name)
        }
    }

    func decayTensor(_ d: DType) throws -> Output {
        let g = graph
        let base = try g.constant(decay, dtype: d, name: "decay")
        guard let n = numUpdates else { return base }
        let nf = try g.cast(n, to: d)
        let ramp = try g.realDiv(g.add(g.constant(1, dtype: d), nf), g.add(g.constant(10, dtype: d), nf))
        return try g.minimum(base, ramp)
    }

    /// The shadow of `v`, once `apply` has made it.
    public func average(_ v: Variable) -> Variable? { shadows[v] }
    public func averageName(_ v: Variable) -> String { v.name + "/" + name }

    /// For a Saver: every moving-average variable under its shadow's name, other variables under
    /// their own, so restoring loads the averages into the model's variables.
    public func variablesToRestore(_ vars: [Variable]? = nil) -> [String: Variable] {
        var out: [String: Variable] = [:]
        let averaged = graph.collection(GraphKeys.movingAverageVariables).compactMap { $0 as? Variable }
        for v in averaged { out[averageName(v)] = v }
        // Variables without an average restore under their own name (shadows are already keys).
        for v in vars ?? graph.globalVariables where !averaged.contains(v) && out[v.name] == nil { out[v.name] = v }
        return out
    }
}
