import KilnIR

/// Gradients of the elementwise, matrix and reduction ops (TensorFlow's math_grad.py).
enum MathGradients {
    static func binaryGrads(_ ctx: GradientContext, _ gx: Output?, _ gy: Output?) throws -> [Output?] {
        let g = ctx.graph, x = ctx.input(0), y = ctx.input(1)
        return [try gx.map { try g.unbroadcast($0, to: x, other: y) }, try gy.map { try g.unbroadcast($0, to: y, other: x) }]
    }

    static let extremum: GradientFunction = { ctx in try extremumGrad(ctx) }

    static let identity: GradientFunction = { ctx in [try ctx.grad()] }

    static let addV2: GradientFunction = { ctx in try binaryGrads(ctx, ctx.grad(), ctx.grad()) }

    static let sub: GradientFunction = { ctx in try binaryGrads(ctx, ctx.grad(), ctx.graph.negative(ctx.grad())) }

    static let mul: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        return try binaryGrads(ctx, g.multiply(dy, ctx.input(1)), g.multiply(ctx.input(0), dy))
    }

    static let realDiv: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), x = ctx.input(0), y = ctx.input(1)
        return try binaryGrads(ctx, g.realDiv(dy, y), g.multiply(dy, g.realDiv(g.realDiv(g.negative(x), y), y)))
    }

    static let floorMod: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), x = ctx.input(0), y = ctx.input(1)
        return try binaryGrads(ctx, dy, g.multiply(dy, g.negative(g.floorDiv(x, y))))
    }

    static let maximum: GradientFunction = { ctx in try minMax(ctx, pick: { g, x, y in try g.greaterEqual(x, y) }) }

    static let minimum: GradientFunction = { ctx in try minMax(ctx, pick: { g, x, y in try g.lessEqual(x, y) }) }

    static let pow: GradientFunction = { ctx in
        // dx = dy * y * x^(y-1); dy = dy * z * log(x) where x > 0, else 0.
        let g = ctx.graph, dy = try ctx.grad(), x = ctx.input(0), y = ctx.input(1), z = ctx.output()
        let one = try g.onesLike(y)
        let gx = try g.multiply(dy, g.multiply(y, g.pow(x, g.subtract(y, one))))
        let positive = try g.greater(x, g.zerosLike(x))
        let safeLog = try g.where(positive, g.log(g.where(positive, x, g.onesLike(x))), g.zerosLike(x))
        return try binaryGrads(ctx, gx, g.multiply(dy, g.multiply(z, safeLog)))
    }

    static let squaredDifference: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad()
        let d = try g.multiply(g.multiply(dy, g.subtract(ctx.input(0), ctx.input(1))), g.constant(2, dtype: dy.dtype))
        return try binaryGrads(ctx, d, g.negative(d))
    }

    static let neg: GradientFunction = { ctx in [try ctx.graph.negative(ctx.grad())] }

    static let abs: GradientFunction = { ctx in [try ctx.graph.multiply(ctx.grad(), ctx.graph.sign(ctx.input(0)))] }

    static let exp: GradientFunction = { ctx in [try ctx.graph.multiply(ctx.grad(), ctx.output())] }

    static let log: GradientFunction = { ctx in [try ctx.graph.multiply(ctx.grad(), ctx.graph.reciprocal(ctx.input(0)))] }

    static let log1p: GradientFunction = { ctx in
        let g = ctx.graph
        return [try g.multiply(ctx.grad(), g.reciprocal(g.add(ctx.input(0), g.onesLike(ctx.input(0)))))]
    }

    static let sqrt: GradientFunction = { ctx in [try ctx.graph.apply("SqrtGrad", [ctx.output(), ctx.grad()], name: "SqrtGrad")] }

    static let rsqrt: GradientFunction = { ctx in [try ctx.graph.apply("RsqrtGrad", [ctx.output(), ctx.grad()], name: "RsqrtGrad")] }

    // d/dx erf(x) = 2/sqrt(pi) exp(-x^2); erfc's is its negation (TensorFlow's math_grad.py).
    static let erf: GradientFunction = { ctx in [try erfSlope(ctx, 2 / Double.pi.squareRoot())] }

    static let erfc: GradientFunction = { ctx in [try erfSlope(ctx, -2 / Double.pi.squareRoot())] }

    static let tanh: GradientFunction = { ctx in [try ctx.graph.apply("TanhGrad", [ctx.output(), ctx.grad()], name: "TanhGrad")] }

    static let sigmoid: GradientFunction = { ctx in [try ctx.graph.apply("SigmoidGrad", [ctx.output(), ctx.grad()], name: "SigmoidGrad")] }

    static let square: GradientFunction = { ctx in
        let g = ctx.graph
        return [try g.multiply(ctx.grad(), g.multiply(ctx.input(0), g.constant(2, dtype: ctx.input(0).dtype)))]
    }

    static let reciprocal: GradientFunction = { ctx in
        let g = ctx.graph, y = ctx.output()
        return [try g.negative(g.multiply(ctx.grad(), g.multiply(y, y)))]
    }

    static let sin: GradientFunction = { ctx in [try ctx.graph.multiply(ctx.grad(), ctx.graph.cos(ctx.input(0)))] }

    static let cos: GradientFunction = { ctx in [try ctx.graph.negative(ctx.graph.multiply(ctx.grad(), ctx.graph.sin(ctx.input(0))))] }

    static let relu: GradientFunction = { ctx in [try ctx.graph.apply("ReluGrad", [ctx.grad(), ctx.output()], name: "ReluGrad")] }

    static let relu6: GradientFunction = { ctx in [try ctx.graph.apply("Relu6Grad", [ctx.grad(), ctx.output()], name: "Relu6Grad")] }

    static let elu: GradientFunction = { ctx in [try ctx.graph.apply("EluGrad", [ctx.grad(), ctx.output()], name: "EluGrad")] }

    static let softplus: GradientFunction = { ctx in [try ctx.graph.apply("SoftplusGrad", [ctx.grad(), ctx.input(0)], name: "SoftplusGrad")] }

    static let leakyRelu: GradientFunction = { ctx in
        [try ctx.graph.apply("LeakyReluGrad", [ctx.grad(), ctx.input(0)], name: "LeakyReluGrad", attrs: ElementwiseOps.LeakyRelu.alpha(ctx.attrs[ElementwiseOps.LeakyRelu.alpha]))]
    }

    static let cast: GradientFunction = { ctx in
        let from = ctx.input(0).dtype
        guard from.isFloatingPoint, ctx.output().dtype.isFloatingPoint else { return [nil] }
        return [try ctx.graph.cast(ctx.grad(), to: from)]
    }

    static let select: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), c = ctx.input(0)
        let zeros = try g.zerosLike(dy)
        return [nil, try g.select(c, dy, zeros), try g.select(c, zeros, dy)]
    }

    static let selectV2: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), c = ctx.input(0), x = ctx.input(1), y = ctx.input(2)
        let zeros = try g.zerosLike(dy)
        return [nil, try g.unbroadcast(g.where(c, dy, zeros), to: x, other: dy), try g.unbroadcast(g.where(c, zeros, dy), to: y, other: dy)]
    }

    static let addN: GradientFunction = { ctx in try ctx.op.inputs.map { _ in try ctx.grad() } }

    static let matMul: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), a = ctx.input(0), b = ctx.input(1)
        let ta = ctx.attrs[MathOps.MatMul.transposeA], tb = ctx.attrs[MathOps.MatMul.transposeB]
        switch (ta, tb) {
        case (false, false): return [try g.matmul(dy, b, transposeB: true), try g.matmul(a, dy, transposeA: true)]
        case (true, false): return [try g.matmul(b, dy, transposeB: true), try g.matmul(a, dy)]
        case (false, true): return [try g.matmul(dy, b), try g.matmul(dy, a, transposeA: true)]
        case (true, true): return [try g.matmul(b, dy, transposeA: true, transposeB: true), try g.matmul(dy, a, transposeA: true, transposeB: true)]
        }
    }

    static let sum: GradientFunction = { ctx in [try sumGrad(ctx), nil] }

    static let mean: GradientFunction = { ctx in
        let g = ctx.graph
        let s = try sumGrad(ctx)
        let count = try g.truediv(g.size(ctx.input(0)), g.size(ctx.output()))
        return [try g.realDiv(s, g.cast(count, to: s.dtype)), nil]
    }

    static let prod: GradientFunction = { ctx in
        // Zero-safe: with no zero, y/x; with exactly one zero, the product of the others at the
        // zero; with two or more, nothing.
        let g = ctx.graph, x = ctx.input(0)
        let axes = try reductionAxes(ctx)
        let dy = try g.broadcastTo(g.reshape(ctx.grad(), shapeTensor: g.keptShape(x, axes: axes)), shapeTensor: g.shapeTensor(x))
        let zero = try g.equal(x, g.zerosLike(x))
        let zeros = try g.reduceSum(g.cast(zero, to: x.dtype), axes: axes, keepDims: true)
        let others = try g.reduceProd(g.where(zero, g.onesLike(x), x), axes: axes, keepDims: true)
        let y = try g.reduceProd(x, axes: axes, keepDims: true)
        let safeX = try g.where(zero, g.onesLike(x), x)
        let none = try g.realDiv(g.broadcastTo(y, shapeTensor: g.shapeTensor(x)), safeX)
        let one = try g.where(zero, g.broadcastTo(others, shapeTensor: g.shapeTensor(x)), g.zerosLike(x))
        let noZero = try g.equal(g.broadcastTo(zeros, shapeTensor: g.shapeTensor(x)), g.zerosLike(x))
        let oneZero = try g.equal(g.broadcastTo(zeros, shapeTensor: g.shapeTensor(x)), g.onesLike(x))
        let local = try g.where(noZero, none, g.where(oneZero, one, g.zerosLike(x)))
        return [try g.multiply(dy, local), nil]
    }

    static func minMax(_ ctx: GradientContext, pick: (Graph, Output, Output) throws -> Output) throws -> [Output?] {
        let g = ctx.graph, dy = try ctx.grad(), x = ctx.input(0), y = ctx.input(1)
        let mask = try pick(g, x, y)
        let zeros = try g.zerosLike(dy)
        return try binaryGrads(ctx, g.where(mask, dy, zeros), g.where(mask, zeros, dy))
    }

    static let batchMatmul: GradientFunction = { ctx in
        let g = ctx.graph, dy = try ctx.grad(), a = ctx.input(0), b = ctx.input(1)
        let ta = ctx.attrs[MathOps.BatchMatMul.adjX], tb = ctx.attrs[MathOps.BatchMatMul.adjY]
        let (da, db): (Output, Output)
        switch (ta, tb) {
        case (false, false): (da, db) = (try g.batchMatmul(dy, b, adjointB: true), try g.batchMatmul(a, dy, adjointA: true))
        case (true, false): (da, db) = (try g.batchMatmul(b, dy, adjointB: true), try g.batchMatmul(a, dy))
        case (false, true): (da, db) = (try g.batchMatmul(dy, b), try g.batchMatmul(dy, a, adjointA: true))
        case (true, true): (da, db) = (try g.batchMatmul(b, dy, adjointA: true, adjointB: true), try g.batchMatmul(dy, a, adjointA: true, adjointB: true))
        }
        return [try g.unbroadcast(da, to: a, other: da), try g.unbroadcast(db, to: b, other: db)]
    }

    static func reductionAxes(_ ctx: GradientContext) throws -> [Int] {
        guard let axes = ctx.op.inputs[1].op.attrs["value"]?.tensor.map(ShapeFunctions.ints) ?? staticValue(of: ctx.input(1)).map(ShapeFunctions.ints) else {
            throw KilnError.unimplemented("the gradient of '\(ctx.op.name)' needs constant reduction axes")
        }
        return axes
    }

    /// The incoming gradient broadcast back over the reduced axes.
    static func sumGrad(_ ctx: GradientContext) throws -> Output {
        let g = ctx.graph, x = ctx.input(0)
        let kept = try g.keptShape(x, axes: reductionAxes(ctx))
        return try g.broadcastTo(g.reshape(ctx.grad(), shapeTensor: kept), shapeTensor: g.shapeTensor(x))
    }

    /// Max/Min: the gradient is shared equally between the elements that attain the extremum.
    static func extremumGrad(_ ctx: GradientContext) throws -> [Output?] {
        let g = ctx.graph, x = ctx.input(0)
        let axes = try reductionAxes(ctx)
        let kept = try g.keptShape(x, axes: axes)
        let full = try g.shapeTensor(x)
        let y = try g.broadcastTo(g.reshape(ctx.output(), shapeTensor: kept), shapeTensor: full)
        let hits = try g.cast(g.equal(x, y), to: x.dtype)
        let count = try g.broadcastTo(g.reduceSum(hits, axes: axes, keepDims: true), shapeTensor: full)
        let dy = try g.broadcastTo(g.reshape(ctx.grad(), shapeTensor: kept), shapeTensor: full)
        return [try g.realDiv(g.multiply(hits, dy), count), nil]
    }
}

/// dy * scale * exp(-x^2), the gradient of Erf (scale 2/sqrt(pi)) and Erfc (its negation).
private func erfSlope(_ ctx: GradientContext, _ scale: Double) throws -> Output {
    let g = ctx.graph, x = ctx.input(0)
    let slope = try g.multiply(g.exp(g.negative(g.square(x))), g.constant(scale, dtype: x.dtype))
    return try g.multiply(ctx.grad(), slope)
}
