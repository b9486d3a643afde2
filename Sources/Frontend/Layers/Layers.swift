import KilnIR

/// An activation function for layers (relu, identity, ...).
public struct Activation: Sendable {
    let apply: @Sendable (Graph, Output) throws -> Output
    public init(_ apply: @escaping @Sendable (Graph, Output) throws -> Output) { self.apply = apply }

    public static let identity = Activation { _, x in x }
    public static let relu = Activation { g, x in try g.relu(x) }
    public static let relu6 = Activation { g, x in try g.relu6(x) }
    public static let tanh = Activation { g, x in try g.tanh(x) }
    public static let sigmoid = Activation { g, x in try g.sigmoid(x) }
    public static let elu = Activation { g, x in try g.elu(x) }
    /// tf.nn.leaky_relu with TensorFlow's default slope for negative inputs.
    public static let leakyRelu = leakyRelu(alpha: ElementwiseOps.LeakyRelu.alpha.defaultValue)
    public static func leakyRelu(alpha: Double) -> Activation { Activation { g, x in try g.leakyRelu(x, alpha: alpha) } }
    public static let softmax = Activation { g, x in try g.softmax(x) }
}

/// A normalizer applied after a layer's linear part, before its activation (slim's normalizer_fn).
public struct Normalizer: Sendable {
    let apply: @Sendable (Graph, Output) throws -> Output
    public init(_ apply: @escaping @Sendable (Graph, Output) throws -> Output) { self.apply = apply }

    /// Batch normalisation with these settings.
    public static func batchNorm(decay: Double = 0.999, center: Bool = true, scale: Bool = false, epsilon: Double = 0.001,
                                 isTraining: Bool = true) -> Normalizer {
        Normalizer { g, x in try g.batchNorm(x, decay: decay, center: center, scale: scale, epsilon: epsilon, isTraining: isTraining) }
    }

    /// Batch normalisation whose training mode is chosen at run time by a bool scalar tensor.
    public static func batchNorm(decay: Double = 0.999, center: Bool = true, scale: Bool = false, epsilon: Double = 0.001,
                                 isTraining: Output) -> Normalizer {
        Normalizer { g, x in try g.batchNorm(x, decay: decay, center: center, scale: scale, epsilon: epsilon, isTraining: isTraining) }
    }
}

/// Defaults for a block of layer calls (slim's arg_scope). Unset fields fall through to outer
/// scopes, then to each layer's own default.
public struct LayerDefaults: Sendable {
    public var activation: Activation?
    public var weightsInitializer: Initializer?
    public var weightsRegularizer: Regularizer?
    public var biasesInitializer: Initializer?
    public var normalizer: Normalizer?
    public var padding: String?

    public init(activation: Activation? = nil, weightsInitializer: Initializer? = nil, weightsRegularizer: Regularizer? = nil,
                biasesInitializer: Initializer? = nil, normalizer: Normalizer? = nil, padding: String? = nil) {
        self.activation = activation
        self.weightsInitializer = weightsInitializer
        self.weightsRegularizer = weightsRegularizer
        self.biasesInitializer = biasesInitializer
        self.normalizer = normalizer
        self.padding = padding
    }
}

extension Graph {
    /// Layer calls in `body` take `defaults` for the arguments they do not set.
    public func argScope<R>(_ defaults: LayerDefaults, _ body: () throws -> R) rethrows -> R {
        argScopes.append(defaults)
        defer { argScopes.removeLast() }
        return try body()
    }

    func layerDefault<T>(_ key: KeyPath<LayerDefaults, T?>) -> T? {
        for d in argScopes.reversed() { if let v = d[keyPath: key] { return v } }
        return nil
    }

    /// A fresh variable scope named `scope`, or `defaultName` made unique (fully_connected_1, ...).
    func layerScope<R>(_ scope: String?, _ defaultName: String, reuse: Reuse?, _ body: () throws -> R) rethrows -> R {
        let name = scope ?? uniqueVariableScopeName(defaultName)
        return try variableScope(name, reuse: reuse, body)
    }

