import KilnIR

/// TensorFlow's reader ops (io_ops): a reader op makes a reader the session keeps (its output is
/// a handle, a string scalar here, so compiled code never sees it); ReaderReadV2 and its kin take
/// that handle and a queue of filenames, and the session runs them on the host: the reader reads
/// the records of one file after another, dequeuing the next filename when a file is done.
public enum ReaderOps {
    public static let compressionType = Attr<String>("compression_type", default: "")

    static let defs: [OpDef] = [
        OpDef("TFRecordReaderV2", arity: .exactly(0), attrs: ["container": .string(""), "shared_name": .string("")],
              stateful: true, infer: { ctx in
            // TensorFlow's kernel accepts only these (RecordReaderOptions); anything else is an error at once.
            let compression = ctx.attrs[compressionType]
            guard ["", "ZLIB", "GZIP"].contains(compression) else {
                throw ctx.error("compression_type must be \"\", \"ZLIB\" or \"GZIP\", got \"\(compression)\"")
            }
            return [(.string, Shape([]))]
        }).declaring(compressionType),
        OpDef("ReaderReadV2", arity: .exactly(2), stateful: true, infer: { ctx in
            try checkHandles(ctx)
            return [(.string, Shape([])), (.string, Shape([]))]
        }).notDifferentiable(),
        OpDef("ReaderReadUpToV2", arity: .exactly(3), stateful: true, infer: { ctx in
            try checkHandles(ctx)
            guard ctx.dtype(2) == .int64, ctx.shape(2).isCompatible(with: Shape([])) else {
                throw ctx.error("num_records must be an int64 scalar, got \(ctx.dtype(2).name)\(ctx.shape(2))")
            }
            if let n = ctx.constantValue(2), n.double(at: 0) < 1 {
                throw ctx.error("num_records (\(Int(n.double(at: 0)))) must be > 0")
            }
            return [(.string, Shape(dims: [nil])), (.string, Shape(dims: [nil]))]
        }).notDifferentiable(),
        OpDef("ReaderNumRecordsProducedV2", arity: .exactly(1), stateful: true, infer: { ctx in
            try checkHandle(ctx, 0, "reader_handle")
            return [(.int64, Shape([]))]
        }).notDifferentiable(),
        OpDef("ReaderNumWorkUnitsCompletedV2", arity: .exactly(1), stateful: true, infer: { ctx in
            try checkHandle(ctx, 0, "reader_handle")
            return [(.int64, Shape([]))]
        }).notDifferentiable(),
        OpDef("ReaderResetV2", arity: .exactly(1), stateful: true, infer: { ctx in
            try checkHandle(ctx, 0, "reader_handle")
            return []
        }).notDifferentiable(),
    ].map { $0.answeredBySession(.reader).notDifferentiable() }

    /// Every reader op type: the session answers all of them on the host.
    public static let types: Set<String> = Set(defs.map(\.name))
    /// The ops that make a reader.
    public static let readerTypes: Set<String> = ["TFRecordReaderV2"]

    /// The reader op behind a handle (through Identity ops), nil when it is not a reader op.
    public static func readerOp(of handle: Output) -> Operation? {
        var o = handle
        while o.op.type == "Identity" { o = o.op.inputs[0] }
        return readerTypes.contains(o.op.type) ? o.op : nil
    }

    static func checkHandle(_ ctx: InferenceContext, _ i: Int, _ what: String) throws {
        guard ctx.dtype(i) == .string, ctx.shape(i).isCompatible(with: Shape([])) else {
            throw ctx.error("\(what) must be a handle (a string scalar), got \(ctx.dtype(i).name)\(ctx.shape(i))")
        }
        // The session finds the reader or queue by the op that made the handle, so that op must be one.
        if what == "reader_handle" && readerOp(of: ctx.inputs[i]) == nil {
            throw ctx.error("reader_handle must come from a reader op (TFRecordReaderV2), got '\(ctx.inputs[i].name)' (op: \(ctx.inputs[i].op.type))")
        }
        if what == "queue_handle" && QueueOps.queueOp(of: ctx.inputs[i]) == nil {
            throw ctx.error("queue_handle must come from a queue op (FIFOQueueV2, RandomShuffleQueueV2), got '\(ctx.inputs[i].name)' (op: \(ctx.inputs[i].op.type))")
        }
    }

    static func checkHandles(_ ctx: InferenceContext) throws {
        try checkHandle(ctx, 0, "reader_handle")
        try checkHandle(ctx, 1, "queue_handle")
    }
}
