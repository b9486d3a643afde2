import KilnIR

/// How a feature of serialised Examples is parsed (TensorFlow's `tf.io.FixedLenFeature` and
/// `tf.io.VarLenFeature`).
public protocol FeatureSpec: Sendable {}

/// A feature with a fixed number of values: a dense tensor of `shape`. Without `defaultValue`
/// the feature is required in every Example; with one, a missing feature takes it.
public struct FixedLenFeature: FeatureSpec {
    public let shape: [Int]
    public let dtype: DType
    public let defaultValue: Tensor?

    public init(_ shape: [Int], _ dtype: DType, defaultValue: Tensor? = nil) {
        self.shape = shape
        self.dtype = dtype
        self.defaultValue = defaultValue
    }
}

/// A feature with any number of values: a sparse tensor.
public struct VarLenFeature: FeatureSpec {
    public let dtype: DType
    public init(_ dtype: DType) { self.dtype = dtype }
}

/// TensorFlow's SparseTensor in a graph: `indices` int64 [N, rank], `values` [N], `denseShape`
/// int64 [rank].
public struct SparseOutput: Sendable {
    public let indices: Output
    public let values: Output
    public let denseShape: Output
}

/// One parsed feature: dense for a FixedLenFeature, sparse for a VarLenFeature.
public enum ParsedFeature: Sendable {
    case dense(Output)
    case sparse(SparseOutput)

    public var dense: Output? { if case .dense(let o) = self { return o }; return nil }
    public var sparse: SparseOutput? { if case .sparse(let s) = self { return s }; return nil }
}

extension Graph {
    /// TensorFlow's `tf.io.parse_single_example`: one serialised Example (a scalar string) to
    /// its features. Dense results have the FixedLenFeature's shape; a VarLenFeature gives
    /// indices [n, 1], values [n] and dense shape [n].
    public func parseSingleExample(_ serialized: some OutputConvertible, features: [String: any FeatureSpec],
                                   name: String = "ParseSingleExample") throws -> [String: ParsedFeature] {
        let spec = try ParseSpec(features, name: name)
        let defaults = try spec.defaults(in: self, name: name)
        let op = try addOperation("ParseSingleExample", name: name, inputs: [serialized.output] + defaults, attrs: [
            "num_sparse": .int(spec.sparse.count), "sparse_keys": .strings(spec.sparse.map(\.key)),
            "dense_keys": .strings(spec.dense.map(\.key)), "sparse_types": .types(spec.sparse.map(\.dtype)),
            "Tdense": .types(spec.dense.map(\.spec.dtype)), "dense_shapes": .shapes(spec.dense.map { Shape($0.spec.shape) }),
        ])
        return spec.results(of: op)
    }

    /// TensorFlow's `tf.io.parse_example` (ParseExampleV2): a vector of serialised Examples to
    /// batched features, dense [batch] + shape, sparse with indices [n, 2] of (example, position).
    public func parseExample(_ serialized: some OutputConvertible, features: [String: any FeatureSpec],
                             name: String = "ParseExample") throws -> [String: ParsedFeature] {
        let spec = try ParseSpec(features, name: name)
        func strings(_ v: [String], _ suffix: String) throws -> Output {
            try constant(Tensor(shape: [v.count], strings: v.map { Array($0.utf8) }), name: name + "/" + suffix)
        }
        let keys = [try strings([], "names"), try strings(spec.sparse.map(\.key), "sparse_keys"),
                    try strings(spec.dense.map(\.key), "dense_keys"), try strings([], "ragged_keys")]
        let defaults = try spec.defaults(in: self, name: name)
        let op = try addOperation("ParseExampleV2", name: name, inputs: [serialized.output] + keys + defaults, attrs: [
            "num_sparse": .int(spec.sparse.count), "sparse_types": .types(spec.sparse.map(\.dtype)),
            "Tdense": .types(spec.dense.map(\.spec.dtype)), "dense_shapes": .shapes(spec.dense.map { Shape($0.spec.shape) }),
            "ragged_value_types": .types([]), "ragged_split_types": .types([]),
        ])
        return spec.results(of: op)
    }

    /// TensorFlow's `tf.io.decode_raw`: each string's bytes as numbers of `outType`; the result
    /// has the input's shape plus one dimension, the number of values per string.
    public func decodeRaw(_ bytes: some OutputConvertible, outType: DType, littleEndian: Bool = ParsingOps.littleEndian.defaultValue,
                          name: String = "DecodeRaw") throws -> Output {
        try addOperation("DecodeRaw", name: name, inputs: [bytes.output],
                         attrs: ["out_type": .type(outType)] + ParsingOps.littleEndian(littleEndian)).output()
    }
}

/// The features of a parse call in TensorFlow's order: sparse and dense keys each sorted.
private struct ParseSpec {
    let sparse: [(key: String, dtype: DType)]
    let dense: [(key: String, spec: FixedLenFeature)]

    init(_ features: [String: any FeatureSpec], name: String) throws {
        var sparse: [(key: String, dtype: DType)] = [], dense: [(key: String, spec: FixedLenFeature)] = []
        for key in features.keys.sorted() {
            switch features[key] {
            case let f as FixedLenFeature:
                guard f.shape.allSatisfy({ $0 >= 0 }) else {
                    throw KilnError.invalidArgument("All dimensions of shape for feature \(key) need to be known but received \(Shape(f.shape)).")
                }
                dense.append((key, f))
            case let f as VarLenFeature: sparse.append((key, f.dtype))
            default: throw KilnError.invalidArgument("\(name): feature \(key) must be a FixedLenFeature or VarLenFeature")
            }
        }
        for (key, t) in sparse.map({ ($0.key, $0.dtype) }) + dense.map({ ($0.key, $0.spec.dtype) })
            where !ExampleParseConfig.featureDTypes.contains(t) {
            throw KilnError.invalidArgument("\(name): feature \(key) has dtype \(t.name); Examples hold int64, float32 or string values")
        }
        self.sparse = sparse
        self.dense = dense
    }

    /// One Const per dense feature: its default reshaped to the feature's shape, or an empty
    /// tensor for a required feature (TensorFlow's encoding).
    func defaults(in graph: Graph, name: String) throws -> [Output] {
        try dense.map { key, f in
            var value = try Tensor(zeros: f.dtype, shape: [0])
            if let d = f.defaultValue {
                guard d.dtype == f.dtype else {
                    throw KilnError.invalidArgument("\(name): the default of feature \(key) is \(d.dtype.name), not \(f.dtype.name)")
                }
                let n = f.shape.reduce(1, *)
                guard d.elementCount == n else {
                    throw KilnError.invalidArgument("\(name): the default of feature \(key) has \(d.elementCount) values; its shape \(Shape(f.shape)) needs \(n)")
                }
                value = try d.reshaped(to: f.shape)
            }
            return try graph.constant(value, name: name + "/dense_default")
        }
    }

    func results(of op: Operation) -> [String: ParsedFeature] {
        var r: [String: ParsedFeature] = [:]
        let n = sparse.count
        for (i, s) in sparse.enumerated() {
            r[s.key] = .sparse(SparseOutput(indices: op.output(i), values: op.output(n + i), denseShape: op.output(2 * n + i)))
        }
        for (i, d) in dense.enumerated() { r[d.key] = .dense(op.output(3 * n + i)) }
        return r
    }
}
