import KilnIR

/// How a new variable's initial value is made (TensorFlow's initializers). Builds graph ops for
/// a given shape and dtype.
public struct Initializer: Sendable {
    let make: @Sendable (Graph, [Int], DType) throws -> Output

    public init(_ make: @escaping @Sendable (Graph, [Int], DType) throws -> Output) { self.make = make }

    public func callAsFunction(_ g: Graph, shape: [Int], dtype: DType) throws -> Output { try make(g, shape, dtype) }

    public static let zeros = Initializer { g, s, d in try g.zeros(s, dtype: d, name: "zeros") }
    public static let ones = Initializer { g, s, d in try g.ones(s, dtype: d, name: "ones") }
    public static func constant(_ v: Double) -> Initializer { Initializer { g, s, d in try g.constant(v, dtype: d, shape: s, name: "Const") } }
    /// A fixed tensor of the right shape.
    public static func constant(_ t: Tensor) -> Initializer {
        Initializer { g, s, d in
            guard t.shape == s || t.elementCount == 1 else {
                throw KilnError.invalidArgument("constant initializer of shape \(t.shape) cannot fill a variable of shape \(s)")
            }
            let v = try t.converted(to: d)
            return t.shape == s ? try g.constant(v, name: "Const") : try g.constant(v.element(at: 0).asDouble, dtype: d, shape: s, name: "Const")
        }
    }
    public static func randomNormal(mean: Double = 0, stddev: Double = 1, seed: Int? = nil) -> Initializer {
        Initializer { g, s, d in try g.randomNormal(s, mean: mean, stddev: stddev, dtype: d, seed: seed) }
    }
    public static func truncatedNormal(mean: Double = 0, stddev: Double = 1, seed: Int? = nil) -> Initializer {
        Initializer { g, s, d in try g.truncatedNormal(s, mean: mean, stddev: stddev, dtype: d, seed: seed) }
    }
    public static func randomUniform(minval: Double = 0, maxval: Double = 1, seed: Int? = nil) -> Initializer {
        Initializer { g, s, d in try g.randomUniform(s, minval: minval, maxval: maxval, dtype: d, seed: seed) }
    }

    public enum FanMode: Sendable { case fanIn, fanOut, fanAvg }
    public enum Distribution: Sendable { case truncatedNormal, untruncatedNormal, uniform }

    /// Fans as TensorFlow computes them: the last two dimensions are (in, out) and the leading
    /// ones form the receptive field.
    static func fans(_ s: [Int]) -> (Double, Double) {
        switch s.count {
        case 0: return (1, 1)
        case 1: return (Double(s[0]), Double(s[0]))
        default:
            let receptive = s.dropLast(2).reduce(1.0) { $0 * Double($1) }   // in Double: a hostile shape must not trap
            return (Double(s[s.count - 2]) * receptive, Double(s[s.count - 1]) * receptive)
        }
    }

    public static func varianceScaling(scale: Double = 1, mode: FanMode = .fanIn, distribution: Distribution = .truncatedNormal,
                                       seed: Int? = nil) -> Initializer {
        Initializer { g, s, d in
            let (fanIn, fanOut) = fans(s)
            let n = mode == .fanIn ? fanIn : mode == .fanOut ? fanOut : (fanIn + fanOut) / 2
            let variance = scale / Swift.max(1, n)
            switch distribution {
            case .truncatedNormal:
                // 0.8796... is the standard deviation of a unit normal truncated at two sigmas.
                return try g.truncatedNormal(s, stddev: variance.squareRoot() / 0.87962566103423978, dtype: d, seed: seed)
            case .untruncatedNormal:
                return try g.randomNormal(s, stddev: variance.squareRoot(), dtype: d, seed: seed)
            case .uniform:
                let limit = (3 * variance).squareRoot()
                return try g.randomUniform(s, minval: -limit, maxval: limit, dtype: d, seed: seed)
            }
        }
    }

    public static func glorotUniform(seed: Int? = nil) -> Initializer { varianceScaling(scale: 1, mode: .fanAvg, distribution: .uniform, seed: seed) }
    public static func glorotNormal(seed: Int? = nil) -> Initializer { varianceScaling(scale: 1, mode: .fanAvg, distribution: .truncatedNormal, seed: seed) }
    /// TensorFlow 1's contrib names for the Glorot initializers.
    public static func xavier(uniform: Bool = true, seed: Int? = nil) -> Initializer { uniform ? glorotUniform(seed: seed) : glorotNormal(seed: seed) }
    public static func heNormal(seed: Int? = nil) -> Initializer { varianceScaling(scale: 2, mode: .fanIn, distribution: .truncatedNormal, seed: seed) }
}

/// A penalty on a variable's value added to the REGULARIZATION_LOSSES collection.
public struct Regularizer: Sendable {
    let make: @Sendable (Graph, Output) throws -> Output

    public init(_ make: @escaping @Sendable (Graph, Output) throws -> Output) { self.make = make }

    /// scale * sum(w²) / 2, as tf.contrib.layers.l2_regularizer: the product is named for its
    /// scope (`…/l2_regularizer`), its operands live inside it (`…/l2_regularizer/scale`).
    public static func l2(_ scale: Double) -> Regularizer {
        Regularizer { g, w in
            try g.nameScope("l2_regularizer") {
                try g.multiply(g.constant(scale, dtype: w.dtype, name: "scale"), g.l2Loss(w), name: g.currentNameScope + "/")
            }
        }
    }

    /// scale * sum(|w|), as tf.contrib.layers.l1_regularizer (named like l2).
    public static func l1(_ scale: Double) -> Regularizer {
        Regularizer { g, w in
            try g.nameScope("l1_regularizer") {
                try g.multiply(g.constant(scale, dtype: w.dtype, name: "scale"), g.reduceSum(g.abs(w)), name: g.currentNameScope + "/")
            }
        }
    }
}
