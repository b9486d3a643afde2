import KilnIR

public enum MathOps {
    public enum MatMul {
        public static let transposeA = Attr<Bool>("transpose_a", default: false)
        public static let transposeB = Attr<Bool>("transpose_b", default: false)
    }
    public enum BatchMatMul {
        public static let adjX = Attr<Bool>("adj_x", default: false)
        public static let adjY = Attr<Bool>("adj_y", default: false)
    }
    public enum ArgReduce { public static let outputType = Attr<DType>("output_type", default: .int64) }
    public enum Reduction { public static let keepDims = Attr<Bool>("keep_dims", default: false) }

    static let defs: [OpDef] = [
        matmul, batchMatmul("BatchMatMulV2").gradient(MathGradients.batchMatmul), batchMatmul("BatchMatMul").gradient(MathGradients.batchMatmul),
        argReduce("ArgMax", .argmax).integerInputs(IntegerInput.argAxis).notDifferentiable(), argReduce("ArgMin", .argmin).integerInputs(IntegerInput.argAxis).notDifferentiable(),
        reduction("All", .min, bool: true).integerInputs(IntegerInput.reductionAxes).notDifferentiable(), reduction("Any", .max, bool: true).integerInputs(IntegerInput.reductionAxes).notDifferentiable(),
        reduction("Sum", .sum).integerInputs(IntegerInput.reductionAxes).gradient(MathGradients.sum), reduction("Max", .max).integerInputs(IntegerInput.reductionAxes).gradient(MathGradients.extremum),
        reduction("Min", .min).integerInputs(IntegerInput.reductionAxes).gradient(MathGradients.extremum), reduction("Prod", .prod).integerInputs(IntegerInput.reductionAxes).gradient(MathGradients.prod),
        reduction("Mean", .sum, mean: true).integerInputs(IntegerInput.reductionAxes).gradient(MathGradients.mean),
    ]

    static let matmul = OpDef("MatMul", arity: .exactly(2), infer: { ctx in
        let d = try ctx.sameDType()
        guard d.isNumeric && d != .bool else { throw ctx.error("MatMul does not support dtype \(d)") }
        let ta = ctx.attrs[MatMul.transposeA], tb = ctx.attrs[MatMul.transposeB]
        for i in 0..<2 {
            if let r = ctx.shape(i).rank, r != 2 { throw ctx.error("Shape must be rank 2 but is rank \(r)") }
        }
        let a = ctx.shape(0).dims ?? [nil, nil], b = ctx.shape(1).dims ?? [nil, nil]
        let (m, ka) = ta ? (a[1], a[0]) : (a[0], a[1])
        let (kb, n) = tb ? (b[1], b[0]) : (b[0], b[1])
        if let ka, let kb, ka != kb { throw ctx.error("Dimensions must be equal, but are \(ka) and \(kb)") }
        return [(d, Shape(dims: [m, n]))]
    }, lower: { ctx in
        let (a, b) = (try ctx.value(0), try ctx.value(1))
        // Shapes unknown at construction are checked here: MatMul is rank 2 only (BatchMatMul batches).
        for v in [a, b] where ctx.type(v).rank != 2 {
            throw ctx.error("Shape must be rank 2 but is rank \(ctx.type(v).rank) (shapes \(ctx.type(a).shape) and \(ctx.type(b).shape))")
        }
        let op = Op.dot(transposeA: ctx.attrs[MatMul.transposeA], transposeB: ctx.attrs[MatMul.transposeB])
        return [.value(try ctx.builder.emit(op, [a, b]))]
    }).declaring(MatMul.transposeA, MatMul.transposeB).gradient(MathGradients.matMul)

