import KilnIR

/// Gradients of the neural-network ops (TensorFlow's nn_grad.py).
enum NNGradients {
    static let softmax: GradientFunction = { ctx in
        let g = ctx.graph, y = ctx.output(), dy = try ctx.grad()
        let s = try g.reduceSum(g.multiply(dy, y), axes: [-1], keepDims: true)
        return [try g.multiply(g.subtract(dy, s), y)]
    }

    static let logSoftmax: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        return [try g.subtract(dy, g.multiply(g.reduceSum(dy, axes: [-1], keepDims: true), g.exp(ctx.output())))]
    }

    static let softmaxCrossEntropyWithLogits: GradientFunction = { ctx in
        // d logits = dloss * (softmax - labels); d labels = dloss * -log_softmax(logits).
        let g = ctx.graph
        let dloss = try g.expandDims(ctx.grad(0), axis: -1)
        let dlogits = try g.multiply(dloss, ctx.output(1))
        let dlabels = try g.multiply(dloss, g.negative(g.logSoftmax(ctx.input(0))))
        return [dlogits, dlabels]
    }

    static let sparseSoftmaxCrossEntropyWithLogits: GradientFunction = { ctx in
        let g = ctx.graph
        return [try g.multiply(g.expandDims(ctx.grad(0), axis: -1), ctx.output(1)), nil]
    }

    /// dx = dy / (1 + |x|)², as TensorFlow's SoftsignGrad op (nn_grad.py).
    static let softsign: GradientFunction = { ctx in [try ctx.graph.apply("SoftsignGrad", [ctx.grad(), ctx.input(0)], name: "SoftsignGrad")] }

    static let l2Loss: GradientFunction = { ctx in [try ctx.graph.multiply(ctx.input(0), ctx.grad())] }

    static let biasAdd: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        return [dy, try g.apply("BiasAddGrad", [dy], name: "BiasAddGrad", attrs: NNOps.dataFormat(ctx.attrs[NNOps.dataFormat]))]
    }

    static let conv2D: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), x = ctx.input(0), f = ctx.input(1)
        var attrs: [String: AttrValue] = ["T": .type(x.dtype)]
        for k in ["strides", "padding", "dilations", "data_format", "use_cudnn_on_gpu"] { attrs[k] = ctx.attrs[k] }
        let dx = try g.addOperation("Conv2DBackpropInput", name: "Conv2DBackpropInput", inputs: [g.shapeTensor(x), f, dy], attrs: attrs)
        let df = try g.addOperation("Conv2DBackpropFilter", name: "Conv2DBackpropFilter", inputs: [x, g.shapeTensor(f), dy], attrs: attrs)
        return [dx.output(), df.output()]
    }

    static let maxPool: GradientFunction = { ctx in
        let g = ctx.graph
        var attrs: [String: AttrValue] = ["T": .type(ctx.input(0).dtype)]
        for k in ["ksize", "strides", "padding", "data_format"] { attrs[k] = ctx.attrs[k] }
        return [try g.addOperation("MaxPoolGrad", name: "MaxPoolGrad", inputs: [ctx.input(0), ctx.output(), ctx.grad()], attrs: attrs).output()]
    }

    static let avgPool: GradientFunction = { ctx in
        let g = ctx.graph
        var attrs: [String: AttrValue] = ["T": .type(ctx.input(0).dtype)]
        for k in ["ksize", "strides", "padding", "data_format"] { attrs[k] = ctx.attrs[k] }
        return [try g.addOperation("AvgPoolGrad", name: "AvgPoolGrad", inputs: [g.shapeTensor(ctx.input(0)), ctx.grad()], attrs: attrs).output()]
    }

    /// Training mode: with x̂ = (x - μ)·σ⁻¹ over N·H·W = m elements per channel,
    /// dx = scale·σ⁻¹/m · (m·dy - Σdy - x̂·Σ(dy·x̂)), dscale = Σ(dy·x̂), doffset = Σdy.
    /// Inference mode treats mean and variance as constants.
    static let fusedBatchNorm: GradientFunction = { ctx in
        let g = ctx.graph, x = ctx.input(0), scale = ctx.input(1), dy = try ctx.grad(0)
        let eps = try g.constant(ctx.attrs[NNOps.FusedBatchNorm.epsilon], dtype: x.dtype)
        let axes = [0, 1, 2]
        if ctx.attrs[NNOps.FusedBatchNorm.isTraining] {
            let mean = try g.reduceMean(x, axes: axes)
            let centered = try g.subtract(x, mean)
            let variance = try g.reduceMean(g.square(centered), axes: axes)
            let inv = try g.rsqrt(g.add(variance, eps))
            let xhat = try g.multiply(centered, inv)
            let sumDy = try g.reduceSum(dy, axes: axes)
            let sumDyX = try g.reduceSum(g.multiply(dy, xhat), axes: axes)
            let m = try g.realDiv(g.cast(g.size(x), to: x.dtype), g.cast(g.size(scale), to: x.dtype))
            let inner = try g.subtract(g.subtract(g.multiply(dy, m), sumDy), g.multiply(xhat, sumDyX))
            let dx = try g.multiply(g.realDiv(g.multiply(scale, inv), m), inner)
            return [dx, sumDyX, sumDy, nil, nil]
        }
        let inv = try g.rsqrt(g.add(ctx.input(4), eps))
        let xhat = try g.multiply(g.subtract(x, ctx.input(3)), inv)
        return [try g.multiply(dy, g.multiply(scale, inv)), try g.reduceSum(g.multiply(dy, xhat), axes: axes), try g.reduceSum(dy, axes: axes), nil, nil]
    }
}
