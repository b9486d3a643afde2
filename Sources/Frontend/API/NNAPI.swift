import KilnIR

/// TensorFlow's `tf.nn` functions as Graph methods.
extension Graph {
    /// Softmax along `axis`; other axes go through a transpose, as TensorFlow's does.
    public func softmax(_ logits: some OutputConvertible, axis: Int = -1, name: String = "Softmax") throws -> Output {
        try alongLastAxis(logits.output, axis: axis, name: name) { x in try apply("Softmax", [x], name: name) }
    }
    public func logSoftmax(_ logits: some OutputConvertible, axis: Int = -1, name: String = "LogSoftmax") throws -> Output {
        try alongLastAxis(logits.output, axis: axis, name: name) { x in try apply("LogSoftmax", [x], name: name) }
    }

    func alongLastAxis(_ x: Output, axis: Int, name: String, _ body: (Output) throws -> Output) throws -> Output {
        guard let r = x.shape.rank else { return try body(x) }
        let a = axis < 0 ? axis + r : axis
        guard a >= 0 && a < r else { throw KilnError.invalidArgument("'\(name)': axis \(axis) is out of range for rank \(r)") }
        if a == r - 1 { return try body(x) }
        var perm = Array(0..<r)
        perm.swapAt(a, r - 1)
        return try transpose(body(transpose(x, perm: perm)), perm: perm)
    }

    /// Mean over the batch is up to the caller: this returns one loss per example.
    public func softmaxCrossEntropyWithLogits(labels: some OutputConvertible, logits: some OutputConvertible, axis: Int = -1,
                                              name: String = "softmax_cross_entropy_with_logits") throws -> Output {
        let (l, x) = (labels.output, logits.output)
        if x.dtype == .float16 {
            // As TensorFlow's Python: float16 logits (and labels) computed in float32, the loss rounded once.
            let wide = try softmaxCrossEntropyWithLogits(labels: try cast(l, to: .float32), logits: try cast(x, to: .float32), axis: axis, name: name)
            return try cast(wide, to: .float16)
        }
        return try nameScope(name) {
            guard let r = x.shape.rank else { throw KilnError.invalidArgument("'\(name)': logits need a known rank") }
            let a = axis < 0 ? axis + r : axis
            var (l2, x2) = (l, x)
            if a != r - 1 {
                // Move the class axis to the end, keeping the others in order (the loss keeps them).
                let p = (0..<r).filter { $0 != a } + [a]
                (l2, x2) = (try transpose(l, perm: p), try transpose(x, perm: p))
            }
            let outer = x2.shape.dims.map { Array($0.dropLast()) } ?? []
            if r != 2 {
                let classes = x2.shape.dims?.last ?? nil
                guard let classes else { throw KilnError.invalidArgument("'\(name)': the class dimension must be known") }
                (l2, x2) = (try reshape(l2, [-1, classes]), try reshape(x2, [-1, classes]))
            }
            let op = try addOperation("SoftmaxCrossEntropyWithLogits", name: "SoftmaxCrossEntropyWithLogits", inputs: [x2, l2],
                                      attrs: ["T": .type(x.dtype)])
            let loss = op.output(0)
            if r == 2 { return loss }
            return try reshape(loss, outer.map { $0 ?? -1 })
        }
    }

    public func sparseSoftmaxCrossEntropyWithLogits(labels: some OutputConvertible, logits: some OutputConvertible,
                                                    name: String = "SparseSoftmaxCrossEntropyWithLogits") throws -> Output {
        // TensorFlow's Python computes float16 logits in float32 and rounds the loss once (nn_ops.py).
        let upcast = logits.output.dtype == .float16
        let x = upcast ? try cast(logits, to: .float32) : logits.output
        let loss = try addOperation("SparseSoftmaxCrossEntropyWithLogits", name: name, inputs: [x, labels.output],
                                    attrs: ["T": .type(x.dtype), "Tlabels": .type(labels.output.dtype)]).output(0)
        return upcast ? try cast(loss, to: .float16) : loss
    }

    /// max(x, 0) - x * z + log(1 + exp(-|x|)), the stable form TensorFlow uses.
    public func sigmoidCrossEntropyWithLogits(labels: some OutputConvertible, logits: some OutputConvertible,
                                              name: String = "logistic_loss") throws -> Output {
        let (z, x) = (labels.output, logits.output)
        return try nameScope(name) {
            let zeros = try zerosLike(x)
            let positive = try greaterEqual(x, zeros)
            let reluLogits = try `where`(positive, x, zeros, name: "Select")
            let negAbs = try `where`(positive, negative(x), x, name: "Select_1")
            return try add(subtract(reluLogits, multiply(x, z)), log1p(exp(negAbs)))
        }
    }

