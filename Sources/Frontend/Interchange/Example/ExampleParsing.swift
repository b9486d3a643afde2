import KilnIR

/// The host kernels of ParseSingleExample / ParseExampleV2: serialised tf.train.Examples to
/// dense tensors (FixedLenFeature) and sparse triples (VarLenFeature), with TensorFlow's
/// semantics and error wording (tensorflow/core/util/example_proto_fast_parsing.cc: a single
/// Example's errors start "Key: k.", a batch's "Name: n, Key: k, Index: i.").
struct ExampleParseConfig {
    struct Dense {
        let key: String
        /// The key as an Example's wire holds it, for lookups.
        let keyBytes: [UInt8]
        let dtype: DType
        let shape: [Int]
        /// No elements: the feature is required.
        let defaultValue: Tensor
        /// The values an Example holds for it (checked to fit an Int when the config is made).
        let elementCount: Int
    }
    struct Sparse {
        let key: String
        let keyBytes: [UInt8]
        let dtype: DType
    }
    var sparse: [Sparse]
    var dense: [Dense]

    /// The value types TensorFlow's Feature can hold.
    static let featureDTypes: Set<DType> = [.int64, .float32, .string]

    /// Checks what a session's attrs and inputs say; the shape function has checked the counts.
    init(sparseKeys: [String], sparseTypes: [DType], denseKeys: [String], denseTypes: [DType], denseShapes: [Shape],
         defaults: [Tensor]) throws {
        guard sparseKeys.count == sparseTypes.count, denseKeys.count == denseTypes.count,
              denseKeys.count == denseShapes.count, denseKeys.count == defaults.count else {
            throw KilnError.invalidArgument("Example parsing: \(sparseKeys.count) sparse keys for \(sparseTypes.count) types, \(denseKeys.count) dense keys for \(denseTypes.count) types, \(denseShapes.count) shapes and \(defaults.count) defaults")
        }
        for t in sparseTypes + denseTypes where !Self.featureDTypes.contains(t) {
            throw KilnError.invalidArgument("Invalid config dtype: \(ExampleParsing.typeName(t))")
        }
        sparse = zip(sparseKeys, sparseTypes).map { Sparse(key: $0, keyBytes: Array($0.utf8), dtype: $1) }
        dense = []
        for i in denseKeys.indices {
            guard let dims = denseShapes[i].concrete else {
                throw KilnError.invalidArgument("All dimensions of shape for feature \(denseKeys[i]) need to be known but received \(denseShapes[i]).")
            }
            guard let count = Sizes.product(dims) else {
                throw KilnError.invalidArgument("dense_shapes[\(i)] (key \(denseKeys[i])) is \(denseShapes[i]), whose size overflows")
            }
            let d = Dense(key: denseKeys[i], keyBytes: Array(denseKeys[i].utf8), dtype: denseTypes[i], shape: dims, defaultValue: defaults[i], elementCount: count)
            if defaults[i].dtype != d.dtype {
                throw KilnError.invalidArgument("dense_defaults[\(i)] has type \(ExampleParsing.typeName(defaults[i].dtype)) but Tdense[\(i)] is \(ExampleParsing.typeName(d.dtype))")
            }
            if defaults[i].elementCount != 0 && defaults[i].elementCount != d.elementCount {
                throw KilnError.invalidArgument("dense_defaults[\(i)] (key \(d.key)) has \(defaults[i].elementCount) elements but dense_shapes[\(i)] is \(denseShapes[i]), which needs \(d.elementCount)")
            }
            dense.append(d)
        }
    }
}

enum ExampleParsing {
    /// TensorFlow's DataTypeString: "float" and "double" for the float types.
    static func typeName(_ t: DType) -> String {
        switch t {
        case .float32: return "float"
        case .float64: return "double"
        default: return t.name
        }
    }

    /// TensorFlow's name for a list ("int64_list") and for its values in messages ("int64").
    static func listName(_ t: DType) -> String { t == .string ? "bytes_list" : "\(typeName(t))_list" }
    static func valueName(_ t: DType) -> String { t == .string ? "bytes" : typeName(t) }

    /// TensorFlow's error for bytes that are not an Example.
    static func notAnExample(_ bytes: [UInt8]) -> KilnError {
        KilnError.invalidArgument("Could not parse example input, value: '\(escaped(bytes))'")
    }

    /// What an Example holds for a key: its Feature message when that holds a list of `dtype`.
    enum Lookup {
        /// Absent, or an empty Feature.
        case absent
        case found(Range<Int>)
        /// A list of another dtype.
        case mismatch(DType)
    }

    static func lookup(_ wire: ExampleWire, _ key: [UInt8], _ dtype: DType) throws -> Lookup {
        guard let feature = wire.feature(key), let kind = try wire.kind(feature) else { return .absent }
        let found: DType = kind == .int64 ? .int64 : kind == .float ? .float32 : .string
        return found == dtype ? .found(feature) : .mismatch(found)
    }

