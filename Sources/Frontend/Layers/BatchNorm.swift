import KilnIR

extension Graph {
    /// slim's batch_norm over every axis but the last. Variables `<scope>/beta` (if center),
    /// `<scope>/gamma` (if scale), and the non-trainable `moving_mean` and `moving_variance`,
    /// whose updates are added to UPDATE_OPS: run them with the train op
    /// (`controlDependencies(collection(UPDATE_OPS))`).
    public func batchNorm(_ x: some OutputConvertible, decay: Double = 0.999, center: Bool = true, scale: Bool = false,
                          epsilon: Double = 0.001, isTraining: Bool = true, scope: String? = nil, reuse: Reuse? = nil) throws -> Output {
        try batchNormLayer(x.output, decay: decay, center: center, scale: scale, epsilon: epsilon, mode: .fixed(isTraining),
                           scope: scope, reuse: reuse)
    }

    /// batch_norm whose mode is picked at run time by a bool scalar tensor.
    public func batchNorm(_ x: some OutputConvertible, decay: Double = 0.999, center: Bool = true, scale: Bool = false,
                          epsilon: Double = 0.001, isTraining: Output, scope: String? = nil, reuse: Reuse? = nil) throws -> Output {
        try batchNormLayer(x.output, decay: decay, center: center, scale: scale, epsilon: epsilon, mode: .dynamic(isTraining),
                           scope: scope, reuse: reuse)
    }

    enum BatchNormMode { case fixed(Bool), dynamic(Output) }

    func batchNormLayer(_ x: Output, decay: Double, center: Bool, scale: Bool, epsilon: Double, mode: BatchNormMode,
                        scope: String?, reuse: Reuse?) throws -> Output {
        guard let dims = x.shape.dims, let c = dims.last ?? nil else {
            throw KilnError.invalidArgument("batch_norm needs the channel (last) dimension of '\(x.name)' to be known, got \(x.shape)")
        }
        let axes = Array(0..<(dims.count - 1))
        return try layerScope(scope, "BatchNorm", reuse: reuse) {
            let model = [GraphKeys.globalVariables, GraphKeys.modelVariables]
            let beta = center ? try getVariable("beta", shape: [c], dtype: x.dtype, initializer: .zeros, collections: model) : nil
            let gamma = scale ? try getVariable("gamma", shape: [c], dtype: x.dtype, initializer: .ones, collections: model) : nil
            let movingMean = try getVariable("moving_mean", shape: [c], dtype: x.dtype, initializer: .zeros, trainable: false, collections: model)
            let movingVar = try getVariable("moving_variance", shape: [c], dtype: x.dtype, initializer: .ones, trainable: false, collections: model)

            func updates(_ mean: Output, _ variance: Output) throws {
                // moving -= (1 - decay) * (moving - batch), TensorFlow's assign_moving_average.
                let rate = try constant(1 - decay, dtype: x.dtype, name: "decay")
                let m = try assignSub(movingMean, multiply(subtract(movingMean, mean), rate), name: "AssignMovingAvg")
                let v = try assignSub(movingVar, multiply(subtract(movingVar, variance), rate), name: "AssignMovingAvg_1")
                addToCollection(GraphKeys.updateOps, m.op)
                addToCollection(GraphKeys.updateOps, v.op)
            }
            let mean: Output, variance: Output
            switch mode {
            case .fixed(false):
                (mean, variance) = (movingMean.value, movingVar.value)
            case .fixed(true):
                let m = try moments(x, axes: axes)
                try updates(m.mean, m.variance)
                (mean, variance) = (m.mean, m.variance)
            case .dynamic(let training):
                let m = try moments(x, axes: axes)
                let t = try broadcastTo(training, shapeTensor: constant(Tensor(shape: [1], scalars: try Graph.narrow([c], name: "channels"))))
                mean = try `where`(t, m.mean, movingMean.value)
                variance = try `where`(t, m.variance, movingVar.value)
                // In inference mode the "batch" statistics are the moving ones: the update is a no-op.
                try updates(mean, variance)
            }
            return try batchNormalization(x, mean: mean, variance: variance, offset: beta?.value, scale: gamma?.value, varianceEpsilon: epsilon)
        }
    }
}