    /// slim's fully_connected: x·W + b, then the normalizer (which replaces the bias) and the
    /// activation (relu unless told otherwise). Variables `<scope>/weights` and `<scope>/biases`.
    public func fullyConnected(_ x: some OutputConvertible, _ numOutputs: Int, activation: Activation? = nil,
                               weightsInitializer: Initializer? = nil, weightsRegularizer: Regularizer? = nil,
                               biasesInitializer: Initializer? = nil, normalizer: Normalizer? = nil,
                               scope: String? = nil, reuse: Reuse? = nil) throws -> Output {
        let input = x.output
        guard let inDim = input.shape.dims?.last ?? nil else {
            throw KilnError.invalidArgument("fully_connected needs the last dimension of '\(input.name)' to be known, got \(input.shape)")
        }
        return try layerScope(scope, "fully_connected", reuse: reuse) {
            let w = try getVariable("weights", shape: [inDim, numOutputs], dtype: input.dtype,
                                    initializer: weightsInitializer ?? layerDefault(\.weightsInitializer) ?? .xavier(),
                                    regularizer: weightsRegularizer ?? layerDefault(\.weightsRegularizer),
                                    collections: [GraphKeys.globalVariables, GraphKeys.modelVariables])
            return try finishLayer(matmul(input, w), numOutputs, activation: activation, biasesInitializer: biasesInitializer, normalizer: normalizer)
        }
    }

    /// slim's shared tail of a layer: the normalizer (which replaces the bias) or `<scope>/biases`,
    /// then the activation (relu unless told otherwise).
    func finishLayer(_ linear: Output, _ numOutputs: Int, activation: Activation?, biasesInitializer: Initializer?,
                     normalizer: Normalizer?) throws -> Output {
        var y = linear
        if let norm = normalizer ?? layerDefault(\.normalizer) {
            y = try norm.apply(self, y)
        } else {
            let b = try getVariable("biases", shape: [numOutputs], dtype: linear.dtype,
                                    initializer: biasesInitializer ?? layerDefault(\.biasesInitializer) ?? .zeros,
                                    collections: [GraphKeys.globalVariables, GraphKeys.modelVariables])
            y = try biasAdd(y, b)
        }
        return try (activation ?? layerDefault(\.activation) ?? .relu).apply(self, y)
    }

    /// tf.layers.dense: x·kernel + bias, no activation by default. Variables `<scope>/kernel`, `<scope>/bias`.
    public func dense(_ x: some OutputConvertible, units: Int, activation: Activation? = nil, kernelInitializer: Initializer? = nil,
                      kernelRegularizer: Regularizer? = nil, useBias: Bool = true, name: String? = nil, reuse: Reuse? = nil) throws -> Output {
        let input = x.output
        guard let inDim = input.shape.dims?.last ?? nil else {
            throw KilnError.invalidArgument("dense needs the last dimension of '\(input.name)' to be known, got \(input.shape)")
        }
        return try layerScope(name, "dense", reuse: reuse) {
            let k = try getVariable("kernel", shape: [inDim, units], dtype: input.dtype,
                                    initializer: kernelInitializer ?? layerDefault(\.weightsInitializer) ?? .glorotUniform(),
                                    regularizer: kernelRegularizer ?? layerDefault(\.weightsRegularizer))
            var y = try matmul(input, k)
            if useBias { y = try biasAdd(y, getVariable("bias", shape: [units], dtype: input.dtype, initializer: .zeros)) }
            return try (activation ?? .identity).apply(self, y)
        }
    }

    /// slim's conv2d on NHWC input: variables `<scope>/weights` [kh, kw, in, out] and `<scope>/biases`.
    public func convolution2d(_ x: some OutputConvertible, _ numOutputs: Int, kernelSize: [Int], stride: Int = 1, padding: String? = nil,
                              activation: Activation? = nil, weightsInitializer: Initializer? = nil, weightsRegularizer: Regularizer? = nil,
                              biasesInitializer: Initializer? = nil, normalizer: Normalizer? = nil,
                              scope: String? = nil, reuse: Reuse? = nil) throws -> Output {
        let input = x.output
        guard let inC = input.shape.dims?.last ?? nil, input.shape.rank == 4 else {
            throw KilnError.invalidArgument("conv2d needs an NHWC input with known channels, got '\(input.name)' of shape \(input.shape)")
        }
        let k = kernelSize.count == 1 ? [kernelSize[0], kernelSize[0]] : kernelSize
        return try layerScope(scope, "Conv", reuse: reuse) {
            let w = try getVariable("weights", shape: [k[0], k[1], inC, numOutputs], dtype: input.dtype,
                                    initializer: weightsInitializer ?? layerDefault(\.weightsInitializer) ?? .xavier(),
                                    regularizer: weightsRegularizer ?? layerDefault(\.weightsRegularizer),
                                    collections: [GraphKeys.globalVariables, GraphKeys.modelVariables])
            let y = try conv2d(input, w, strides: [1, stride, stride, 1], padding: padding ?? layerDefault(\.padding) ?? "SAME")
            return try finishLayer(y, numOutputs, activation: activation, biasesInitializer: biasesInitializer, normalizer: normalizer)
        }
    }