    /// Bytes as C-escaped text for messages, at most `limit` of them (a record may be megabytes).
    static func escaped(_ bytes: [UInt8], limit: Int = 256) -> String {
        var s = ""
        for b in bytes.prefix(limit) {
            switch b {
            case UInt8(ascii: "\\"): s += "\\\\"
            case UInt8(ascii: "'"): s += "\\'"
            case UInt8(ascii: "\n"): s += "\\n"
            case 0x20..<0x7f: s.append(Character(Unicode.Scalar(b)))
            default: s += "\\" + String(b, radix: 8).leftPadded(to: 3)
            }
        }
        if bytes.count > limit { s += "...(\(bytes.count) bytes)" }
        return s
    }

    /// Flat values of one dtype, gathered over features and examples before making a tensor.
    struct Column {
        let dtype: DType
        var int64s: [Int64] = []
        var floats: [Float] = []
        var strings = TensorStrings()

        init(_ dtype: DType) { self.dtype = dtype }

        /// Appends a Feature's list, of the column's dtype, read in place: how many values it
        /// held; nil when it does not parse (or, for bytes, has more than `bytesLimit` values).
        mutating func append(_ wire: ExampleWire, _ feature: Range<Int>, bytesLimit: Int = Int.max) -> Int? {
            switch dtype {
            case .int64:
                let before = int64s.count
                return wire.appendInt64s(feature, to: &int64s) ? int64s.count - before : nil
            case .float32:
                let before = floats.count
                return wire.appendFloats(feature, to: &floats) ? floats.count - before : nil
            default:
                let before = strings.count
                return wire.appendByteStrings(feature, limit: bytesLimit, to: &strings) ? strings.count - before : nil
            }
        }

        mutating func append(_ t: Tensor) throws {
            switch dtype {
            case .int64: int64s += try t.scalars(as: Int64.self)
            case .float32: floats += try t.scalars(as: Float.self)
            default: strings.append(contentsOf: t.strings)
            }
        }

        var count: Int { dtype == .int64 ? int64s.count : dtype == .float32 ? floats.count : strings.count }

        mutating func reserve(_ n: Int) {
            switch dtype {
            case .int64: int64s.reserveCapacity(n)
            case .float32: floats.reserveCapacity(n)
            default: strings.reserve(n, bytesEach: 0)
            }
        }

        func tensor(_ shape: [Int]) throws -> Tensor {
            switch dtype {
            case .int64: return try Tensor(shape: shape, scalars: int64s)
            case .float32: return try Tensor(shape: shape, scalars: floats)
            default: return try Tensor(shape: shape, strings: strings)
            }
        }
    }

    /// One Example (ParseSingleExample, or ParseExampleV2 of a scalar): outputs in TensorFlow's
    /// order, sparse indices, sparse values, sparse shapes, dense values.
    static func parseSingle(_ serialized: TensorStrings, _ config: ExampleParseConfig) throws -> [Tensor] {
        // Read in place: the record is not copied out of its tensor.
        try serialized.bytes.withUnsafeBufferPointer { try parseSingle(ExampleWire($0), serialized, config) }
    }

    private static func parseSingle(_ wire: ExampleWire, _ serialized: TensorStrings, _ config: ExampleParseConfig) throws -> [Tensor] {
        var wire = wire
        guard wire.read(serialized.range(0)) else { throw notAnExample(serialized[0]) }
        var indices: [Tensor] = [], values: [Tensor] = [], shapes: [Tensor] = []
        for s in config.sparse {
            var column = Column(s.dtype)
            switch try lookup(wire, s.keyBytes, s.dtype) {
            case .absent: break
            case .mismatch(let found):
                throw KilnError.invalidArgument("Key: \(s.key).  Data types don't match. Expected type: \(typeName(s.dtype)), Actual type: \(typeName(found))")
            case .found(let f):
                guard column.append(wire, f) != nil else {
                    throw KilnError.invalidArgument("Key: \(s.key).  Can't parse serialized Example: Parsing \(listName(s.dtype)) failed.")
                }
            }
            let n = column.count
            indices.append(try Tensor(shape: [n, 1], scalars: (0..<Int64(n)).map { $0 }))
            values.append(try column.tensor([n]))
            shapes.append(try Tensor(shape: [1], scalars: [Int64(n)]))
        }
        var dense: [Tensor] = []
        for d in config.dense {
            let f: Range<Int>
            switch try lookup(wire, d.keyBytes, d.dtype) {
            case .found(let r): f = r
            case .mismatch(let found):
                throw KilnError.invalidArgument("Key: \(d.key).  Data types don't match. Data type: \(typeName(found)) but expected type: \(typeName(d.dtype))")
            case .absent:
                guard d.defaultValue.elementCount > 0 else {
                    throw KilnError.invalidArgument("Feature: \(d.key) (data type: \(typeName(d.dtype))) is required but could not be found.")
                }
                dense.append(try d.defaultValue.reshaped(to: d.shape))
                continue
            }
            var column = Column(d.dtype)
            guard column.append(wire, f, bytesLimit: d.elementCount) != nil else {
                throw KilnError.invalidArgument("Key: \(d.key).  Can't parse serialized Example: Parsing \(listName(d.dtype)) failed.")
            }
            guard column.count == d.elementCount else {
                throw KilnError.invalidArgument("Key: \(d.key).  Can't parse serialized Example: Some \(listName(d.dtype)) slice was not parsed.")
            }
            dense.append(try column.tensor(d.shape))
        }
        return indices + values + shapes + dense
    }

