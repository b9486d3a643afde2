import KilnIR

/// TensorBoard's summary ops (tensorflow/core/kernels/summary_*_op.cc), each giving a serialized
/// `Summary` protocol buffer as a string scalar. Strings live on the host, so the session runs
/// them (Runtime/Summary/SummaryKernels.swift, which also needs zlib for PNG images); these
/// entries give their names, attrs and shapes.
public enum SummaryOps {
    public static let maxImages = Attr<Int>("max_images", default: 3)

    static let defs: [OpDef] = [
        // tags and values of one shape: a simple_value per element, tagged by its tag.
        OpDef("ScalarSummary", arity: .exactly(2), attrs: ["T": .type(.float32)], infer: { ctx in
            try checkTag(ctx, 0, "tags", scalar: false)
            try checkNumeric(ctx, 1, "values")
            if !ctx.shape(0).isCompatible(with: ctx.shape(1)) {
                throw ctx.error("tags and values not the same shape: \(ctx.shape(0)) != \(ctx.shape(1))")
            }
            return summary
        }).notDifferentiable(),
        // TensorFlow's default-bucketed histogram of every element of values.
        OpDef("HistogramSummary", arity: .exactly(2), attrs: ["T": .type(.float32)], infer: { ctx in
            try checkTag(ctx, 0, "tag", scalar: true)
            try checkNumeric(ctx, 1, "values")
            return summary
        }).notDifferentiable(),
        // Up to max_images images of a [batch, height, width, channels] tensor as PNG; bad_color
        // (RGBA) replaces non-finite pixels of float images.
        OpDef("ImageSummary", arity: .exactly(2), attrs: ["T": .type(.float32), "bad_color": .tensor(defaultBadColor)], infer: { ctx in
            try checkTag(ctx, 0, "tag", scalar: true)
            guard [.uint8, .float32, .float64].contains(ctx.dtype(1)) else {
                throw ctx.error("images must be uint8, float32 or float64, got \(ctx.dtype(1).name)")
            }
            if let rank = ctx.shape(1).rank, rank != 4 {
                throw ctx.error("Tensor must be 4-D with last dim 1, 3, or 4, not \(ctx.shape(1))")
            }
            if let channels = ctx.shape(1).dims?[3], ![1, 3, 4].contains(channels) {
                throw ctx.error("Tensor must be 4-D with last dim 1, 3, or 4, not \(ctx.shape(1))")
            }
            guard ctx.attrs[maxImages] >= 1 else { throw ctx.error("max_images must be at least 1") }
            return summary
        }).declaring(maxImages),
        // Any tensor under a tag, with SummaryMetadata (the text plugin's, for tf.summary.text).
        OpDef("TensorSummaryV2", arity: .exactly(3), attrs: ["T": .type(.string)], infer: { ctx in
            try checkTag(ctx, 0, "tag", scalar: true)
            try checkTag(ctx, 2, "serialized_summary_metadata", scalar: true)
            return summary
        }).notDifferentiable(),
        // The values of every input Summary in one; a tag twice is an error.
        OpDef("MergeSummary", arity: .atLeast(1), attrs: ["N": .int(1)], infer: { ctx in
            for i in ctx.inputs.indices where ctx.dtype(i) != .string {
                throw ctx.error("input \(i) of MergeSummary must be a string (a serialized Summary), got \(ctx.dtype(i).name)")
            }
            return summary
        }).notDifferentiable(),
    ].map { $0.answeredBySession(.summary).notDifferentiable() }

    /// The op types the session runs with its summary kernels.
    public static let types: Set<String> = Set(defs.map(\.name))

    /// TensorFlow's bad_color default: opaque red.
    public static let defaultBadColor = try! Tensor(shape: [4], scalars: [UInt8(255), 0, 0, 255])

    private static let summary: [(DType, Shape)] = [(.string, Shape([]))]

    private static func checkTag(_ ctx: InferenceContext, _ i: Int, _ name: String, scalar: Bool) throws {
        guard ctx.dtype(i) == .string else { throw ctx.error("\(name) must be a string, got \(ctx.dtype(i).name)") }
        if scalar && !ctx.shape(i).isCompatible(with: Shape([])) {
            throw ctx.error("\(name) must be a scalar, got shape \(ctx.shape(i))")
        }
    }

    private static func checkNumeric(_ ctx: InferenceContext, _ i: Int, _ name: String) throws {
        guard ctx.dtype(i).isNumeric else { throw ctx.error("\(name) must be a real number tensor, got \(ctx.dtype(i).name)") }
    }
}
