import KilnIR

public typealias GradientFunction = @Sendable (GradientContext) throws -> [Output?]

/// What an op's gradient function sees: the op, and the gradient of each of its outputs.
public struct GradientContext {
    public let graph: Graph
    public let op: Operation
    let outputGrads: [Output?]

    public func input(_ i: Int) -> Output { op.inputs[i] }
    public func output(_ i: Int = 0) -> Output { op.output(i) }
    public var attrs: [String: AttrValue] { op.attrs }

    /// The gradient flowing into output `i` (zeros when that output does not reach the loss).
    public func grad(_ i: Int = 0) throws -> Output {
        if let g = outputGrads[i] { return g }
        return try graph.zerosLike(op.output(i))
    }

    public func hasGrad(_ i: Int) -> Bool { outputGrads[i] != nil }
}

/// Gradients flow only through floating-point tensors (and variables holding them).
func isDifferentiable(_ o: Output) -> Bool { o.dtype.isFloatingPoint }

extension Graph {
    /// Symbolic gradients of `sum(ys)` (or of `ys` weighted by `gradYs`) with respect to `xs`,
    /// built as graph ops from each op's registry gradient (TensorFlow's tf.gradients). An x the
    /// ys do not depend on gets nil, or zeros when `unconnectedZeros` is set.
    public func gradients(_ ys: [Output], _ xs: [Output], gradYs: [Output?]? = nil, unconnectedZeros: Bool = false,
                          name: String = "gradients") throws -> [Output?] {
        if let gradYs, gradYs.count != ys.count {
            throw KilnError.invalidArgument("gradients: \(gradYs.count) grad_ys for \(ys.count) ys")
        }
        // Ops on a path from some x to some y, through differentiable tensors.
        let xOps = Set(xs.map(\.op))
        var reachable = Set<Operation>()   // forward from xs
        var frontier = Array(xOps)
        var consumers: [Operation: [Operation]] = [:]
        for op in operations { for i in op.inputs where isDifferentiable(i) || i.isRef { consumers[i.op, default: []].append(op) } }
        while let op = frontier.popLast() {
            guard reachable.insert(op).inserted else { continue }
            frontier += consumers[op] ?? []
        }
        var between = Set<Operation>()     // backward from ys, within reachable
        frontier = ys.map(\.op).filter { reachable.contains($0) }
        while let op = frontier.popLast() {
            guard between.insert(op).inserted else { continue }
            for i in op.inputs where reachable.contains(i.op) && (isDifferentiable(i) || i.isRef) { frontier.append(i.op) }
        }

        var pending: [Output: [Output]] = [:]
        return try nameScope(name) {
            for (k, y) in ys.enumerated() {
                let g = try gradYs?[k] ?? onesLike(y, name: "grad_ys_\(k)")
                if let given = gradYs?[k], given.dtype != y.dtype {
                    throw KilnError.invalidArgument("gradients: grad_ys[\(k)] has dtype \(given.dtype) but y '\(y.name)' has \(y.dtype)")
                }
                pending[y, default: []].append(g)
            }
            func total(_ o: Output) throws -> Output? {
                guard let gs = pending[o], !gs.isEmpty else { return nil }
                if gs.count == 1 { return gs[0] }
                let sum = try addN(gs)
                pending[o] = [sum]
                return sum
            }
            for op in between.sorted(by: { $0.id > $1.id }) {
                // Only ops with an input that leads back to some x need their gradient.
                guard op.inputs.contains(where: { reachable.contains($0.op) }) else { continue }
                let outGrads = try op.outputs.map(total)
                if outGrads.allSatisfy({ $0 == nil }) { continue }
                guard let def = OpRegistry.def(op.type) else { continue }
                if !def.differentiable { continue }
                guard let fn = def.gradient else {
                    throw KilnError.notFound("No gradient defined for operation '\(op.name)' (op type: \(op.type))")
                }
                let inGrads = try nameScope(op.name + "_grad") {
                    try withoutControlDependencies { try fn(GradientContext(graph: self, op: op, outputGrads: outGrads)) }
                }
                guard inGrads.count == op.inputs.count else {
                    throw KilnError.internalError("gradient of \(op.type) returned \(inGrads.count) values for \(op.inputs.count) inputs")
                }
                for (i, g) in zip(op.inputs, inGrads) {
                    guard let g, reachable.contains(i.op) || xs.contains(i) else { continue }
                    pending[i, default: []].append(g)
                }
            }
            return try xs.map { x in
                if let g = try total(x) { return g }
                return unconnectedZeros ? try zerosLike(x) : nil
            }
        }
    }

