import KilnIR

/// TensorFlow's math functions (`tf.add`, `tf.exp`, `tf.equal`, ...) as Graph methods.
extension Graph {
    func apply(_ type: String, _ inputs: [Output], name: String, attrs: [String: AttrValue] = [:]) throws -> Output {
        var a = attrs
        if a["T"] == nil, let first = inputs.first { a["T"] = .type(first.dtype) }
        return try addOperation(type, name: name, inputs: inputs, attrs: a).output()
    }

    // MARK: binary, with numpy broadcasting

    public func add(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "add") throws -> Output {
        try apply("AddV2", [x.output, y.output], name: name)
    }
    public func subtract(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "sub") throws -> Output {
        try apply("Sub", [x.output, y.output], name: name)
    }
    public func multiply(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "mul") throws -> Output {
        try apply("Mul", [x.output, y.output], name: name)
    }
    /// `tf.divide` (and `/`): true division; integers are divided as floating point, int32 and
    /// int64 giving float64 as TensorFlow does. `floorDiv` and `truncateDiv` keep integers.
    public func divide(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "truediv") throws -> Output {
        try truediv(x, y, name: name)
    }
    /// Integer division rounding toward zero (TensorFlow's `Div` on integers).
    public func truncateDiv(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "div") throws -> Output {
        try apply(x.output.dtype.isFloatingPoint ? "RealDiv" : "Div", [x.output, y.output], name: name)
    }
    /// `tf.truediv`: integers are converted to floating point first (int32 -> float64, as TensorFlow does).
    public func truediv(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "truediv") throws -> Output {
        let (a, b) = (x.output, y.output)
        if !a.dtype.isFloatingPoint {
            guard a.dtype == b.dtype else {
                throw KilnError.invalidArgument("'\(name)' (op: 'RealDiv') expects inputs of one dtype, got \(a.dtype) and \(b.dtype)")
            }
            let target: DType = a.dtype == .int64 || a.dtype == .int32 ? .float64 : .float32
            return try nameScope(name) {
                try apply("RealDiv", [cast(a, to: target), cast(b, to: target)], name: "truediv")
            }
        }
        return try apply("RealDiv", [a, b], name: name)
    }
    public func floorDiv(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "floordiv") throws -> Output {
        try apply("FloorDiv", [x.output, y.output], name: name)
    }
    public func floorMod(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "floormod") throws -> Output {
        try apply("FloorMod", [x.output, y.output], name: name)
    }
    public func maximum(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Maximum") throws -> Output {
        try apply("Maximum", [x.output, y.output], name: name)
    }
    public func minimum(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Minimum") throws -> Output {
        try apply("Minimum", [x.output, y.output], name: name)
    }
    public func pow(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Pow") throws -> Output {
        try apply("Pow", [x.output, y.output], name: name)
    }
    public func squaredDifference(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "SquaredDifference") throws -> Output {
        try apply("SquaredDifference", [x.output, y.output], name: name)
    }

    // MARK: unary

