import KilnIR

/// Gradients of the data-movement ops (TensorFlow's array_grad.py).
enum ArrayGradients {
    static let nonDifferentiable: Set<String> = [
        "Shape", "Rank", "Size", "OneHot", "Range", "ZerosLike", "OnesLike", "Where", "BroadcastGradientArgs",
        "Const", "Placeholder", "VariableV2", "Assign", "AssignAdd", "AssignSub", "NoOp",
        "RandomStandardNormal", "TruncatedNormal", "RandomUniform", "RandomUniformInt", "RandomShuffle",
    ]

    static let table: [String: GradientFunction] = [
        "PlaceholderWithDefault": { ctx in [try ctx.grad()] },
        "Reshape": { ctx in [try ctx.graph.reshape(ctx.grad(), shapeTensor: ctx.graph.shapeTensor(ctx.input(0))), nil] },
        "ExpandDims": { ctx in [try ctx.graph.reshape(ctx.grad(), shapeTensor: ctx.graph.shapeTensor(ctx.input(0))), nil] },
        "Squeeze": { ctx in [try ctx.graph.reshape(ctx.grad(), shapeTensor: ctx.graph.shapeTensor(ctx.input(0)))] },
        "Transpose": { ctx in
            guard let perm = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints) else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a constant perm")
            }
            var inverse = perm
            for (i, p) in perm.enumerated() { inverse[p] = i }
            return [try ctx.graph.transpose(ctx.grad(), perm: inverse), nil]
        },
        "ConcatV2": { ctx in
            let g = ctx.graph, dy = try ctx.grad()
            let n = ctx.op.inputs.count - 1
            guard let a = staticValue(of: ctx.input(n)).map(ShapeFunctions.ints)?.first, let r = dy.shape.rank else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a constant axis and known rank")
            }
            let axis = a < 0 ? a + r : a
            var offset = 0
            var grads: [Output?] = []
            for i in 0..<n {
                guard let size = ctx.input(i).shape.dims?[axis] ?? nil else {
                    throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs input \(i)'s size along axis \(axis)")
                }
                var begin = [Int](repeating: 0, count: r), extent = [Int](repeating: -1, count: r)
                begin[axis] = offset
                extent[axis] = size
                grads.append(try g.slice(dy, begin: begin, size: extent))
                offset += size
            }
            return grads + [nil]
        },
        "Pack": { ctx in
            let g = ctx.graph, dy = try ctx.grad()
            let n = ctx.op.inputs.count
            guard let r = dy.shape.rank else { throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs a known rank") }
            let a0 = ctx.attrs["axis"]?.int ?? 0
            let axis = a0 < 0 ? a0 + r : a0
            return try (0..<n).map { i in
                var begin = [Int](repeating: 0, count: r), extent = [Int](repeating: -1, count: r)
                begin[axis] = i
                extent[axis] = 1
                return try g.squeeze(g.slice(dy, begin: begin, size: extent), axes: [axis])
            }
        },
        "Pad": { ctx in [try padGrad(ctx), nil] },
        "PadV2": { ctx in [try padGrad(ctx), nil, nil] },
        "MirrorPad": { ctx in
            [try ctx.graph.addOperation("MirrorPadGrad", name: "MirrorPadGrad", inputs: [ctx.grad(), ctx.input(1)],
                                        attrs: ["T": .type(ctx.input(0).dtype), "mode": ctx.attrs["mode"] ?? .string("REFLECT"),
                                                "Tpaddings": .type(ctx.input(1).dtype)]).output(), nil]
        },
        "Tile": { ctx in
            // [m0*d0, m1*d1] -> [m0, d0, m1, d1] summed over the m axes.
            let g = ctx.graph
            guard let m = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints), let d = ctx.input(0).shape.concrete else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs constant multiples and a known input shape")
            }
            let split = try g.reshape(ctx.grad(), zip(m, d).flatMap { [$0, $1] })
            return [try g.reduceSum(split, axes: (0..<m.count).map { 2 * $0 }), nil]
        },
        "Slice": { ctx in
            let g = ctx.graph
            guard let begin = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints), let s = ctx.input(0).shape.concrete,
                  let out = ctx.output().shape.concrete else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs constant begin and known shapes")
            }
            let paddings = (0..<s.count).map { [begin[$0], s[$0] - begin[$0] - out[$0]] }
            return [try g.pad(ctx.grad(), paddings: paddings), nil, nil]
        },
        "StridedSlice": { ctx in
            let g = ctx.graph
            var attrs = ["Index": AttrValue.type(.int32), "T": .type(ctx.output().dtype)]
            for k in ["begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"] { attrs[k] = ctx.attrs[k] ?? .int(0) }
            let out = try g.addOperation("StridedSliceGrad", name: "StridedSliceGrad",
                                         inputs: [g.shapeTensor(ctx.input(0)), ctx.input(1), ctx.input(2), ctx.input(3), ctx.grad()], attrs: attrs)
            return [out.output(), nil, nil, nil]
        },
        "GatherV2": { ctx in
            // Dense: rows of dy summed into the rows they were gathered from (repeats accumulate).
            let g = ctx.graph, params = ctx.input(0), indices = ctx.input(1)
            guard (ctx.attrs["batch_dims"]?.int ?? 0) == 0, staticValue(of: ctx.input(2)).map(ShapeFunctions.ints)?.first == 0 else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' is implemented for axis 0 without batch dimensions")
            }
            guard let rows = params.shape.dims?.first ?? nil else {
                throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs the params' first dimension")
            }
            let n = try g.constant(Int32(rows), name: "num_segments")
            let sum = try g.addOperation("UnsortedSegmentSum", name: "UnsortedSegmentSum", inputs: [ctx.grad(), indices, n],
                                         attrs: ["T": .type(params.dtype), "Tindices": .type(indices.dtype), "Tnumsegments": .type(.int32)])
            return [sum.output(), nil, nil]
        },
        "BroadcastTo": { ctx in
            let g = ctx.graph, x = ctx.input(0), dy = try ctx.grad()
            return [try g.unbroadcast(dy, to: x, other: dy), nil]
        },
        "Fill": { ctx in [nil, try ctx.graph.reduceSum(ctx.grad())] },
        "PreventGradient": { ctx in
            throw KilnError.invalidArgument("Gradient explicitly disabled for '\(ctx.op.name)': \(ctx.attrs["message"]?.string ?? "")")
        },
    ]

    static func padGrad(_ ctx: GradientContext) throws -> Output {
        let g = ctx.graph
        guard let p = staticValue(of: ctx.input(1)).map(ShapeFunctions.ints), let s = ctx.input(0).shape.concrete else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs constant paddings and a known input shape")
        }
        return try g.slice(ctx.grad(), begin: (0..<s.count).map { p[2 * $0] }, size: s)
    }
}
