import KilnIR

/// tf.train.Example parsing and DecodeRaw: string work the session does on the host (compiled
/// code has no strings), with TensorFlow's op names, attrs and outputs.
public enum ParsingOps {
    public static let numSparse = Attr<Int>("num_sparse", default: 0)
    public static let sparseKeys = Attr<[String]>("sparse_keys", default: [])
    public static let denseKeys = Attr<[String]>("dense_keys", default: [])
    /// ParseExample's (TensorFlow 1) counts of sparse and dense keys.
    public static let nSparse = Attr<Int>("Nsparse", default: 0)
    public static let nDense = Attr<Int>("Ndense", default: 0)
    public static let littleEndian = Attr<Bool>("little_endian", default: true)

    static let defs: [OpDef] = [
        // Inputs: serialized (a scalar string), then one default per dense key (no elements:
        // the feature is required). Outputs: sparse indices, values and shapes per sparse key,
        // then the dense values.
        OpDef("ParseSingleExample", arity: .atLeast(1),
              attrs: ["sparse_types": .types([]), "Tdense": .types([]), "dense_shapes": .shapes([])],
              infer: { ctx in
            guard ctx.dtype(0) == .string, ctx.shape(0).isCompatible(with: Shape([])) else {
                throw ctx.error("serialized must be a scalar string, got \(ctx.dtype(0).name) of shape \(ctx.shape(0))")
            }
            return try outputs(ctx, sparseKeys: ctx.attrs[sparseKeys].count, denseKeys: ctx.attrs[denseKeys].count, defaultsFrom: 1, batch: nil)
        }, hostKernel: { inputs, attrs in
            let config = try ExampleParseConfig(
                sparseKeys: attrs[sparseKeys], sparseTypes: types(attrs["sparse_types"]),
                denseKeys: attrs[denseKeys], denseTypes: types(attrs["Tdense"]),
                denseShapes: shapes(attrs["dense_shapes"]), defaults: Array(inputs.dropFirst()))
            guard inputs[0].elementCount == 1, inputs[0].rank == 0 else {
                throw KilnError.invalidArgument("Input serialized must be a scalar, got shape \(Shape(inputs[0].shape))")
            }
            return try ExampleParsing.parseSingle(inputs[0].strings, config)
        }).declaring(numSparse, sparseKeys, denseKeys).notDifferentiable(),

        // Inputs: serialized (scalar or vector), names, sparse_keys, dense_keys, ragged_keys
        // (string vectors), then one default per dense key. Ragged features are not supported.
        OpDef("ParseExampleV2", arity: .atLeast(5),
              attrs: ["sparse_types": .types([]), "Tdense": .types([]), "dense_shapes": .shapes([]),
                      "ragged_value_types": .types([]), "ragged_split_types": .types([])],
              infer: { ctx in
            guard ctx.dtype(0) == .string, (ctx.shape(0).rank ?? 0) <= 1 else {
                throw ctx.error("serialized must be a scalar or vector of strings, got \(ctx.dtype(0).name) of shape \(ctx.shape(0))")
            }
            for i in 1...4 where ctx.dtype(i) != .string {
                throw ctx.error("input \(i) (names and keys) must be strings, got \(ctx.dtype(i).name)")
            }
            if !types(ctx.attrs["ragged_value_types"]).isEmpty {
                throw KilnError.unimplemented("ParseExampleV2 '\(ctx.nodeName)': ragged features (RaggedFeature) are not supported by Kiln")
            }
            let numSparse = ctx.attrs[ParsingOps.numSparse]
            let batch: Int?? = ctx.shape(0).rank == 1 ? .some(ctx.shape(0).dims![0]) : (ctx.shape(0).rank == 0 ? nil : .some(nil))
            return try outputs(ctx, sparseKeys: numSparse, denseKeys: ctx.inputs.count - 5, defaultsFrom: 5, batch: batch)
        }, hostKernel: { inputs, attrs in
            let config = try ExampleParseConfig(
                sparseKeys: inputs[2].strings.map { String(decoding: $0, as: UTF8.self) }, sparseTypes: types(attrs["sparse_types"]),
                denseKeys: inputs[3].strings.map { String(decoding: $0, as: UTF8.self) }, denseTypes: types(attrs["Tdense"]),
                denseShapes: shapes(attrs["dense_shapes"]), defaults: Array(inputs.dropFirst(5)))
            switch inputs[0].rank {
            case 0: return try ExampleParsing.parseSingle(inputs[0].strings, config)
            case 1: return try ExampleParsing.parseBatch(inputs[0].strings, names: inputs[1].strings, config)
            default: throw KilnError.invalidArgument("Expected serialized to be a scalar or vector, got shape: \(Shape(inputs[0].shape))")
            }
        }).declaring(numSparse).notDifferentiable(),

        // TensorFlow 1's batched op (graphs written by tf.parse_example before ParseExampleV2):
        // serialized, names, then Nsparse sparse keys, Ndense dense keys (string scalars) and
        // Ndense defaults.
        OpDef("ParseExample", arity: .atLeast(2),
              attrs: ["sparse_types": .types([]), "Tdense": .types([]), "dense_shapes": .shapes([])],
              infer: { ctx in
            let ns = ctx.attrs[nSparse], nd = ctx.attrs[nDense]
            guard ns >= 0, nd >= 0, ctx.inputs.count == 2 + ns + 2 * nd else {
                throw ctx.error("ParseExample takes serialized, names, \(ns) sparse keys, \(nd) dense keys and \(nd) defaults, got \(ctx.inputs.count) inputs")
            }
            guard ctx.dtype(0) == .string, ctx.shape(0).isCompatible(with: Shape(dims: [nil])) else {
                throw ctx.error("serialized must be a vector of strings, got \(ctx.dtype(0).name) of shape \(ctx.shape(0))")
            }
            for i in 1..<(2 + ns + nd) where ctx.dtype(i) != .string {
                throw ctx.error("input \(i) (names and keys) must be strings, got \(ctx.dtype(i).name)")
            }
            var attrs = ctx.attrs
            attrs[numSparse.name] = .int(ns)
            let inner = InferenceContext(nodeName: ctx.nodeName, opType: ctx.opType, inputs: ctx.inputs, attrs: attrs, concreteShapes: ctx.concreteShapes)
            return try outputs(inner, sparseKeys: ns, denseKeys: nd, defaultsFrom: 2 + ns + nd, batch: .some(ctx.shape(0).dims?[0] ?? nil))
        }, hostKernel: { inputs, attrs in
            let ns = attrs[nSparse], nd = attrs[nDense]
            func keys(_ r: Range<Int>) -> [String] { inputs[r].map { String(decoding: $0.strings.first ?? [], as: UTF8.self) } }
            let config = try ExampleParseConfig(
                sparseKeys: keys(2..<(2 + ns)), sparseTypes: types(attrs["sparse_types"]),
                denseKeys: keys((2 + ns)..<(2 + ns + nd)), denseTypes: types(attrs["Tdense"]),
                denseShapes: shapes(attrs["dense_shapes"]), defaults: Array(inputs[(2 + ns + nd)...]))
            return try ExampleParsing.parseBatch(inputs[0].strings, names: inputs[1].strings, config)
        }).declaring(nSparse, nDense).notDifferentiable(),

        // Bytes of each string reinterpreted as numbers: input shape + [bytes / element size].
        OpDef("DecodeRaw", arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0) == .string else { throw ctx.error("DecodeRaw takes strings, got \(ctx.dtype(0).name)") }
            let t = try DecodeRawKernel.outType(ctx.attrs["out_type"], node: ctx.nodeName)
            guard let dims = ctx.shape(0).dims else { return [(t, .unknown)] }
            return [(t, Shape(dims: dims + [nil]))]
        }, hostKernel: { inputs, attrs in
            [try DecodeRawKernel.decode(inputs[0], outType: DecodeRawKernel.outType(attrs["out_type"], node: "DecodeRaw"),
                                        littleEndian: attrs[littleEndian])]
        }).declaring(littleEndian).notDifferentiable(),
    ]

    static func types(_ a: AttrValue?) -> [DType] { if case .types(let t)? = a { return t }; return [] }
    static func shapes(_ a: AttrValue?) -> [Shape] { if case .shapes(let s)? = a { return s }; return [] }

    /// The outputs of both parse ops; `batch` is nil for one Example, else the batch dimension.
    static func outputs(_ ctx: InferenceContext, sparseKeys: Int, denseKeys: Int, defaultsFrom: Int, batch: Int??) throws -> [(DType, Shape)] {
        let sparseTypes = types(ctx.attrs["sparse_types"]), denseTypes = types(ctx.attrs["Tdense"])
        let denseShapes = shapes(ctx.attrs["dense_shapes"])
        let numSparse = ctx.attrs[ParsingOps.numSparse]
        guard numSparse == sparseKeys, sparseTypes.count == numSparse else {
            throw ctx.error("num_sparse (\(numSparse)) must match the number of sparse keys (\(sparseKeys)) and sparse_types (\(sparseTypes.count))")
        }
        guard denseTypes.count == denseKeys, denseShapes.count == denseKeys, ctx.inputs.count - defaultsFrom == denseKeys else {
            throw ctx.error("Tdense (\(denseTypes.count)), dense_shapes (\(denseShapes.count)) and dense_defaults (\(ctx.inputs.count - defaultsFrom)) must all match the dense keys (\(denseKeys))")
        }
        for t in sparseTypes + denseTypes where !ExampleParseConfig.featureDTypes.contains(t) {
            throw ctx.error("features hold int64, float32 or string values, not \(t.name)")
        }
        for (i, t) in denseTypes.enumerated() where ctx.dtype(defaultsFrom + i) != t {
            throw ctx.error("dense_defaults[\(i)] is \(ctx.dtype(defaultsFrom + i).name) but Tdense[\(i)] is \(t.name)")
        }
        for (i, s) in denseShapes.enumerated() where s.concrete == nil {
            throw ctx.error("All dimensions of shape for dense feature \(i) need to be known but received \(s)")
        }
        let lead: [Int?] = batch.map { [$0] } ?? []
        let rank = lead.count + 1
        return Array(repeating: (DType.int64, Shape(dims: [nil, rank])), count: numSparse)
            + sparseTypes.map { ($0, Shape(dims: [nil])) }
            + Array(repeating: (DType.int64, Shape([rank])), count: numSparse)
            + zip(denseTypes, denseShapes).map { ($0, Shape(dims: lead + $1.dims!)) }
    }
}

