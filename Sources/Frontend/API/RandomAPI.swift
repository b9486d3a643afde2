import KilnIR

/// TensorFlow's random functions. Seeds follow TensorFlow's rules: with a graph seed, an op
/// without its own seed gets one from the graph's op count; with neither, numbers differ per session.
extension Graph {
    /// TensorFlow's get_seed: the (seed, seed2) attribute pair for a new random op.
    public func seeds(_ opSeed: Int?) -> (Int, Int) {
        if let graphSeed = seed { return (graphSeed, opSeed ?? operations.count) }
        if let opSeed { return (87_654_321, opSeed) }
        return (0, 0)
    }

    func randomOp(_ type: String, shape: [Int], dtype: DType, seed opSeed: Int?, name: String, extra: [Output] = []) throws -> Output {
        let (s1, s2) = seeds(opSeed)
        return try addOperation(type, name: name, inputs: [int32s(shape, name: name + "/shape")] + extra,
                                attrs: ["dtype": .type(dtype), "T": .type(.int32), "seed": .int(s1), "seed2": .int(s2)]).output()
    }

    public func randomNormal(_ shape: [Int], mean: Double = 0, stddev: Double = 1, dtype: DType = .float32, seed: Int? = nil,
                             name: String = "random_normal") throws -> Output {
        try nameScope(name) {
            let r = try randomOp("RandomStandardNormal", shape: shape, dtype: dtype, seed: seed, name: "RandomStandardNormal")
            return try add(multiply(r, constant(stddev, dtype: dtype, name: "stddev"), name: "mul"), constant(mean, dtype: dtype, name: "mean"), name: "add")
        }
    }

    /// Normal values redrawn until within two standard deviations of the mean.
    public func truncatedNormal(_ shape: [Int], mean: Double = 0, stddev: Double = 1, dtype: DType = .float32, seed: Int? = nil,
                                name: String = "truncated_normal") throws -> Output {
        try nameScope(name) {
            let r = try randomOp("TruncatedNormal", shape: shape, dtype: dtype, seed: seed, name: "TruncatedNormal")
            return try add(multiply(r, constant(stddev, dtype: dtype, name: "stddev"), name: "mul"), constant(mean, dtype: dtype, name: "mean"), name: "add")
        }
    }

    /// Uniform in [minval, maxval): floats, or integers when `dtype` is int32/int64.
    public func randomUniform(_ shape: [Int], minval: Double = 0, maxval: Double? = nil, dtype: DType = .float32, seed: Int? = nil,
                              name: String = "random_uniform") throws -> Output {
        try nameScope(name) {
            if dtype.isInteger {
                guard let maxval else { throw KilnError.invalidArgument("'\(name)': integer random_uniform needs maxval") }
                let lo = try constant(minval, dtype: dtype, name: "min"), hi = try constant(maxval, dtype: dtype, name: "max")
                let (s1, s2) = seeds(seed)
                return try addOperation("RandomUniformInt", name: "RandomUniformInt", inputs: [int32s(shape, name: "shape"), lo, hi],
                                        attrs: ["Tout": .type(dtype), "T": .type(.int32), "seed": .int(s1), "seed2": .int(s2)]).output()
            }
            let hiValue = maxval ?? 1
            let r = try randomOp("RandomUniform", shape: shape, dtype: dtype, seed: seed, name: "RandomUniform")
            let range = try constant(hiValue - minval, dtype: dtype, name: "sub")
            return try add(multiply(r, range, name: "mul"), constant(minval, dtype: dtype, name: "min"), name: "add")
        }
    }

    /// The rows of `value` (dimension 0) in a random order.
    public func randomShuffle(_ value: some OutputConvertible, seed: Int? = nil, name: String = "RandomShuffle") throws -> Output {
        let (s1, s2) = seeds(seed)
        return try addOperation("RandomShuffle", name: name, inputs: [value.output],
                                attrs: ["T": .type(value.output.dtype), "seed": .int(s1), "seed2": .int(s2)]).output()
    }
}