    /// Matrix products over the last two dimensions with numpy-broadcast batch dimensions.
    static func batchMatmul(_ name: String) -> OpDef {
        OpDef(name, arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            guard d.isNumeric else { throw ctx.error("\(name) does not support dtype \(d)") }
            guard let a = ctx.shape(0).dims, let b = ctx.shape(1).dims else { return [(d, .unknown)] }
            guard a.count >= 2, b.count >= 2 else { throw ctx.error("\(name) needs inputs of rank 2 or more") }
            let ta = ctx.attrs[BatchMatMul.adjX], tb = ctx.attrs[BatchMatMul.adjY]
            let (m, ka) = ta ? (a[a.count - 1], a[a.count - 2]) : (a[a.count - 2], a[a.count - 1])
            let (kb, n) = tb ? (b[b.count - 1], b[b.count - 2]) : (b[b.count - 2], b[b.count - 1])
            if let ka, let kb, ka != kb { throw ctx.error("Dimensions must be equal, but are \(ka) and \(kb)") }
            let batch = try ShapeFunctions.broadcast(Shape(dims: Array(a.dropLast(2))), Shape(dims: Array(b.dropLast(2))), ctx)
            return [(d, Shape(dims: batch.dims.map { $0 + [m, n] }))]
        }, lower: { ctx in
            var (a, b) = (try ctx.value(0), try ctx.value(1))
            let (at, bt) = (ctx.type(a).shape, ctx.type(b).shape)
            guard let batch = ShapeFunctions.broadcast(Array(at.dropLast(2)), Array(bt.dropLast(2))) else {
                throw ctx.error("batch dimensions \(at.dropLast(2)) and \(bt.dropLast(2)) do not broadcast")
            }
            a = try ctx.broadcast(a, to: batch + at.suffix(2))
            b = try ctx.broadcast(b, to: batch + bt.suffix(2))
            let op = Op.dot(transposeA: ctx.attrs[BatchMatMul.adjX], transposeB: ctx.attrs[BatchMatMul.adjY])
            return [.value(try ctx.emit(op, [a, b]))]
        }).declaring(BatchMatMul.adjX, BatchMatMul.adjY)
    }

    static func argReduce(_ name: String, _ op: ArgReduceOp) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: ["Tidx": .type(.int32)], infer: { ctx in
            guard ctx.dtype(0).isNumeric else { throw ctx.error("\(name) does not support dtype \(ctx.dtype(0))") }
            let out = ctx.attrs[ArgReduce.outputType]
            guard var dims = ctx.shape(0).dims, let a = ctx.ints(1)?.first else { return [(out, .unknown)] }
            dims.remove(at: try ctx.normalizedAxis(a, rank: dims.count))
            return [(out, Shape(dims: dims))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let axis = try ctx.axis(try ctx.ints(1)[0], rank: ctx.type(x).rank)
            return [.value(try ctx.emit(.argReduce(op, axis: axis, outType: ctx.attrs[ArgReduce.outputType]), [x]))]
        }).declaring(ArgReduce.outputType)
    }

    static func reduction(_ name: String, _ op: ReduceOp, mean: Bool = false, bool: Bool = false) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: ["Tidx": .type(.int32)], infer: { ctx in
            let d = ctx.dtype(0)
            guard bool ? d == .bool : d.isNumeric else { throw ctx.error("\(name) does not support dtype \(d)") }
            let keep = ctx.attrs[Reduction.keepDims]
            guard let dims = ctx.shape(0).dims, let axesT = ctx.constantValue(1) else { return [(d, .unknown)] }
            let axes = try ShapeFunctions.axes(axesT, rank: dims.count, ctx.error)
            let out = dims.enumerated().compactMap { k, v -> Int?? in
                axes.contains(k) ? (keep ? .some(1) : nil) : .some(v)
            }
            return [(d, Shape(dims: out))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let t = ctx.type(x)
            let axes = try ShapeFunctions.axes(try ctx.constant(1), rank: t.rank, ctx.error)
            var r = try ctx.builder.emit(.reduce(op, axes: axes), [x])
            if mean {
                let n = axes.map { t.shape[$0] }.reduce(1, *)
                let count = try ctx.builder.broadcast(ctx.builder.scalar(Double(n), t.dtype), to: ctx.type(r).shape)
                r = try ctx.builder.emit(.binary(.div), [r, count])
            }
            if ctx.attrs[Reduction.keepDims] {
                let kept = t.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
                r = try ctx.builder.emit(.reshape(shape: kept), [r])
            }
            return [.value(r)]
        }).declaring(Reduction.keepDims)
    }
}