/// DecodeRaw's kernel, with TensorFlow's errors (tensorflow/core/kernels/decode_raw_op.cc).
enum DecodeRawKernel {
    static let supported: [DType] = [.uint8, .int16, .int32, .int64, .float32, .float64]

    static func outType(_ a: AttrValue?, node: String) throws -> DType {
        guard let t = a?.type else { throw KilnError.invalidArgument("DecodeRaw '\(node)' needs its out_type attribute") }
        guard supported.contains(t) else {
            throw KilnError.unimplemented("DecodeRaw '\(node)': out_type \(t.name) is not supported (Kiln decodes uint8, int16, int32, int64, float32 and float64)")
        }
        return t
    }

    static func decode(_ input: Tensor, outType: DType, littleEndian: Bool) throws -> Tensor {
        let strings = input.strings
        guard let size = strings.commonLength else {
            let first = strings.range(0).count
            let i = strings.indices.first { strings.range($0).count != first }!
            throw KilnError.invalidArgument("DecodeRaw requires input strings to all be the same size, but element \(i) has size \(first) != \(strings.range(i).count)")
        }
        if size == 0 { return try Tensor(zeros: outType, shape: input.shape + [0]) }
        let width = outType.byteSize
        guard size % width == 0 else {
            throw KilnError.invalidArgument("Input to DecodeRaw has length \(size) that is not a multiple of \(width), the size of \(ExampleParsing.typeName(outType))")
        }
        let perString = size / width
        // The strings' bytes lie one after another, as the elements do: one copy fills every one.
        let out = try Tensor(dtype: outType, shape: input.shape + [perString], buffer: TensorBuffer(byteCount: strings.bytes.count))
        let base = out.buffer.pointer.assumingMemoryBound(to: UInt8.self)
        strings.bytes.withUnsafeBufferPointer { base.update(from: $0.baseAddress!, count: $0.count) }
        // The host is little-endian: big-endian input has each element's bytes reversed.
        if !littleEndian && width > 1 {
            for e in 0..<(strings.count * perString) {
                let p = base + e * width
                for k in 0..<width / 2 { let t = p[k]; p[k] = p[width - 1 - k]; p[width - 1 - k] = t }
            }
        }
        return out
    }
}