    public func negative(_ x: some OutputConvertible, name: String = "Neg") throws -> Output { try apply("Neg", [x.output], name: name) }
    public func abs(_ x: some OutputConvertible, name: String = "Abs") throws -> Output { try apply("Abs", [x.output], name: name) }
    public func exp(_ x: some OutputConvertible, name: String = "Exp") throws -> Output { try apply("Exp", [x.output], name: name) }
    public func log(_ x: some OutputConvertible, name: String = "Log") throws -> Output { try apply("Log", [x.output], name: name) }
    public func log1p(_ x: some OutputConvertible, name: String = "Log1p") throws -> Output { try apply("Log1p", [x.output], name: name) }
    public func sqrt(_ x: some OutputConvertible, name: String = "Sqrt") throws -> Output { try apply("Sqrt", [x.output], name: name) }
    public func rsqrt(_ x: some OutputConvertible, name: String = "Rsqrt") throws -> Output { try apply("Rsqrt", [x.output], name: name) }
    public func tanh(_ x: some OutputConvertible, name: String = "Tanh") throws -> Output { try apply("Tanh", [x.output], name: name) }
    public func sigmoid(_ x: some OutputConvertible, name: String = "Sigmoid") throws -> Output { try apply("Sigmoid", [x.output], name: name) }
    public func relu(_ x: some OutputConvertible, name: String = "Relu") throws -> Output { try apply("Relu", [x.output], name: name) }
    public func relu6(_ x: some OutputConvertible, name: String = "Relu6") throws -> Output { try apply("Relu6", [x.output], name: name) }
    public func leakyRelu(_ x: some OutputConvertible, alpha: Double = ElementwiseOps.LeakyRelu.alpha.defaultValue,
                          name: String = "LeakyRelu") throws -> Output {
        try apply("LeakyRelu", [x.output], name: name, attrs: ElementwiseOps.LeakyRelu.alpha(alpha))
    }
    public func elu(_ x: some OutputConvertible, name: String = "Elu") throws -> Output { try apply("Elu", [x.output], name: name) }
    public func softplus(_ x: some OutputConvertible, name: String = "Softplus") throws -> Output { try apply("Softplus", [x.output], name: name) }
    /// tf.nn.softsign: x / (1 + |x|).
    public func softsign(_ x: some OutputConvertible, name: String = "Softsign") throws -> Output { try apply("Softsign", [x.output], name: name) }
    public func square(_ x: some OutputConvertible, name: String = "Square") throws -> Output { try apply("Square", [x.output], name: name) }
    public func floor(_ x: some OutputConvertible, name: String = "Floor") throws -> Output { try apply("Floor", [x.output], name: name) }
    public func ceil(_ x: some OutputConvertible, name: String = "Ceil") throws -> Output { try apply("Ceil", [x.output], name: name) }
    /// Rounds half to even, as TensorFlow does.
    public func round(_ x: some OutputConvertible, name: String = "Round") throws -> Output { try apply("Round", [x.output], name: name) }
    public func sign(_ x: some OutputConvertible, name: String = "Sign") throws -> Output { try apply("Sign", [x.output], name: name) }
    public func reciprocal(_ x: some OutputConvertible, name: String = "Reciprocal") throws -> Output { try apply("Reciprocal", [x.output], name: name) }
    public func sin(_ x: some OutputConvertible, name: String = "Sin") throws -> Output { try apply("Sin", [x.output], name: name) }
    public func erf(_ x: some OutputConvertible, name: String = "Erf") throws -> Output { try apply("Erf", [x.output], name: name) }
    public func erfc(_ x: some OutputConvertible, name: String = "Erfc") throws -> Output { try apply("Erfc", [x.output], name: name) }
    public func cos(_ x: some OutputConvertible, name: String = "Cos") throws -> Output { try apply("Cos", [x.output], name: name) }

    // MARK: comparison and logic