    /// slim's max_pool2d (stride 2, VALID by default).
    public func maxPool2d(_ x: some OutputConvertible, kernelSize: [Int], stride: Int = 2, padding: String = "VALID", scope: String = "MaxPool2D") throws -> Output {
        let k = kernelSize.count == 1 ? [kernelSize[0], kernelSize[0]] : kernelSize
        return try nameScope(scope) { try maxPool(x, ksize: [1, k[0], k[1], 1], strides: [1, stride, stride, 1], padding: padding) }
    }

    public func avgPool2d(_ x: some OutputConvertible, kernelSize: [Int], stride: Int = 2, padding: String = "VALID", scope: String = "AvgPool2D") throws -> Output {
        let k = kernelSize.count == 1 ? [kernelSize[0], kernelSize[0]] : kernelSize
        return try nameScope(scope) { try avgPool(x, ksize: [1, k[0], k[1], 1], strides: [1, stride, stride, 1], padding: padding) }
    }

    /// [batch, ...] to [batch, product of the rest].
    public func flatten(_ x: some OutputConvertible, scope: String = "Flatten") throws -> Output {
        let input = x.output
        guard let dims = input.shape.dims, let rest = Shape(dims: Array(dims.dropFirst())).elementCount else {
            throw KilnError.invalidArgument("flatten needs every dimension but the first of '\(input.name)' known, got \(input.shape)")
        }
        return try nameScope(scope) { try reshape(input, [-1, rest]) }
    }

    /// Keeps each element with probability `keepProb`, scaled by 1/keepProb, when training.
    public func dropout(_ x: some OutputConvertible, keepProb: Double = 0.5, isTraining: Bool = true, seed: Int? = nil,
                        scope: String = "Dropout") throws -> Output {
        let input = x.output
        guard isTraining, keepProb < 1 else { return try identity(input) }
        return try nameScope(scope) { try dropoutOp(input, keepProb: keepProb, seed: seed) }
    }

    /// Dropout switched on and off at run time by a bool scalar (e.g. a placeholder with default).
    public func dropout(_ x: some OutputConvertible, keepProb: Double = 0.5, isTraining: Output, seed: Int? = nil,
                        scope: String = "Dropout") throws -> Output {
        let input = x.output
        return try nameScope(scope) {
            try `where`(broadcastTo(isTraining, shapeTensor: shapeTensor(input)), dropoutOp(input, keepProb: keepProb, seed: seed), input)
        }
    }

    func dropoutOp(_ x: Output, keepProb: Double, seed: Int?) throws -> Output {
        guard let shape = x.shape.concrete else {
            // The mask's shape must be known when the graph is built; use the runtime shape.
            let u = try addOperation("RandomUniform", name: "random_uniform", inputs: [shape(x)],
                                     attrs: ["dtype": .type(x.dtype), "T": .type(.int32), "seed": .int(seeds(seed).0), "seed2": .int(seeds(seed).1)]).output()
            let keep = try less(u, constant(keepProb, dtype: x.dtype))
            return try realDiv(multiply(x, cast(keep, to: x.dtype)), constant(keepProb, dtype: x.dtype))
        }
        let u = try randomUniform(shape, dtype: x.dtype, seed: seed)
        let keep = try less(u, constant(keepProb, dtype: x.dtype))
        return try realDiv(multiply(x, cast(keep, to: x.dtype)), constant(keepProb, dtype: x.dtype))
    }
}