    /// Gradients with respect to variables (their values).
    public func gradients(_ y: some OutputConvertible, _ variables: [Variable], unconnectedZeros: Bool = false) throws -> [Output?] {
        try gradients([y.output], variables.map(\.ref), unconnectedZeros: unconnectedZeros)
    }

    // MARK: helpers for gradient functions

    /// A 1-D int32 tensor holding x's shape: a constant when it is fully known.
    public func shapeTensor(_ x: Output) throws -> Output {
        if let s = x.shape.concrete { return try constant(Tensor(shape: [s.count], scalars: try Graph.narrow(s, name: "Shape")), name: "Shape") }
        return try shape(x)
    }

    /// `g` summed over the dimensions that broadcasting added or stretched, to x's shape.
    public func unbroadcast(_ g: Output, to x: Output, other y: Output) throws -> Output {
        if let xs = x.shape.concrete, let gs = g.shape.concrete {
            if xs == gs { return g }
            let lead = gs.count - xs.count
            let axes = (0..<gs.count).filter { $0 < lead || (xs[$0 - lead] == 1 && gs[$0] != 1) }
            return try reshape(reduceSum(g, axes: axes), xs)
        }
        let args = try addOperation("BroadcastGradientArgs", name: "BroadcastGradientArgs", inputs: [shapeTensor(x), shapeTensor(y)],
                                    attrs: ["T": .type(.int32)])
        let s = try addOperation("Sum", name: "Sum", inputs: [g, args.output(0)], attrs: ["T": .type(g.dtype), "keep_dims": .bool(false), "Tidx": .type(.int32)])
        return try reshape(s.output(), shapeTensor: shapeTensor(x))
    }

    public func reshape(_ x: some OutputConvertible, shapeTensor: Output, name: String = "Reshape") throws -> Output {
        try apply("Reshape", [x.output, shapeTensor], name: name, attrs: ["Tshape": .type(shapeTensor.dtype)])
    }

    public func broadcastTo(_ x: some OutputConvertible, shapeTensor: Output, name: String = "BroadcastTo") throws -> Output {
        try apply("BroadcastTo", [x.output, shapeTensor], name: name, attrs: ["Tidx": .type(shapeTensor.dtype)])
    }

    /// Floating-point division without truediv's integer conversion (TensorFlow's RealDiv).
    public func realDiv(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "RealDiv") throws -> Output {
        try apply("RealDiv", [x.output, y.output], name: name)
    }

    public func addN(_ xs: [Output], name: String = "AddN") throws -> Output {
        try addOperation("AddN", name: name, inputs: xs, attrs: ["N": .int(xs.count), "T": .type(xs[0].dtype)]).output()
    }

    public func stopGradient(_ x: some OutputConvertible, name: String = "StopGradient") throws -> Output {
        try apply("StopGradient", [x.output], name: name)
    }

    /// Stacks tensors of one shape along a new axis (tf.stack).
    public func stack(_ xs: [Output], axis: Int = GradientOps.packAxis.defaultValue, name: String = "stack") throws -> Output {
        try addOperation("Pack", name: name, inputs: xs, attrs: ["N": .int(xs.count), "T": .type(xs[0].dtype), "axis": .int(axis)]).output()
    }

    /// x's shape with the dimensions in `axes` set to 1 (the shape of a keepdims reduction).
    func keptShape(_ x: Output, axes: [Int]) throws -> Output {
        guard let dims = x.shape.dims else { throw KilnError.unimplemented("the gradient of a reduction of '\(x.name)' needs its rank") }
        let r = dims.count
        let norm = Set(axes.map { $0 < 0 ? $0 + r : $0 })
        if let s = x.shape.concrete { return try constant(Tensor(shape: [r], scalars: try Graph.narrow(s.enumerated().map { norm.contains($0.offset) ? 1 : $0.element }, name: "reduced_shape"))) }
        let mask = try constant(Tensor(shape: [r], scalars: (0..<r).map { Int32(norm.contains($0) ? 1 : 0) }))
        let keep = try constant(Tensor(shape: [r], scalars: (0..<r).map { Int32(norm.contains($0) ? 0 : 1) }))
        return try add(multiply(shape(x), keep), mask)
    }
}