    public func equal(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Equal") throws -> Output { try apply("Equal", [x.output, y.output], name: name) }
    public func notEqual(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "NotEqual") throws -> Output { try apply("NotEqual", [x.output, y.output], name: name) }
    public func less(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Less") throws -> Output { try apply("Less", [x.output, y.output], name: name) }
    public func lessEqual(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "LessEqual") throws -> Output { try apply("LessEqual", [x.output, y.output], name: name) }
    public func greater(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Greater") throws -> Output { try apply("Greater", [x.output, y.output], name: name) }
    public func greaterEqual(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "GreaterEqual") throws -> Output { try apply("GreaterEqual", [x.output, y.output], name: name) }
    public func logicalAnd(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "LogicalAnd") throws -> Output { try apply("LogicalAnd", [x.output, y.output], name: name) }
    public func logicalOr(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "LogicalOr") throws -> Output { try apply("LogicalOr", [x.output, y.output], name: name) }
    public func logicalNot(_ x: some OutputConvertible, name: String = "LogicalNot") throws -> Output { try apply("LogicalNot", [x.output], name: name) }
    /// `(x or y) and not (x and y)`, built as TensorFlow builds it.
    public func logicalXor(_ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "LogicalXor") throws -> Output {
        try nameScope(name) {
            try logicalAnd(logicalOr(x, y), logicalNot(logicalAnd(x, y)))
        }
    }

    /// `tf.where(cond, x, y)`: elementwise choice with all three broadcast (SelectV2).
    public func `where`(_ condition: some OutputConvertible, _ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "SelectV2") throws -> Output {
        try apply("SelectV2", [condition.output, x.output, y.output], name: name, attrs: ["T": .type(x.output.dtype)])
    }
    /// TensorFlow 1's `select`/`where`: a vector condition picks rows.
    public func select(_ condition: some OutputConvertible, _ x: some OutputConvertible, _ y: some OutputConvertible, name: String = "Select") throws -> Output {
        try apply("Select", [condition.output, x.output, y.output], name: name, attrs: ["T": .type(x.output.dtype)])
    }

    public func cast(_ x: some OutputConvertible, to dtype: DType, name: String = "Cast") throws -> Output {
        if x.output.dtype == dtype { return x.output }
        return try apply("Cast", [x.output], name: name, attrs: ["SrcT": .type(x.output.dtype), "DstT": .type(dtype)])
    }
    public func toFloat(_ x: some OutputConvertible, name: String = "ToFloat") throws -> Output { try cast(x, to: .float32, name: name) }
    public func toDouble(_ x: some OutputConvertible, name: String = "ToDouble") throws -> Output { try cast(x, to: .float64, name: name) }
    public func toInt32(_ x: some OutputConvertible, name: String = "ToInt32") throws -> Output { try cast(x, to: .int32, name: name) }
    public func toInt64(_ x: some OutputConvertible, name: String = "ToInt64") throws -> Output { try cast(x, to: .int64, name: name) }

    /// `min(max(x, lo), hi)`; the bounds may be tensors.
    public func clipByValue(_ x: some OutputConvertible, _ lo: some OutputConvertible, _ hi: some OutputConvertible, name: String = "clip_by_value") throws -> Output {
        try nameScope(name) { try minimum(maximum(x, lo), hi) }
    }
    public func clipByValue(_ x: some OutputConvertible, min lo: Double, max hi: Double, name: String = "clip_by_value") throws -> Output {
        let t = x.output
        return try nameScope(name) {
            try minimum(maximum(t, constant(lo, dtype: t.dtype, name: "Const")), constant(hi, dtype: t.dtype, name: "Const"))
        }
    }

    // MARK: products and reductions

    public func matmul(_ a: some OutputConvertible, _ b: some OutputConvertible, transposeA: Bool = MathOps.MatMul.transposeA.defaultValue,
                       transposeB: Bool = MathOps.MatMul.transposeB.defaultValue,
                       name: String = "MatMul") throws -> Output {
        let (x, y) = (a.output, b.output)
        if (x.shape.rank ?? 2) > 2 || (y.shape.rank ?? 2) > 2 {
            return try batchMatmul(x, y, adjointA: transposeA, adjointB: transposeB, name: name)
        }
        return try apply("MatMul", [x, y], name: name, attrs: MathOps.MatMul.transposeA(transposeA) + MathOps.MatMul.transposeB(transposeB))
    }

    /// Matrix products over the last two dimensions; batch dimensions broadcast.
    public func batchMatmul(_ a: some OutputConvertible, _ b: some OutputConvertible, adjointA: Bool = MathOps.BatchMatMul.adjX.defaultValue,
                            adjointB: Bool = MathOps.BatchMatMul.adjY.defaultValue,
                            name: String = "MatMul") throws -> Output {
        try apply("BatchMatMulV2", [a.output, b.output], name: name, attrs: MathOps.BatchMatMul.adjX(adjointA) + MathOps.BatchMatMul.adjY(adjointB))
    }

    func axesInput(_ x: Output, _ axes: [Int]?) throws -> Output {
        let all: [Int]
        if let axes { all = axes } else {
            guard let r = x.shape.rank else {
                throw KilnError.unimplemented("reducing all axes of '\(x.name)' needs its rank, which is unknown")
            }
            all = Array(0..<r)
        }
        return try constant(Tensor(shape: [all.count], scalars: try Graph.narrow(all, name: "Const")), name: "Const")
    }

    func reduction(_ type: String, _ x: Output, axes: [Int]?, keepDims: Bool, name: String) throws -> Output {
        let idx = try axesInput(x, axes)
        return try apply(type, [x, idx], name: name, attrs: MathOps.Reduction.keepDims(keepDims) + ["Tidx": .type(.int32)])
    }

    /// Sum over `axes` (all axes when nil); negative axes count from the end.
    public func reduceSum(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "Sum") throws -> Output {
        try reduction("Sum", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceMean(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "Mean") throws -> Output {
        try reduction("Mean", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceMax(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "Max") throws -> Output {
        try reduction("Max", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceMin(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "Min") throws -> Output {
        try reduction("Min", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceProd(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "Prod") throws -> Output {
        try reduction("Prod", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceAll(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "All") throws -> Output {
        try reduction("All", x.output, axes: axes, keepDims: keepDims, name: name)
    }
    public func reduceAny(_ x: some OutputConvertible, axes: [Int]? = nil, keepDims: Bool = MathOps.Reduction.keepDims.defaultValue, name: String = "Any") throws -> Output {
        try reduction("Any", x.output, axes: axes, keepDims: keepDims, name: name)
    }

    public func argmax(_ x: some OutputConvertible, axis: Int, outputType: DType = MathOps.ArgReduce.outputType.defaultValue, name: String = "ArgMax") throws -> Output {
        let a = try int32Scalar(axis, name: "ArgMax/dimension")
        return try apply("ArgMax", [x.output, a], name: name, attrs: MathOps.ArgReduce.outputType(outputType) + ["Tidx": .type(.int32)])
    }
    public func argmin(_ x: some OutputConvertible, axis: Int, outputType: DType = MathOps.ArgReduce.outputType.defaultValue, name: String = "ArgMin") throws -> Output {
        let a = try int32Scalar(axis, name: "ArgMin/dimension")
        return try apply("ArgMin", [x.output, a], name: name, attrs: MathOps.ArgReduce.outputType(outputType) + ["Tidx": .type(.int32)])
    }
}