    public func l2Loss(_ x: some OutputConvertible, name: String = "L2Loss") throws -> Output { try apply("L2Loss", [x.output], name: name) }

    public func biasAdd(_ value: some OutputConvertible, _ bias: some OutputConvertible, dataFormat: String = "NHWC", name: String = "BiasAdd") throws -> Output {
        try apply("BiasAdd", [value.output, bias.output], name: name, attrs: ["data_format": .string(dataFormat)])
    }

    /// NHWC input, HWIO filter; `strides` and `dilations` as [1, h, w, 1]; padding "SAME" or "VALID".
    public func conv2d(_ input: some OutputConvertible, _ filter: some OutputConvertible, strides: [Int], padding: String,
                       dilations: [Int] = [1, 1, 1, 1], dataFormat: String = "NHWC", name: String = "Conv2D") throws -> Output {
        try apply("Conv2D", [input.output, filter.output], name: name,
                  attrs: ["strides": .ints(strides), "padding": .string(padding), "dilations": .ints(dilations),
                          "data_format": .string(dataFormat), "use_cudnn_on_gpu": .bool(true)])
    }

    public func maxPool(_ value: some OutputConvertible, ksize: [Int], strides: [Int], padding: String, dataFormat: String = "NHWC",
                        name: String = "MaxPool") throws -> Output {
        try apply("MaxPool", [value.output], name: name,
                  attrs: ["ksize": .ints(ksize), "strides": .ints(strides), "padding": .string(padding), "data_format": .string(dataFormat)])
    }

    /// Averages only the window's elements inside the input (SAME padding does not count).
    public func avgPool(_ value: some OutputConvertible, ksize: [Int], strides: [Int], padding: String, dataFormat: String = "NHWC",
                        name: String = "AvgPool") throws -> Output {
        try apply("AvgPool", [value.output], name: name,
                  attrs: ["ksize": .ints(ksize), "strides": .ints(strides), "padding": .string(padding), "data_format": .string(dataFormat)])
    }

    /// Mean and population variance over `axes` (TensorFlow's tf.nn.moments).
    public func moments(_ x: some OutputConvertible, axes: [Int], keepDims: Bool = false, name: String = "moments") throws -> (mean: Output, variance: Output) {
        try nameScope(name) {
            let mean = try reduceMean(x, axes: axes, keepDims: true, name: "mean")
            let sq = try squaredDifference(x, mean)
            let variance = try reduceMean(sq, axes: axes, keepDims: true, name: "variance")
            if keepDims { return (mean, variance) }
            return (try squeeze(mean, axes: axes, name: "Squeeze"), try squeeze(variance, axes: axes, name: "Squeeze_1"))
        }
    }

    /// (x - mean) / sqrt(variance + epsilon) * scale + offset; scale and offset may be nil.
    public func batchNormalization(_ x: some OutputConvertible, mean: some OutputConvertible, variance: some OutputConvertible,
                                   offset: Output?, scale: Output?, varianceEpsilon: Double, name: String = "batchnorm") throws -> Output {
        let t = x.output
        return try nameScope(name) {
            var inv = try rsqrt(add(variance, constant(varianceEpsilon, dtype: t.dtype, name: "add/y")))
            if let scale { inv = try multiply(inv, scale) }
            let shifted = try multiply(mean, inv)
            let bias = offset != nil ? try subtract(offset!, shifted) : try negative(shifted)
            return try add(multiply(t, inv, name: "mul_1"), bias, name: "add_1")
        }
    }

    /// FusedBatchNormV3: returns y, the batch mean and the (Bessel-corrected) batch variance in
    /// training; in inference `mean` and `variance` are used as given.
    public func fusedBatchNorm(_ x: some OutputConvertible, scale: some OutputConvertible, offset: some OutputConvertible,
                               mean: Output? = nil, variance: Output? = nil, epsilon: Double = 0.001, isTraining: Bool = true,
                               name: String = "FusedBatchNormV3") throws -> (y: Output, mean: Output, variance: Output) {
        let t = x.output
        let empty = try constant(Tensor(zeros: t.dtype, shape: [0]), name: name + "/Const")
        let m = mean ?? empty, v = variance ?? empty
        let op = try addOperation("FusedBatchNormV3", name: name, inputs: [t, scale.output, offset.output, m, v],
                                  attrs: ["T": .type(t.dtype), "U": .type(scale.output.dtype), "epsilon": .float(epsilon),
                                          "is_training": .bool(isTraining), "data_format": .string("NHWC")])
        return (op.output(0), op.output(1), op.output(2))
    }
}
