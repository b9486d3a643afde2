import KilnIR

/// Gradients of the gradient-helper ops (GradientHelperOps) and of UnsortedSegmentSum, as
/// TensorFlow's math_grad, array_grad and data_flow_grad write them.
enum HelperGradients {
    // The sum of the later (earlier, when reversed) prefix sums each element joined.
    static let cumsum: GradientFunction = { ctx in
        [try scan("Cumsum", ctx.grad(), ctx.input(1), exclusive: ctx.attrs[GradientHelperOps.Scan.exclusive],
                  reverse: !ctx.attrs[GradientHelperOps.Scan.reverse]), nil]
    }

    // TensorFlow's formula: cumsum(prod * dy, reversed) / x, with 0 where x is 0.
    static let cumprod: GradientFunction = { ctx in
        let g = ctx.graph, exclusive = ctx.attrs[GradientHelperOps.Scan.exclusive], reverse = ctx.attrs[GradientHelperOps.Scan.reverse]
        let out = try scan("Cumsum", g.multiply(ctx.output(), ctx.grad()), ctx.input(1), exclusive: exclusive, reverse: !reverse)
        return [try g.apply("DivNoNan", [out, ctx.input(0)], name: "div_no_nan"), nil]
    }

    // Each row takes the gradient of the segment it went to; rows with a negative id none.
    static let unsortedSegmentSum: GradientFunction = { ctx in [try gatherDropNegatives(ctx.grad(), ctx.input(1), ctx.op.name), nil, nil] }

    static let unsortedSegmentMax: GradientFunction = { ctx in [try segmentExtremeGrad(ctx), nil, nil] }

    // TensorFlow's _UnsortedSegmentProdGrad: each row's derivative is the product of the other
    // rows of its segment — the segment's product over the row where the row is not zero; the
    // product of the segment's nonzero rows where it is the one zero; 0 where the segment holds
    // two zeros or more (so nothing is divided by zero).
    static let unsortedSegmentProd: GradientFunction = { ctx in
        let g = ctx.graph, data = ctx.input(0), ids = ctx.input(1), n = ctx.input(2), dy = try ctx.grad()
        let attrs: [String: AttrValue] = ["T": .type(data.dtype), "Tindices": .type(ids.dtype), "Tnumsegments": .type(n.dtype)]
        let isZero = try g.equal(data, g.zerosLike(data))
        let zeros = try g.addOperation("UnsortedSegmentSum", name: "UnsortedSegmentSum", inputs: [g.cast(isZero, to: .int32), ids, n],
                                       attrs: attrs.merging(["T": .type(.int32)]) { _, b in b }).output()
        let grad = try g.select(g.greater(zeros, g.onesLike(zeros)), g.zerosLike(dy), dy)
        let nonZeroData = try g.select(isZero, g.onesLike(data), data)
        let nonZeroProd = try g.addOperation("UnsortedSegmentProd", name: "UnsortedSegmentProd", inputs: [nonZeroData, ids, n], attrs: attrs).output()
        let clipped = try g.maximum(ids, g.zerosLike(ids))
        let partial = try g.select(isZero, g.gather(nonZeroProd, clipped), g.realDiv(g.gather(ctx.output(), clipped), data))
        return [try g.multiply(gatherDropNegatives(grad, ids, ctx.op.name), partial), nil, nil]
    }

    // Every data tensor gets the merged gradient at its indices (also where a later index
    // overwrote it, as in TensorFlow).
    static let dynamicStitch: GradientFunction = { ctx in
        let n = ctx.op.inputs.count / 2
        let values = try (0..<n).map { try ctx.graph.gather(ctx.grad(), ctx.input($0)) }
        return [Output?](repeating: nil, count: n) + values
    }

    static let scatterNd: GradientFunction = { ctx in [nil, try ctx.graph.gatherNd(ctx.grad(), ctx.input(0)), nil] }