    /// A vector of Examples (ParseExampleV2): dense outputs [batch] + shape, sparse indices
    /// [n, 2] of (example, position) and dense shape [batch, longest list]. Every Example is read
    /// into one wire and its values appended to their outputs' columns in place, so an Example
    /// costs no allocation beyond its bytes values (the reader thread of a training pipeline
    /// parses on cores the training step uses).
    static func parseBatch(_ serialized: TensorStrings, names: TensorStrings, _ config: ExampleParseConfig) throws -> [Tensor] {
        try serialized.bytes.withUnsafeBufferPointer { try parseBatch(ExampleWire($0), serialized, names: names, config) }
    }

    private static func parseBatch(_ wire: ExampleWire, _ serialized: TensorStrings, names: TensorStrings, _ config: ExampleParseConfig) throws -> [Tensor] {
        let batch = serialized.count
        guard names.isEmpty || names.count == batch else {
            throw KilnError.invalidArgument("Expected len(names) == len(serialized), but got: \(names.count) vs. \(batch)")
        }
        let sparseConfig = config.sparse, denseConfig = config.dense
        var sparse = sparseConfig.map { (indices: [Int64](), column: Column($0.dtype), longest: 0) }
        var dense = denseConfig.map { Column($0.dtype) }
        let denseCounts = denseConfig.map(\.elementCount)
        // No more values than the records have bytes, whatever a (hostile) shape says.
        for k in dense.indices {
            let (n, overflow) = batch.multipliedReportingOverflow(by: denseCounts[k])
            dense[k].reserve(overflow ? serialized.bytes.count : min(n, serialized.bytes.count))
        }
        let sparseKeys = sparseConfig.map(\.keyBytes), denseKeys = denseConfig.map(\.keyBytes)
        let sparseTypes = sparseConfig.map(\.dtype), denseTypes = denseConfig.map(\.dtype)
        // Messages only: the loop below builds no closure and copies no config entry per Example.
        func error(_ e: Int, _ key: String, _ suffix: String) -> KilnError {
            KilnError.invalidArgument("Name: \(name(e)), Key: \(key), Index: \(e).  \(suffix)")
        }
        func name(_ e: Int) -> String { names.isEmpty ? "<unknown>" : String(decoding: names[e], as: UTF8.self) }
        var wire = wire
        for e in 0..<batch {
            guard wire.read(serialized.range(e)) else { throw notAnExample(serialized[e]) }
            for k in sparse.indices {
                let f: Range<Int>
                switch try lookup(wire, sparseKeys[k], sparseTypes[k]) {
                case .absent: continue
                case .mismatch(let found):
                    throw error(e, sparseConfig[k].key, "Data types don't match. Expected type: \(typeName(sparseTypes[k])), Actual type: \(typeName(found))")
                case .found(let r): f = r
                }
                guard let n = sparse[k].column.append(wire, f) else { throw error(e, sparseConfig[k].key, "Can't parse serialized Example.") }
                for j in 0..<n {
                    sparse[k].indices.append(Int64(e))
                    sparse[k].indices.append(Int64(j))
                }
                sparse[k].longest = max(sparse[k].longest, n)
            }
            for k in dense.indices {
                let f: Range<Int>
                switch try lookup(wire, denseKeys[k], denseTypes[k]) {
                case .found(let r): f = r
                case .mismatch(let found):
                    throw error(e, denseConfig[k].key, "Data types don't match. Data type: \(typeName(found)) but expected type: \(typeName(denseTypes[k]))")
                case .absent:
                    let d = denseConfig[k]
                    guard d.defaultValue.elementCount > 0 else {
                        throw KilnError.invalidArgument("Name: \(name(e)), Feature: \(d.key) (data type: \(typeName(d.dtype))) is required but could not be found.")
                    }
                    try dense[k].append(d.defaultValue)
                    continue
                }
                guard let n = dense[k].append(wire, f, bytesLimit: denseCounts[k]) else { throw error(e, denseConfig[k].key, "Can't parse serialized Example.") }
                guard n == denseCounts[k] else {
                    throw error(e, denseConfig[k].key, "Number of \(valueName(denseTypes[k])) values != expected.  Values size: \(n) but output shape: \(shapeText(denseConfig[k].shape))")
                }
            }
        }
        var out: [Tensor] = []
        for s in sparse { out.append(try Tensor(shape: [s.indices.count / 2, 2], scalars: s.indices)) }
        for s in sparse { out.append(try s.column.tensor([s.column.count])) }
        for s in sparse { out.append(try Tensor(shape: [2], scalars: [Int64(batch), Int64(s.longest)])) }
        for (k, d) in denseConfig.enumerated() { out.append(try dense[k].tensor([batch] + d.shape)) }
        return out
    }

    /// TensorShape::DebugString: "[7,30]".
    static func shapeText(_ dims: [Int]) -> String { "[" + dims.map(String.init).joined(separator: ",") + "]" }
}

private extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
