import KilnIR

/// Gradients of the data-movement ops (TensorFlow's array_grad.py).
enum ArrayGradients {
    static let placeholderWithDefault: GradientFunction = { ctx in [try ctx.grad()] }

    static let reshape: GradientFunction = { ctx in [try ctx.graph.reshape(ctx.grad(), shapeTensor: ctx.graph.shapeTensor(ctx.input(0))), nil] }

    static let squeeze: GradientFunction = { ctx in [try ctx.graph.reshape(ctx.grad(), shapeTensor: ctx.graph.shapeTensor(ctx.input(0)))] }

    static let transpose: GradientFunction = { ctx in
        guard let perm = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints) else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a constant perm")
        }
        var inverse = perm
        for (i, p) in perm.enumerated() { inverse[p] = i }
        return [try ctx.graph.transpose(ctx.grad(), perm: inverse), nil]
    }

    static let concatV2: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        let n = ctx.op.inputs.count - 1
        guard let a = staticValue(of: ctx.input(n)).map(ShapeFunctions.ints)?.first,
              let r = ctx.output().shape.rank ?? ctx.input(0).shape.rank else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a constant axis and known rank")
        }
        let axis = a < 0 ? a + r : a
        let sizes = (0..<n).map { ctx.input($0).shape.dims?[axis] ?? nil }
        if sizes.allSatisfy({ $0 != nil }) {
            var offset = 0
            var grads: [Output?] = []
            for size in sizes.map({ $0! }) {
                var begin = [Int](repeating: 0, count: r), extent = [Int](repeating: -1, count: r)
                begin[axis] = offset
                extent[axis] = size
                grads.append(try g.slice(dy, begin: begin, size: extent))
                offset += size
            }
            return grads + [nil]
        }
        // Sizes known only once feeds are: offsets from the inputs' shapes (TensorFlow's
        // ConcatOffset), begin += shape(x_i) along the axis only.
        let mask = try g.int32s((0..<r).map { $0 == axis ? 1 : 0 }, name: "concat_axis_mask")
        var begin = try g.int32s([Int](repeating: 0, count: r), name: "concat_offset")
        var grads: [Output?] = []
        for i in 0..<n {
            let size = try g.shapeTensor(ctx.input(i))
            grads.append(try sliced(dy, begin: begin, size: size))
            begin = try g.add(begin, g.multiply(mask, size))
        }
        return grads + [nil]
    }

    static let pack: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        let n = ctx.op.inputs.count
        guard let r = ctx.output().shape.rank ?? ctx.input(0).shape.rank.map({ $0 + 1 }) else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a known rank")
        }
        let a0 = ctx.attrs[GradientOps.packAxis]
        let axis = a0 < 0 ? a0 + r : a0
        return try (0..<n).map { i in
            var begin = [Int](repeating: 0, count: r), extent = [Int](repeating: -1, count: r)
            begin[axis] = i
            extent[axis] = 1
            return try g.squeeze(g.slice(dy, begin: begin, size: extent), axes: [axis])
        }
    }

    static let pad: GradientFunction = { ctx in [try padGrad(ctx), nil] }

    static let padV2: GradientFunction = { ctx in [try padGrad(ctx), nil, nil] }

    static let mirrorPad: GradientFunction = { ctx in
        [try ctx.graph.addOperation("MirrorPadGrad", name: "MirrorPadGrad", inputs: [ctx.grad(), ctx.input(1)],
                                    attrs: ["T": .type(ctx.input(0).dtype), "mode": .string(ctx.attrs[ShapeOps.MirrorPad.mode]),
                                            "Tpaddings": .type(ctx.input(1).dtype)]).output(), nil]
    }

    static let tile: GradientFunction = { ctx in
        // [m0*d0, m1*d1] -> [m0, d0, m1, d1] summed over the m axes.
        let g = ctx.graph, x = ctx.input(0)
        guard let r = x.shape.rank ?? ctx.input(1).shape.dims?.first ?? nil else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs the input's rank")
        }
        let axes = (0..<r).map { 2 * $0 }
        if let m = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints), let d = x.shape.concrete {
            return [try g.reduceSum(g.reshape(ctx.grad(), zip(m, d).flatMap { [$0, $1] }), axes: axes), nil]
        }
        // Interleave multiples and the input's shape as tensors (folded once feeds are known).
        let m = try int32(ctx.input(1))
        let split = try g.reshape(g.transpose(g.stack([m, g.shapeTensor(x)])), shapeTensor: g.int32s([2 * r], name: "split_shape"))
        let summed = try g.reduceSum(g.reshape(ctx.grad(), shapeTensor: split), axes: axes)
        return [summed, nil]
    }

    static let slice: GradientFunction = { ctx in
        let g = ctx.graph, x = ctx.input(0)
        if let begin = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints), let s = x.shape.concrete,
           let out = ctx.output().shape.concrete {
            let paddings = (0..<s.count).map { [begin[$0], s[$0] - begin[$0] - out[$0]] }
            return [try g.pad(ctx.grad(), paddings: paddings), nil, nil]
        }
        // Paddings [begin, shape(x) - shape(y) - begin] as tensors (TensorFlow's formulation).
        guard let r = x.shape.rank else { throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs the input's rank") }
        let begin = try int32(ctx.input(1))
        let column = try g.int32s([r, 1], name: "column")
        let before = try g.reshape(begin, shapeTensor: column)
        let after = try g.reshape(g.subtract(g.subtract(g.shapeTensor(x), g.shapeTensor(ctx.output())), begin), shapeTensor: column)
        return [try padded(ctx.grad(), paddings: g.concat([before, after], axis: 1)), nil, nil]
    }

    static let stridedSlice: GradientFunction = { ctx in
        let g = ctx.graph
        var attrs = ["Index": AttrValue.type(.int32), "T": .type(ctx.output().dtype)]
        for mask in ShapeOps.StridedSlice.masks { attrs[mask.name] = .int(ctx.attrs[mask]) }
        let out = try g.addOperation("StridedSliceGrad", name: "StridedSliceGrad",
                                     inputs: [g.shapeTensor(ctx.input(0)), ctx.input(1), ctx.input(2), ctx.input(3), ctx.grad()], attrs: attrs)
        return [out.output(), nil, nil, nil]
    }

    static let gatherV2: GradientFunction = { ctx in
        // Dense: slices of dy summed into the positions they were gathered from (repeats
        // accumulate). Along axis a, dy is [outer, indices..., inner]: flatten the indices,
        // move that axis first, sum segments, move it back.
        let g = ctx.graph, params = ctx.input(0), indices = ctx.input(1)
        guard ctx.attrs[ShapeOps.Gather.batchDims] == 0, let a0 = staticValue(of: ctx.input(2)).map(ShapeFunctions.ints)?.first else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a constant axis and no batch dimensions")
        }
        if a0 == 0 || a0 == -(params.shape.rank ?? 0) {
            guard let rows = params.shape.dims?.first ?? nil else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs the params' first dimension")
            }
            return [try segmentSum(ctx.grad(), indices, rows), nil, nil]
        }
        guard let ps = params.shape.concrete else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' along axis \(a0) needs the params' shape")
        }
        let r = ps.count, axis = a0 < 0 ? a0 + r : a0
        let values = try g.reshape(ctx.grad(), Array(ps[..<axis]) + [-1] + Array(ps[(axis + 1)...]))
        let front = [axis] + Array(0..<axis) + Array((axis + 1)..<r)
        var back = front
        for (i, p) in front.enumerated() { back[p] = i }
        let flat = try g.reshape(indices, [-1])
        let summed = try segmentSum(g.transpose(values, perm: front), flat, ps[axis])
        return [try g.transpose(summed, perm: back), nil, nil]
    }

    static let gatherNd: GradientFunction = { ctx in
        // TensorFlow scatters dy back (ScatterNd). With the params' shape known: the first K
        // dimensions, addressed by each index row, as one linear segment id.
        let g = ctx.graph, params = ctx.input(0), indices = ctx.input(1)
        guard let ps = params.shape.concrete, let k = indices.shape.dims?.last ?? nil, k <= ps.count else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs the params' shape and the index depth")
        }
        var strides = [Int](repeating: 1, count: k)
        for d in stride(from: k - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * ps[d + 1] }
        let weights = try g.cast(g.int32s(strides, name: "strides"), to: indices.dtype)
        let ids = try g.reshape(g.reduceSum(g.multiply(indices, weights), axes: [-1]), [-1])
        let inner = Array(ps[k...])
        let rows = try g.reshape(ctx.grad(), [-1] + inner)
        let summed = try segmentSum(rows, ids, ps[..<k].reduce(1, *))
        return [try g.reshape(summed, ps), nil]
    }

    static let broadcastTo: GradientFunction = { ctx in
        let g = ctx.graph, x = ctx.input(0), dy = try ctx.grad()
        return [try g.unbroadcast(dy, to: x, other: dy), nil]
    }

    static let fill: GradientFunction = { ctx in [nil, try ctx.graph.reduceSum(ctx.grad())] }

    static let preventGradient: GradientFunction = { ctx in
        throw KilnError.invalidArgument("Gradient explicitly disabled for '\(ctx.op.name)': \(ctx.attrs[GradientOps.message])")
    }

    static func padGrad(_ ctx: GradientContext) throws -> Output {
        let g = ctx.graph, x = ctx.input(0)
        if let p = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints), let s = x.shape.concrete {
            return try g.slice(ctx.grad(), begin: (0..<s.count).map { p[2 * $0] }, size: s)
        }
        // dy[paddings[:, 0] : + shape(x)], as tensors folded once feeds are known.
        let before = try g.reshape(g.slice(int32(ctx.input(1)), begin: [0, 0], size: [-1, 1]), [-1])
        return try sliced(ctx.grad(), begin: before, size: g.shapeTensor(x))
    }

    /// Slice with begin and size given as tensors.
    static func sliced(_ x: Output, begin: Output, size: Output) throws -> Output {
        try x.graph.addOperation("Slice", name: "Slice", inputs: [x, begin, size], attrs: ["T": .type(x.dtype), "Index": .type(.int32)]).output()
    }

    /// Pad with paddings given as an [r, 2] tensor.
    static func padded(_ x: Output, paddings: Output) throws -> Output {
        try x.graph.addOperation("Pad", name: "Pad", inputs: [x, paddings], attrs: ["T": .type(x.dtype), "Tpaddings": .type(.int32)]).output()
    }

    static func int32(_ x: Output) throws -> Output { x.dtype == .int32 ? x : try x.graph.cast(x, to: .int32) }

    /// Rows of `data` summed into `count` segments by `ids` (UnsortedSegmentSum).
    static func segmentSum(_ data: Output, _ ids: Output, _ count: Int) throws -> Output {
        let g = data.graph
        let n = try g.int32Scalar(count, name: "num_segments")
        return try g.addOperation("UnsortedSegmentSum", name: "UnsortedSegmentSum", inputs: [data, ids, n],
                                  attrs: ["T": .type(data.dtype), "Tindices": .type(ids.dtype), "Tnumsegments": .type(.int32)]).output()
    }
}