    static let tensorScatterUpdate: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        let cleared = try g.addOperation("TensorScatterUpdate", name: "TensorScatterUpdate",
                                         inputs: [g.identity(dy), ctx.input(1), g.zerosLike(ctx.input(2))],
                                         attrs: ["T": .type(dy.dtype), "Tindices": .type(ctx.input(1).dtype)]).output()
        return [cleared, nil, try g.gatherNd(dy, ctx.input(1))]
    }

    static let matrixBandPart: GradientFunction = { ctx in
        let band = try ctx.graph.addOperation("MatrixBandPart", name: "MatrixBandPart", inputs: [ctx.grad(), ctx.input(1), ctx.input(2)],
                                              attrs: ["T": .type(ctx.input(0).dtype), "Tindex": .type(ctx.input(1).dtype)])
        return [band.output(), nil, nil]
    }

    static let reverseV2: GradientFunction = { ctx in
        let r = try ctx.graph.addOperation("ReverseV2", name: "ReverseV2", inputs: [ctx.grad(), ctx.input(1)],
                                           attrs: ["T": .type(ctx.input(0).dtype), "Tidx": .type(ctx.input(1).dtype)])
        return [r.output(), nil]
    }

    static let unpack: GradientFunction = { ctx in
        let grads = try ctx.op.outputs.indices.map { try ctx.grad($0) }
        return [try ctx.graph.stack(grads, axis: ctx.attrs[GradientOps.packAxis])]
    }

    static let divNoNan: GradientFunction = { ctx in
        let g = ctx.graph, (x, y) = (ctx.input(0), ctx.input(1)), dy = try ctx.grad()
        let dx = try g.apply("DivNoNan", [dy, y], name: "div_no_nan")
        let dyy = try g.multiply(dy, g.apply("DivNoNan", [g.apply("DivNoNan", [g.negative(x), y], name: "div_no_nan"), y], name: "div_no_nan"))
        return [try g.unbroadcast(dx, to: x, other: y), try g.unbroadcast(dyy, to: y, other: x)]
    }

    static func scan(_ type: String, _ x: Output, _ axis: Output, exclusive: Bool, reverse: Bool) throws -> Output {
        try x.graph.addOperation(type, name: type, inputs: [x, axis],
                                 attrs: ["T": .type(x.dtype), "Tidx": .type(axis.dtype), "exclusive": .bool(exclusive), "reverse": .bool(reverse)]).output()
    }

    /// `params` gathered at `ids` (negative ids clipped to 0), zeros where the id was negative,
    /// and the mask saying where it was not (TensorFlow's _GatherDropNegatives).
    static func gatherDropNegatives(_ params: Output, _ ids: Output, _ node: String) throws -> Output {
        try gatherDropNegativesWithMask(params, ids, node).values
    }

    static func gatherDropNegativesWithMask(_ params: Output, _ ids: Output, _ node: String) throws -> (values: Output, kept: Output) {
        let g = params.graph
        let zero = try g.cast(g.int32Scalar(0, name: "zero"), to: ids.dtype)
        let gathered = try g.gather(params, g.maximum(ids, zero))
        guard let idRank = ids.shape.rank, let rank = gathered.shape.rank else {
            throw KilnError.unimplemented("the gradient of '\(node)' needs the ranks of its segment ids and data")
        }
        let positive = try g.greaterEqual(ids, zero)
        let ones = [Int](repeating: 1, count: rank - idRank)
        // ids' shape then ones, so the mask broadcasts over each gathered row; a constant when
        // ids' shape is known, so the shapes after it stay known.
        let kept = rank == idRank ? positive
            : try ids.shape.concrete.map { try g.reshape(positive, $0 + ones) }
            ?? g.reshape(positive, shapeTensor: g.concat([g.shapeTensor(ids), g.int32s(ones, name: "ones")], axis: 0))
        let values = try g.addOperation("SelectV2", name: "SelectV2", inputs: [kept, gathered, g.zerosLike(gathered)], attrs: ["T": .type(params.dtype)]).output()
        return (values, kept)
    }

    /// UnsortedSegmentMax/Min: the gradient goes to the rows that hold their segment's extreme,
    /// shared equally between ties (TensorFlow's _UnsortedSegmentMinOrMaxGrad).
    static func segmentExtremeGrad(_ ctx: GradientContext) throws -> Output {
        let g = ctx.graph, data = ctx.input(0), ids = ctx.input(1)
        let (chosen, kept) = try gatherDropNegativesWithMask(ctx.output(), ids, ctx.op.name)
        let selected = try g.logicalAnd(g.equal(data, chosen), kept)
        let counts = try g.addOperation("UnsortedSegmentSum", name: "UnsortedSegmentSum", inputs: [g.cast(selected, to: data.dtype), ids, ctx.input(2)],
                                        attrs: ["T": .type(data.dtype), "Tindices": .type(ids.dtype), "Tnumsegments": .type(ctx.input(2).dtype)]).output()
        let shared = try gatherDropNegatives(g.divide(ctx.grad(), counts), ids, ctx.op.name)
        return try g.addOperation("SelectV2", name: "SelectV2", inputs: [selected, shared, g.zerosLike(shared)], attrs: ["T": .type(data.dtype)]).output()
    }
}
