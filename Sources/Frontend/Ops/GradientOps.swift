import KilnIR

/// Ops that gradient graphs are built from (TensorFlow's *Grad ops and their helpers).
public enum GradientOps {
    /// Pack's and Unpack's axis.
    public static let packAxis = Attr<Int>("axis", default: 0)
    /// CheckNumerics's and PreventGradient's message.
    public static let message = Attr<String>("message", default: "")

    /// `dy ⊙ f(y or x)` with the same shape and dtype as its first input.
    static func elementwiseGrad(_ name: String, attrs: [String: AttrValue] = [:],
                                _ lower: @escaping @Sendable (inout LoweringContext, Int, Int) throws -> Int) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: attrs, infer: { ctx in
            let d = try ctx.sameDType()
            guard d.isFloatingPoint else { throw ctx.error("\(name) needs floating-point inputs") }
            return [(d, ctx.shape(0).merged(with: ctx.shape(1)) ?? ctx.shape(0))]
        }, lower: { ctx in [.value(try lower(&ctx, try ctx.value(0), try ctx.value(1)))] })
    }

    static let defs: [OpDef] = [
        // (y, dy) ops.
        elementwiseGrad("SigmoidGrad") { ctx, y, dy in try ctx.binary(.mul, dy, ctx.binary(.mul, y, ctx.binary(.sub, ctx.scalar(1, ctx.type(y).dtype), y))) }.gradientNotImplemented(),
        elementwiseGrad("TanhGrad") { ctx, y, dy in try ctx.binary(.mul, dy, ctx.binary(.sub, ctx.scalar(1, ctx.type(y).dtype), ctx.binary(.mul, y, y))) }.gradientNotImplemented(),
        elementwiseGrad("SqrtGrad") { ctx, y, dy in try ctx.binary(.div, ctx.binary(.mul, dy, scalar: 0.5), y) }.gradientNotImplemented(),
        elementwiseGrad("RsqrtGrad") { ctx, y, dy in try ctx.binary(.mul, ctx.binary(.mul, dy, scalar: -0.5), ctx.binary(.mul, y, ctx.binary(.mul, y, y))) }.gradientNotImplemented(),
        // (dy, x-or-y) ops.
        elementwiseGrad("ReluGrad") { ctx, dy, x in try ctx.select(ctx.compare(.gt, x, ctx.scalar(0, ctx.type(x).dtype)), dy, ctx.full(0, ctx.type(dy).dtype, ctx.type(dy).shape)) }.gradientNotImplemented(),
        elementwiseGrad("Relu6Grad") { ctx, dy, x in
            let d = ctx.type(x).dtype
            let inside = try ctx.binary(.and, ctx.compare(.gt, x, ctx.scalar(0, d)), ctx.compare(.lt, x, ctx.scalar(6, d)))
            return try ctx.select(inside, dy, ctx.full(0, d, ctx.type(dy).shape))
        }.gradientNotImplemented(),
        elementwiseGrad("EluGrad") { ctx, dy, y in
            try ctx.select(ctx.compare(.gt, y, ctx.scalar(0, ctx.type(y).dtype)), dy, ctx.binary(.mul, dy, ctx.binary(.add, y, scalar: 1)))
        }.gradientNotImplemented(),
        elementwiseGrad("SoftsignGrad") { ctx, dy, x in
            let d = try ctx.binary(.add, ctx.unary(.abs, x), scalar: 1)
            return try ctx.binary(.div, dy, ctx.binary(.mul, d, d))
        }.gradientNotImplemented(),
        elementwiseGrad("SoftplusGrad") { ctx, dy, x in try ctx.binary(.mul, dy, ctx.unary(.sigmoid, x)) }.gradientNotImplemented(),
        elementwiseGrad("LeakyReluGrad") { ctx, dy, x in
            let alpha = ctx.attrs[ElementwiseOps.LeakyRelu.alpha]
            return try ctx.select(ctx.compare(.gt, x, ctx.scalar(0, ctx.type(x).dtype)), dy, ctx.binary(.mul, dy, scalar: alpha))
        }.declaring(ElementwiseOps.LeakyRelu.alpha).gradientNotImplemented(),

        OpDef("BroadcastGradientArgs", arity: .exactly(2), infer: { ctx in
            [(ctx.dtype(0), Shape(dims: [nil])), (ctx.dtype(0), Shape(dims: [nil]))]
        }, lower: { ctx in
            let a = try ctx.ints(0), b = try ctx.ints(1)
            guard let out = ShapeFunctions.broadcast(a, b) else { throw ctx.error("Incompatible shapes: \(a) vs. \(b)") }
            func axes(_ s: [Int]) -> [Int] {
                let lead = out.count - s.count
                return (0..<out.count).filter { $0 < lead || (s[$0 - lead] == 1 && out[$0] != 1) }
            }
            let d = ctx.type(try ctx.value(0)).dtype
            return try [axes(a), axes(b)].map { .value(ctx.builder.constant(try Tensor(literal: $0.map(Int64.init), dtype: d))) }
        }).integerInputs([IntegerInput(index: 0, attr: "T", form: .vector), IntegerInput(index: 1, attr: "T", form: .vector)]).notDifferentiable(),

        OpDef("BroadcastTo", arity: .exactly(2), attrs: ["Tidx": .type(.int32)], infer: { ctx in
            [(ctx.dtype(0), ctx.shapeValue(1))]
        }, lower: { ctx in [.value(try ctx.broadcast(try ctx.value(0), to: try ctx.ints(1)))] }).integerInputs([IntegerInput(index: 1, attr: "Tidx", form: .vector)]).gradient(ArrayGradients.broadcastTo),

        OpDef("AddN", arity: .atLeast(1), infer: { ctx in
            let d = try ctx.sameDType()
            var s = ctx.shape(0)
            for i in ctx.inputs.indices {
                guard let m = s.merged(with: ctx.shape(i)) else { throw ctx.error("AddN inputs must have one shape") }
                s = m
            }
            return [(d, s)]
        }, lower: { ctx in
            // A balanced tree of adds: rounding error grows with its depth, log2(N), where a
            // left-to-right chain's grows with N (and so would its fused expression's depth).
            var level = try ctx.op.inputs.indices.map { try ctx.value($0) }
            while level.count > 1 {
                var next: [Int] = []
                next.reserveCapacity((level.count + 1) / 2)
                for k in stride(from: 0, to: level.count - 1, by: 2) { next.append(try ctx.emit(.binary(.add), [level[k], level[k + 1]])) }
                if level.count % 2 == 1 { next.append(level[level.count - 1]) }
                level = next
            }
            return [.value(level[0])]
        }).gradient(MathGradients.addN),

        OpDef("StopGradient", arity: .exactly(1), infer: { ctx in [(ctx.dtype(0), ctx.shape(0))] },
              lower: { ctx in [ctx.forward(0)] }).notDifferentiable(),
        OpDef("PreventGradient", arity: .exactly(1), infer: { ctx in [(ctx.dtype(0), ctx.shape(0))] },
              lower: { ctx in [ctx.forward(0)] }).declaring(message).gradient(ArrayGradients.preventGradient),

        OpDef("Pack", arity: .atLeast(1), infer: { ctx in
            let d = try ctx.sameDType()
            var s = ctx.shape(0)
            for i in ctx.inputs.indices {
                guard let m = s.merged(with: ctx.shape(i)) else { throw ctx.error("Pack inputs must have one shape") }
                s = m
            }
            guard var dims = s.dims else { return [(d, .unknown)] }
            let a = ctx.attrs[packAxis]
            guard a >= -dims.count - 1 && a <= dims.count else { throw ctx.error("axis \(a) is out of range") }
            dims.insert(ctx.inputs.count, at: a < 0 ? a + dims.count + 1 : a)
            return [(d, Shape(dims: dims))]
        }, lower: { ctx in
            let values = try (0..<ctx.op.inputs.count).map { try ctx.value($0) }
            var s = ctx.type(values[0]).shape
            let a0 = ctx.attrs[packAxis]
            let a = a0 < 0 ? a0 + s.count + 1 : a0
            s.insert(1, at: a)
            let expanded = try values.map { try ctx.reshape($0, s) }
            return [.value(expanded.count == 1 ? expanded[0] : try ctx.emit(.concat(axis: a), expanded))]
        }).declaring(packAxis).gradient(ArrayGradients.pack),

        OpDef("BiasAddGrad", arity: .exactly(1), infer: { ctx in
            let nchw = ctx.attrs[NNOps.dataFormat] == "NCHW"
            let c = ctx.shape(0).dims.map { nchw ? $0[1] : $0.last! } ?? nil
            return [(ctx.dtype(0), Shape(dims: [c]))]
        }, lower: { ctx in
            let g = try ctx.value(0)
            let r = ctx.type(g).rank
            let keep = ctx.attrs[NNOps.dataFormat] == "NCHW" ? 1 : r - 1
            return [.value(try ctx.reduce(.sum, g, axes: (0..<r).filter { $0 != keep }, keepDims: false))]
        }).declaring(NNOps.dataFormat).gradientNotImplemented(),

        // data [N, ...], ids [N] -> [num_segments, ...]: a one-hot matrix product, so repeated ids accumulate.
        OpDef("UnsortedSegmentSum", arity: .exactly(3), infer: { ctx in
            let rank = ctx.shape(1).rank ?? 1
            let n = ctx.ints(2)?.first
            return [(ctx.dtype(0), ctx.shape(0).dims.map { Shape(dims: [n] + Array($0.dropFirst(rank))) } ?? .unknown)]
        }, lower: { ctx in
            let data = try ctx.value(0), ids = try ctx.value(1)
            let k = try ctx.ints(2)[0]
            let ds = ctx.type(data).shape, idShape = ctx.type(ids).shape
            let n = idShape.reduce(1, *), rest = Array(ds.dropFirst(idShape.count))
            // Negative ids drop their row (TensorFlow's rule); ids past the end are an error.
            let checked = try ctx.check(ids, .below(k), "segment_ids{index} = {value} is out of range [0, \(k))")
            let flatIds = try ctx.cast(ctx.reshape(checked, [n]), .int64)
            let hot = try ctx.emit(.compare(.eq), [ctx.emit(.broadcast(shape: [n, k], dims: [0]), [flatIds]),
                                                   ctx.emit(.iota(dtype: .int64, shape: [n, k], axis: 1), [])])
            let d = ctx.type(data).dtype
            let m = try ctx.reshape(data, [n, rest.reduce(1, *)])
            let sum = try ctx.emit(.dot(transposeA: true, transposeB: false), [ctx.cast(hot, d), m])
            return [.value(try ctx.reshape(sum, [k] + rest))]
        }).integerInputs([IntegerInput(index: 1, attr: "Tindices", form: .any), IntegerInput(index: 2, attr: "Tnumsegments", form: .scalar)]).gradient(HelperGradients.unsortedSegmentSum),

        OpDef("Conv2DBackpropInput", arity: .exactly(3), attrs: ["dilations": .ints([1, 1, 1, 1])], infer: { ctx in
            [(ctx.dtype(1), ctx.ints(0).map { Shape($0) } ?? Shape(dims: [nil, nil, nil, nil]))]
        }, lower: { ctx in
            let sizes = try ctx.ints(0)
            let (f, dy) = (try ctx.value(1), try ctx.value(2))
            let fs = ctx.type(f).shape, ds = ctx.type(dy).shape
            let (st, dil, same) = (try NNOps.four(ctx.attrs, "strides", ctx.error), try NNOps.four(ctx.attrs, "dilations", ctx.error), try NNOps.padding(ctx.attrs, ctx.error))
            let h = try NNOps.windowOutput(sizes[1], k: fs[0], s: st[1], d: dil[1], same: same, ctx.error)
            let w = try NNOps.windowOutput(sizes[2], k: fs[1], s: st[2], d: dil[2], same: same, ctx.error)
            if st[1] == 1, st[2] == 1, dil[1] == 1, dil[2] == 1, h.out == ds[1], w.out == ds[2], h.lo < fs[0], h.hi < fs[0], w.lo < fs[1], w.hi < fs[1] {
                // With unit strides and dilations the input's gradient is itself a convolution:
                // of dy, padded by what the forward padding left of each window, with the filter
                // turned half a turn and its channels swapped. The kernels then run it as they
                // run a forward convolution (a 3x3 one by Winograd's transforms) instead of a
                // product of every patch entry summed back onto the image.
                let turned = try GradientHelperOps.reverse(&ctx, f, axes: [0, 1])
                let swapped = try ctx.emit(.transpose(perm: [0, 1, 3, 2]), [turned])
                return [.value(try NNOps.convolution(&ctx, dy, swapped, strides: [1, 1], dilations: [1, 1],
                                                     padLow: [fs[0] - 1 - h.lo, fs[1] - 1 - w.lo], padHigh: [fs[0] - 1 - h.hi, fs[1] - 1 - w.hi],
                                                     out: [sizes[1], sizes[2]]))]
            }
            // dPatches = dy · Wᵀ, then every patch entry is summed back onto its image position.
            let rows = ds[0] * ds[1] * ds[2], k = fs[0] * fs[1] * fs[2]
            let dp = try ctx.emit(.dot(transposeA: false, transposeB: true), [ctx.reshape(dy, [rows, fs[3]]), ctx.reshape(f, [k, fs[3]])])
            let patches = try ctx.reshape(dp, [ds[0], ds[1], ds[2], k])
            return [.value(try ctx.emit(.unpatches(window: [fs[0], fs[1]], strides: [st[1], st[2]], dilations: [dil[1], dil[2]],
                                                   padLow: [h.lo, w.lo], padHigh: [h.hi, w.hi], image: [sizes[1], sizes[2]]), [patches]))]
        }).integerInputs([IntegerInput(index: 0, attr: "input_sizes", form: .vector, allowed: [.int32])]).declaring(NNOps.dataFormat).gradientNotImplemented(),

        OpDef("Conv2DBackpropFilter", arity: .exactly(3), attrs: ["dilations": .ints([1, 1, 1, 1])], infer: { ctx in
            [(ctx.dtype(0), ctx.ints(1).map { Shape($0) } ?? Shape(dims: [nil, nil, nil, nil]))]
        }, lower: { ctx in
            // dW = patches(x)ᵀ · dy.
            let (x, sizes, dy) = (try ctx.value(0), try ctx.ints(1), try ctx.value(2))
            let xs = ctx.type(x).shape, ds = ctx.type(dy).shape
            let (st, dil, same) = (try NNOps.four(ctx.attrs, "strides", ctx.error), try NNOps.four(ctx.attrs, "dilations", ctx.error), try NNOps.padding(ctx.attrs, ctx.error))
            let h = try NNOps.windowOutput(xs[1], k: sizes[0], s: st[1], d: dil[1], same: same, ctx.error)
            let w = try NNOps.windowOutput(xs[2], k: sizes[1], s: st[2], d: dil[2], same: same, ctx.error)
            let p = try ctx.emit(.patches(window: [sizes[0], sizes[1]], strides: [st[1], st[2]], dilations: [dil[1], dil[2]],
                                          padLow: [h.lo, w.lo], padHigh: [h.hi, w.hi]), [x])
            let rows = ds[0] * ds[1] * ds[2], k = sizes[0] * sizes[1] * sizes[2]
            let dw = try ctx.emit(.dot(transposeA: true, transposeB: false), [ctx.reshape(p, [rows, k]), ctx.reshape(dy, [rows, sizes[3]])])
            return [.value(try ctx.reshape(dw, sizes))]
        }).integerInputs([IntegerInput(index: 1, attr: "filter_sizes", form: .vector, allowed: [.int32])]).declaring(NNOps.dataFormat).gradientNotImplemented(),

        OpDef("MaxPoolGrad", arity: .exactly(3), infer: { ctx in [(ctx.dtype(0), ctx.shape(0))] },
              lower: { ctx in
            // Each window's gradient goes to its first maximum; padding never wins.
            let (x, dy) = (try ctx.value(0), try ctx.value(2))
            let xs = ctx.type(x).shape, ds = ctx.type(dy).shape, d = ctx.type(x).dtype
            let k = try NNOps.four(ctx.attrs, "ksize", ctx.error), st = try NNOps.four(ctx.attrs, "strides", ctx.error)
            let same = try NNOps.padding(ctx.attrs, ctx.error)
            let h = try NNOps.windowOutput(xs[1], k: k[1], s: st[1], same: same, ctx.error)
            let w = try NNOps.windowOutput(xs[2], k: k[2], s: st[2], same: same, ctx.error)
            let geometry = Op.patches(window: [k[1], k[2]], strides: [st[1], st[2]], dilations: [1, 1], padLow: [h.lo, w.lo], padHigh: [h.hi, w.hi])
            let kk = k[1] * k[2], c = xs[3]
            let windowShape = [ds[0], ds[1], ds[2], kk, c]
            var masked = try ctx.reshape(ctx.emit(geometry, [x]), windowShape)
            if h.lo + h.hi + w.lo + w.hi > 0 {
                let valid = try ctx.reshape(ctx.emit(geometry, [ctx.full(1, d, xs)]), windowShape)
                masked = try ctx.select(ctx.compare(.ne, valid, ctx.scalar(0, d)), masked, ctx.full(-.infinity, d, windowShape))
            }
            // Window positions as int32 (half the bytes of int64, twice the lanes in the compare)
            // wherever a window's positions fit.
            let position: DType = kk <= Int(Int32.max) ? .int32 : .int64
            let best = try ctx.emit(.argReduce(.argmax, axis: 3, outType: position), [masked])
            let hit = try ctx.emit(.compare(.eq), [ctx.emit(.iota(dtype: position, shape: windowShape, axis: 3), []),
                                                   ctx.emit(.broadcast(shape: windowShape, dims: [0, 1, 2, 4]), [best])])
            let spread = try ctx.emit(.broadcast(shape: windowShape, dims: [0, 1, 2, 4]), [dy])
            let contrib = try ctx.select(hit, spread, ctx.full(0, d, windowShape))
            return [.value(try ctx.emit(.unpatches(window: [k[1], k[2]], strides: [st[1], st[2]], dilations: [1, 1], padLow: [h.lo, w.lo],
                                                   padHigh: [h.hi, w.hi], image: [xs[1], xs[2]]), [ctx.reshape(contrib, [ds[0], ds[1], ds[2], kk * c])]))]
        }).declaring(NNOps.dataFormat).gradientNotImplemented(),

        OpDef("AvgPoolGrad", arity: .exactly(2), infer: { ctx in
            [(ctx.dtype(1), ctx.ints(0).map { Shape($0) } ?? Shape(dims: [nil, nil, nil, nil]))]
        }, lower: { ctx in
            // Each window spreads dy / (its count of real elements) over those elements.
            let (sizes, dy) = (try ctx.ints(0), try ctx.value(1))
            let ds = ctx.type(dy).shape, d = ctx.type(dy).dtype
            let k = try NNOps.four(ctx.attrs, "ksize", ctx.error), st = try NNOps.four(ctx.attrs, "strides", ctx.error)
            let same = try NNOps.padding(ctx.attrs, ctx.error)
            let h = try NNOps.windowOutput(sizes[1], k: k[1], s: st[1], same: same, ctx.error)
            let w = try NNOps.windowOutput(sizes[2], k: k[2], s: st[2], same: same, ctx.error)
            let geometry = Op.patches(window: [k[1], k[2]], strides: [st[1], st[2]], dilations: [1, 1], padLow: [h.lo, w.lo], padHigh: [h.hi, w.hi])
            let kk = k[1] * k[2], c = sizes[3]
            let windowShape = [ds[0], ds[1], ds[2], kk, c]
            let valid = try ctx.reshape(ctx.emit(geometry, [ctx.full(1, d, sizes)]), windowShape)
            let count = try ctx.reduce(.sum, valid, axes: [3], keepDims: true)
            let share = try ctx.binary(.div, ctx.emit(.broadcast(shape: windowShape, dims: [0, 1, 2, 4]), [dy]), count)
            let contrib = try ctx.binary(.mul, share, valid)
            return [.value(try ctx.emit(.unpatches(window: [k[1], k[2]], strides: [st[1], st[2]], dilations: [1, 1], padLow: [h.lo, w.lo],
                                                   padHigh: [h.hi, w.hi], image: [sizes[1], sizes[2]]), [ctx.reshape(contrib, [ds[0], ds[1], ds[2], kk * c])]))]
        }).integerInputs([IntegerInput(index: 0, attr: "orig_input_shape", form: .vector, allowed: [.int32])]).declaring(NNOps.dataFormat).gradientNotImplemented(),

        OpDef("StridedSliceGrad", arity: .exactly(5), infer: { ctx in [(ctx.dtype(4), ctx.ints(0).map { Shape($0) } ?? .unknown)] }, lower: { ctx in
            // Scatter dy back into zeros: reverse negative strides, interleave zeros for strides
            // above one, then pad to the input's extent.
            let shape = try ctx.ints(0)
            let spec = try StridedSliceSpec(dims: shape, begin: try ctx.ints(1), end: try ctx.ints(2), strides: try ctx.ints(3),
                                            attrs: ctx.attrs, error: ctx.error)
            let sizes = spec.sizes.map { $0! }, starts = spec.starts.map { $0! }
            var g = try ctx.reshape(try ctx.value(4), sizes)
            let d = ctx.type(g).dtype
            for axis in 0..<shape.count where sizes[axis] > 0 {
                var s = ctx.type(g).shape
                var lowIndex = starts[axis]
                if spec.strides[axis] < 0 {
                    var start = s.map { _ in 0 }, strides = s.map { _ in 1 }
                    start[axis] = s[axis] - 1
                    strides[axis] = -1
                    g = try ctx.emit(.slice(start: start, strides: strides, shape: s), [g])
                    lowIndex = starts[axis] + (sizes[axis] - 1) * spec.strides[axis]
                }
                let step = abs(spec.strides[axis])
                if step > 1 {
                    var expanded = s
                    expanded.insert(1, at: axis + 1)
                    var zerosShape = expanded
                    zerosShape[axis + 1] = step - 1
                    let inter = try ctx.emit(.concat(axis: axis + 1), [ctx.reshape(g, expanded), ctx.full(0, d, zerosShape)])
                    s[axis] *= step
                    let flat = try ctx.reshape(inter, s)
                    var keep = s
                    keep[axis] = (sizes[axis] - 1) * step + 1
                    g = try ctx.emit(.slice(start: s.map { _ in 0 }, strides: s.map { _ in 1 }, shape: keep), [flat])
                    s = keep
                }
                var low = s.map { _ in 0 }, high = s.map { _ in 0 }
                low[axis] = lowIndex
                high[axis] = shape[axis] - lowIndex - s[axis]
                g = try ctx.emit(.pad(low: low, high: high, mode: .constant), [g, ctx.scalar(0, d)])
            }
            if sizes.contains(0) { g = try ctx.full(0, d, shape) }
            return [.value(g)]
        }).integerInputs((0...3).map { IntegerInput(index: $0, attr: "Index", form: .vector) }).declaring(ShapeOps.StridedSlice.masks).gradientNotImplemented(),

        OpDef("MirrorPadGrad", arity: .exactly(2), attrs: ["Tpaddings": .type(.int32)], infer: { ctx in
            guard let p = ctx.ints(1), let dims = ctx.shape(0).dims else { return [(ctx.dtype(0), .unknown)] }
            return [(ctx.dtype(0), Shape(dims: dims.enumerated().map { k, v in v.map { $0 - p[2 * k] - p[2 * k + 1] } }))]
        }, lower: { ctx in
            // Fold each padded border back onto the elements it mirrored.
            var g = try ctx.value(0)
            let p = try ctx.ints(1)
            let symmetric = ctx.attrs[ShapeOps.MirrorPad.mode] == "SYMMETRIC"
            let d = ctx.type(g).dtype
            for axis in 0..<(p.count / 2) {
                let s = ctx.type(g).shape
                let (lo, hi) = (p[2 * axis], p[2 * axis + 1])
                let n = s[axis] - lo - hi
                func part(_ from: Int, _ count: Int, reversed: Bool) throws -> Int {
                    var start = s.map { _ in 0 }, strides = s.map { _ in 1 }, shape = s
                    start[axis] = reversed ? from + count - 1 : from
                    strides[axis] = reversed ? -1 : 1
                    shape[axis] = count
                    return try ctx.emit(.slice(start: start, strides: strides, shape: shape), [g])
                }
                func placed(_ v: Int, at offset: Int, _ count: Int) throws -> Int {
                    var low = s.map { _ in 0 }, high = s.map { _ in 0 }
                    low[axis] = offset
                    high[axis] = n - offset - count
                    return try ctx.emit(.pad(low: low, high: high, mode: .constant), [v, ctx.scalar(0, d)])
                }
                var acc = try part(lo, n, reversed: false)
                if lo > 0 { acc = try ctx.binary(.add, acc, placed(part(0, lo, reversed: true), at: symmetric ? 0 : 1, lo)) }
                if hi > 0 { acc = try ctx.binary(.add, acc, placed(part(lo + n, hi, reversed: true), at: symmetric ? n - hi : n - 1 - hi, hi)) }
                g = acc
            }
            return [.value(g)]
        }).declaring(ShapeOps.MirrorPad.mode).integerInputs(IntegerInput.paddings).gradientNotImplemented(),
    ]
}
