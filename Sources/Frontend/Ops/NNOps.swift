import KilnIR

/// Neural-network ops: softmax family, cross entropies, bias_add, convolution, pooling, batch norm.
public enum NNOps {
    /// The image layout of the NN ops (Kiln runs NHWC).
    public static let dataFormat = Attr<String>("data_format", default: "NHWC")
    public enum FusedBatchNorm {
        public static let epsilon = Attr<Double>("epsilon", default: 0.0001)
        public static let isTraining = Attr<Bool>("is_training", default: true)
        public static let exponentialAvgFactor = Attr<Double>("exponential_avg_factor", default: 1)
    }

    static func softmaxLike(_ name: String, log: Bool) -> OpDef {
        OpDef(name, arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0).isFloatingPoint else { throw ctx.error("\(name) needs floating-point logits") }
            if let r = ctx.shape(0).rank, r < 1 { throw ctx.error("logits must have rank 1 or more") }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            return [.value(try softmax(&ctx, x, axis: ctx.type(x).rank - 1, log: log))]
        })
    }

    /// exp(x - max) / sum, or its logarithm, along `axis`; subtracting the max keeps large logits finite.
    static func softmax(_ ctx: inout LoweringContext, _ x: Int, axis: Int, log: Bool) throws -> Int {
        let m = try ctx.reduce(.max, x, axes: [axis], keepDims: true)
        let shifted = try ctx.binary(.sub, x, m)
        let e = try ctx.unary(.exp, shifted)
        let s = try ctx.reduce(.sum, e, axes: [axis], keepDims: true)
        return log ? try ctx.binary(.sub, shifted, ctx.unary(.log, s)) : try ctx.binary(.div, e, s)
    }

    /// loss = -sum(labels * log_softmax(logits)), backprop = softmax(logits) - labels.
    static func crossEntropy(_ ctx: inout LoweringContext, logits: Int, labels: Int) throws -> [LoweredValue] {
        let axis = ctx.type(logits).rank - 1
        let logp = try softmax(&ctx, logits, axis: axis, log: true)
        let loss = try ctx.unary(.neg, ctx.reduce(.sum, ctx.binary(.mul, labels, logp), axes: [axis], keepDims: false))
        let backprop = try ctx.binary(.sub, ctx.unary(.exp, logp), labels)
        return [.value(loss), .value(backprop)]
    }

    static func windowOutput(_ n: Int?, k: Int, s: Int, d: Int = 1, same: Bool, _ error: (String) -> KilnError) throws -> (out: Int?, lo: Int, hi: Int) {
        guard k >= 1, s >= 1, d >= 1 else { throw error("window \(k), stride \(s) and dilation \(d) must all be at least 1") }
        // A dilated window or its padding beyond 2^62 could only come from a hostile attr.
        guard let span = Sizes.product(k - 1, d), span < 1 << 62 else { throw error("window \(k) with dilation \(d) is too large to address") }
        let eff = span + 1
        guard let n else { return (nil, 0, 0) }
        if same {
            let out = n / s + (n % s == 0 ? 0 : 1)
            guard let reach = Sizes.product(Swift.max(out - 1, 0), s).flatMap({ Sizes.sum($0, eff) }) else {
                throw error("window \(eff) with stride \(s) over an input of size \(n) is too large to address")
            }
            let total = Swift.max(reach - n, 0)
            return (out, total / 2, total - total / 2)
        }
        guard n >= eff else {
            throw error("Computed output size would be negative: \((n - eff) / s + 1) [input_size: \(n), effective_filter_size: \(eff), stride: \(s)]")
        }
        return ((n - eff) / s + 1, 0, 0)
    }

    static func padding(_ ctx: [String: AttrValue], _ error: (String) -> KilnError) throws -> Bool {
        switch ctx["padding"]?.string ?? "VALID" {
        case "SAME": return true
        case "VALID": return false
        case let p: throw error("padding '\(p)' is not supported (SAME or VALID)")
        }
    }

    static func checkNHWC(_ attrs: [String: AttrValue], _ error: (String) -> KilnError) throws {
        let f = attrs[dataFormat]
        if f != "NHWC" { throw KilnError.unimplemented(error("data_format \(f) is not supported yet; use NHWC").message) }
    }

    static func four(_ attrs: [String: AttrValue], _ key: String, _ error: (String) -> KilnError) throws -> [Int] {
        let v = attrs[key]?.ints ?? [1, 1, 1, 1]
        // TensorFlow's kernels read these attrs as int32 and refuse larger values.
        if let big = v.first(where: { Int32(exactly: $0) == nil }) { throw error("Attr \(key) has value \(big) out of range for an int32") }
        guard v.count == 4, v[0] == 1, v[3] == 1, v[1] >= 1, v[2] >= 1 else { throw error("\(key) must be [1, h, w, 1] with h and w at least 1, got \(v)") }
        return v
    }

    static let conv2d = OpDef("Conv2D", arity: .exactly(2),
                              attrs: ["dilations": .ints([1, 1, 1, 1]), "use_cudnn_on_gpu": .bool(true)], infer: { ctx in
        let d = try ctx.sameDType()
        guard d.isFloatingPoint else { throw ctx.error("Conv2D needs floating-point inputs") }
        try checkNHWC(ctx.attrs, ctx.error)
        let st = try four(ctx.attrs, "strides", ctx.error), dil = try four(ctx.attrs, "dilations", ctx.error)
        let same = try padding(ctx.attrs, ctx.error)
        let x = ctx.shape(0).dims ?? [nil, nil, nil, nil], f = ctx.shape(1).dims ?? [nil, nil, nil, nil]
        guard x.count == 4, f.count == 4 else { throw ctx.error("Conv2D needs a rank-4 input and filter") }
        if let c = x[3], let fc = f[2], c != fc { throw ctx.error("input depth \(c) must equal the filter's in-channels \(fc)") }
        guard let kh = f[0], let kw = f[1] else { return [(d, Shape(dims: [x[0], nil, nil, f[3]]))] }
        let h = try windowOutput(x[1], k: kh, s: st[1], d: dil[1], same: same, ctx.error)
        let w = try windowOutput(x[2], k: kw, s: st[2], d: dil[2], same: same, ctx.error)
        return [(d, Shape(dims: [x[0], h.out, w.out, f[3]]))]
    }, lower: { ctx in
        let (x, f) = (try ctx.value(0), try ctx.value(1))
        let xs = ctx.type(x).shape, fs = ctx.type(f).shape
        let st = try four(ctx.attrs, "strides", ctx.error), dil = try four(ctx.attrs, "dilations", ctx.error)
        let same = try padding(ctx.attrs, ctx.error)
        let h = try windowOutput(xs[1], k: fs[0], s: st[1], d: dil[1], same: same, ctx.error)
        let w = try windowOutput(xs[2], k: fs[1], s: st[2], d: dil[2], same: same, ctx.error)
        return [.value(try convolution(&ctx, x, f, strides: [st[1], st[2]], dilations: [dil[1], dil[2]], padLow: [h.lo, w.lo],
                                       padHigh: [h.hi, w.hi], out: [h.out!, w.out!]))]
    }).declaring(dataFormat).gradient(NNGradients.conv2D)

    /// The NHWC image `x` convolved with filter `f` [KH, KW, C, CO] into [N, out[0], out[1], CO]:
    /// one matrix product of its patches [N*OH*OW, KH*KW*C] with the filter as [KH*KW*C, CO]
    /// (the kernels read the image in place where they can).
    static func convolution(_ ctx: inout LoweringContext, _ x: Int, _ f: Int, strides: [Int], dilations: [Int], padLow: [Int], padHigh: [Int],
                            out: [Int]) throws -> Int {
        let n = ctx.type(x).shape[0], fs = ctx.type(f).shape
        let p = try ctx.emit(.patches(window: [fs[0], fs[1]], strides: strides, dilations: dilations, padLow: padLow, padHigh: padHigh), [x])
        let rows = n * out[0] * out[1], k = fs[0] * fs[1] * fs[2]
        let prod = try ctx.emit(.dot(transposeA: false, transposeB: false), [ctx.reshape(p, [rows, k]), ctx.reshape(f, [k, fs[3]])])
        return try ctx.reshape(prod, [n, out[0], out[1], fs[3]])
    }

    static func pool(_ name: String, _ r: ReduceOp) -> OpDef {
        OpDef(name, arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0).isNumeric else { throw ctx.error("\(name) does not support dtype \(ctx.dtype(0))") }
            try checkNHWC(ctx.attrs, ctx.error)
            let k = try four(ctx.attrs, "ksize", ctx.error), st = try four(ctx.attrs, "strides", ctx.error)
            let same = try padding(ctx.attrs, ctx.error)
            let x = ctx.shape(0).dims ?? [nil, nil, nil, nil]
            guard x.count == 4 else { throw ctx.error("\(name) needs a rank-4 input") }
            let h = try windowOutput(x[1], k: k[1], s: st[1], same: same, ctx.error)
            let w = try windowOutput(x[2], k: k[2], s: st[2], same: same, ctx.error)
            return [(ctx.dtype(0), Shape(dims: [x[0], h.out, w.out, x[3]]))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let xs = ctx.type(x).shape
            let k = try four(ctx.attrs, "ksize", ctx.error), st = try four(ctx.attrs, "strides", ctx.error)
            let same = try padding(ctx.attrs, ctx.error)
            let h = try windowOutput(xs[1], k: k[1], s: st[1], same: same, ctx.error)
            let w = try windowOutput(xs[2], k: k[2], s: st[2], same: same, ctx.error)
            let pooled = try ctx.emit(.reduceWindow(r, window: k, strides: st, padLow: [0, h.lo, w.lo, 0], padHigh: [0, h.hi, w.hi, 0]), [x])
            guard r == .sum else { return [.value(pooled)] }
            // Average over the window's elements inside the image (padding does not count).
            var counts: [Double] = []
            for oh in 0..<h.out! {
                let rows = (0..<k[1]).filter { (0..<xs[1]).contains(oh * st[1] + $0 - h.lo) }.count
                for ow in 0..<w.out! {
                    let cols = (0..<k[2]).filter { (0..<xs[2]).contains(ow * st[2] + $0 - w.lo) }.count
                    counts.append(Double(rows * cols))
                }
            }
            let c = ctx.builder.constant(try Tensor(shape: [1, h.out!, w.out!, 1], scalars: counts).converted(to: ctx.type(x).dtype))
            return [.value(try ctx.binary(.div, pooled, c))]
        }).declaring(dataFormat)
    }

    static let defs: [OpDef] = [
        softmaxLike("Softmax", log: false).gradient(NNGradients.softmax), softmaxLike("LogSoftmax", log: true).gradient(NNGradients.logSoftmax),
        OpDef("SoftmaxCrossEntropyWithLogits", arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            guard ctx.shape(0).isCompatible(with: ctx.shape(1)) else { throw ctx.error("logits and labels must have the same shape") }
            guard let dims = (ctx.shape(0).merged(with: ctx.shape(1)) ?? ctx.shape(0)).dims else { return [(d, .unknown), (d, .unknown)] }
            guard dims.count == 2 else { throw ctx.error("logits and labels must be 2-dimensional") }
            return [(d, Shape(dims: [dims[0]])), (d, Shape(dims: dims))]
        }, lower: { ctx in try crossEntropy(&ctx, logits: try ctx.value(0), labels: try ctx.value(1)) }).gradient(NNGradients.softmaxCrossEntropyWithLogits),
        OpDef("SparseSoftmaxCrossEntropyWithLogits", arity: .exactly(2), infer: { ctx in
            guard ctx.dtype(1) == .int32 || ctx.dtype(1) == .int64 else { throw ctx.error("labels must be int32 or int64") }
            let dims = ctx.shape(0).dims ?? [nil, nil]
            guard dims.count == 2 else { throw ctx.error("logits must be 2-dimensional") }
            return [(ctx.dtype(0), Shape(dims: [dims[0]])), (ctx.dtype(0), Shape(dims: dims))]
        }, lower: { ctx in
            let logits = try ctx.value(0), labels = try ctx.value(1)
            let s = ctx.type(logits).shape
            let position = try ctx.emit(.iota(dtype: .int64, shape: s, axis: 1), [])
            let checked = try ctx.check(labels, .index(bounds: [s[1]]), "Received a label value of {value} which is outside the valid range of [0, \(s[1])).")
            let wide = try ctx.emit(.broadcast(shape: s, dims: [0]), [ctx.cast(checked, .int64)])
            let oneHot = try ctx.cast(ctx.emit(.compare(.eq), [position, wide]), ctx.type(logits).dtype)
            return try crossEntropy(&ctx, logits: logits, labels: oneHot)
        }).gradient(NNGradients.sparseSoftmaxCrossEntropyWithLogits),
        OpDef("L2Loss", arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0).isFloatingPoint else { throw ctx.error("L2Loss needs a floating-point input") }
            return [(ctx.dtype(0), .scalar)]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = try ctx.reduce(.sum, ctx.binary(.mul, x, x), axes: Array(0..<ctx.type(x).rank), keepDims: false)
            return [.value(try ctx.binary(.div, s, scalar: 2))]
        }).gradient(NNGradients.l2Loss),
        OpDef("BiasAdd", arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            guard ctx.shape(1).rank ?? 1 == 1 else { throw ctx.error("bias must be 1-dimensional") }
            let nchw = ctx.attrs[dataFormat] == "NCHW"
            if let dims = ctx.shape(0).dims {
                guard dims.count >= 2 else { throw ctx.error("Shape must be at least rank 2") }
                let c = nchw ? dims[1] : dims.last!
                if let c, let b = ctx.shape(1).dims?.first ?? nil, c != b {
                    throw ctx.error("Dimensions must be equal, but are \(c) and \(b)")
                }
            }
            return [(d, ctx.shape(0))]
        }, lower: { ctx in
            let (x, bias) = (try ctx.value(0), try ctx.value(1))
            let s = ctx.type(x).shape
            let dim = ctx.attrs[dataFormat] == "NCHW" ? 1 : s.count - 1
            let b = try ctx.emit(.broadcast(shape: s, dims: [dim]), [bias])
            return [.value(try ctx.emit(.binary(.add), [x, b]))]
        }).declaring(dataFormat).gradient(NNGradients.biasAdd),
        conv2d, pool("MaxPool", .max).gradient(NNGradients.maxPool), pool("AvgPool", .sum).gradient(NNGradients.avgPool),
        fusedBatchNorm("FusedBatchNormV3", outputs: 6).gradient(NNGradients.fusedBatchNorm),
        fusedBatchNorm("FusedBatchNorm", outputs: 5).gradient(NNGradients.fusedBatchNorm),
    ]

    /// y = (x - mean) * rsqrt(var + eps) * scale + offset over N, H, W. In training the batch's
    /// statistics are used and the reported variance is Bessel-corrected, as TensorFlow reports it.
    static func fusedBatchNorm(_ name: String, outputs: Int) -> OpDef {
        OpDef(name, arity: .exactly(5), infer: { ctx in
            guard ctx.dtype(0).isFloatingPoint else { throw ctx.error("\(name) needs a floating-point input") }
            try checkNHWC(ctx.attrs, ctx.error)
            if let r = ctx.shape(0).rank, r != 4 { throw ctx.error("input must be 4-dimensional") }
            let c = Shape(dims: [ctx.shape(0).dims?[3] ?? ctx.shape(1).dims?.first ?? nil])
            return [(ctx.dtype(0), ctx.shape(0))] + Array(repeating: (ctx.dtype(1), c), count: outputs - 1)
        }, lower: { ctx in
            let scale = try ctx.value(1), offset = try ctx.value(2)
            // Half activations (T) with float32 statistics (U): TensorFlow computes in U and rounds y to T.
            let t = ctx.type(try ctx.value(0)).dtype, u = ctx.type(scale).dtype
            let x = t == u ? try ctx.value(0) : try ctx.cast(ctx.value(0), u)
            let eps = ctx.attrs[FusedBatchNorm.epsilon]
            let s = ctx.type(x).shape
            var mean: Int, variance: Int, reported: Int
            if ctx.attrs[FusedBatchNorm.isTraining] {
                mean = try ctx.mean(x, axes: [0, 1, 2], keepDims: false)
                let centered = try ctx.binary(.sub, x, mean)
                variance = try ctx.mean(ctx.binary(.mul, centered, centered), axes: [0, 1, 2], keepDims: false)
                let n = Double(s[0] * s[1] * s[2])
                reported = try ctx.binary(.mul, variance, scalar: n / Swift.max(n - 1, 1))
            } else {
                mean = try ctx.value(3)
                variance = try ctx.value(4)
                reported = variance
            }
            let inv = try ctx.binary(.mul, ctx.unary(.rsqrt, ctx.binary(.add, variance, scalar: eps)), scale)
            let wide = try ctx.binary(.add, ctx.binary(.mul, x, inv), ctx.binary(.sub, offset, ctx.binary(.mul, mean, inv)))
            let y = t == u ? wide : try ctx.cast(wide, t)
            let reserve = Array(repeating: LoweredValue.value(mean), count: outputs - 3)
            return [.value(y), .value(mean), .value(reported)] + reserve
        }).declaring(dataFormat, FusedBatchNorm.epsilon, FusedBatchNorm.isTraining, FusedBatchNorm.exponentialAvgFactor)
    }
}
