import Foundation
import KilnIR

extension Graph {
    /// TensorFlow 1's `tf.summary` module: `g.summary.scalar("loss", loss)`.
    public var summary: SummaryAPI { SummaryAPI(graph: self) }
}

/// TensorFlow 1's `tf.summary`: ops giving serialized `Summary` string scalars, each added to the
/// `summaries` collection (or to `collections`), to be merged and written by a FileWriter.
/// As in TensorFlow, a summary op is named for its (cleaned, scoped, uniquified) name, and that
/// name is its tag: `scalar("loss", x)` inside scope "train" makes op and tag `train/loss`.
public struct SummaryAPI {
    public let graph: Graph

    /// A scalar (tf.summary.scalar): a simple_value under the tag.
    @discardableResult
    public func scalar(_ name: String, _ tensor: some OutputConvertible, collections: [String]? = nil) throws -> Output {
        let x = tensor.output
        guard x.shape.isCompatible(with: Shape([])) else {
            throw KilnError.invalidArgument("tf.summary.scalar '\(name)' needs a scalar, got '\(x.name)' of shape \(x.shape)")
        }
        return try summaryOp("ScalarSummary", name, collections: collections) { tag in
            (inputs: [try graph.constant(Tensor(tag), name: "tags"), x], attrs: ["T": .type(x.dtype)])
        }
    }

    /// A histogram of every element (tf.summary.histogram) with TensorFlow's default buckets.
    @discardableResult
    public func histogram(_ name: String, _ values: some OutputConvertible, collections: [String]? = nil) throws -> Output {
        let x = values.output
        return try summaryOp("HistogramSummary", name, collections: collections) { tag in
            (inputs: [try graph.constant(Tensor(tag), name: "tag"), x], attrs: ["T": .type(x.dtype)])
        }
    }

    /// Up to `maxOutputs` images of a [batch, height, width, channels] tensor (channels 1, 3 or
    /// 4; uint8, or float scaled as TensorFlow does), PNG-encoded, tagged `name/image/<i>`
    /// (`name/image` when `maxOutputs` is 1).
    @discardableResult
    public func image(_ name: String, _ images: some OutputConvertible, maxOutputs: Int = SummaryOps.maxImages.defaultValue, collections: [String]? = nil) throws -> Output {
        let x = images.output
        return try summaryOp("ImageSummary", name, collections: collections) { tag in
            (inputs: [try graph.constant(Tensor(tag), name: "tag"), x], attrs: ["T": .type(x.dtype)] + SummaryOps.maxImages(maxOutputs))
        }
    }

    /// A string tensor shown by TensorBoard's text plugin (tf.summary.text).
    @discardableResult
    public func text(_ name: String, _ tensor: some OutputConvertible, collections: [String]? = nil) throws -> Output {
        let x = tensor.output
        guard x.dtype == .string else {
            throw KilnError.invalidArgument("tf.summary.text '\(name)' needs a string tensor, got '\(x.name)' of dtype \(x.dtype.name)")
        }
        var metadata = Tensorflow_SummaryMetadata()
        metadata.pluginData.pluginName = "text"
        let serialized: [UInt8] = try metadata.serializedBytes()
        return try summaryOp("TensorSummaryV2", name, collections: collections) { tag in
            (inputs: [try graph.constant(Tensor(tag), name: "tag"), x,
                      try graph.constant(Tensor(shape: [], strings: [serialized]), name: "serialized_summary_metadata")],
             attrs: ["T": .type(.string)])
        }
    }

    /// One Summary holding the values of all `inputs` (tf.summary.merge): op `Merge/MergeSummary`,
    /// or `<name>/<name>` as TensorFlow names it.
    @discardableResult
    public func merge(_ inputs: [Output], collections: [String] = [], name: String? = nil) throws -> Output {
        guard !inputs.isEmpty else { throw KilnError.invalidArgument("tf.summary.merge needs at least one summary") }
        let merged = try graph.nameScope(name ?? "Merge") {
            try graph.addOperation("MergeSummary", name: name ?? "MergeSummary", inputs: inputs, attrs: ["N": .int(inputs.count)]).output()
        }
        for c in collections { graph.addToCollection(c, merged) }
        return merged
    }

    /// Every summary in collection `key` merged (tf.summary.merge_all), or nil when there is none.
    public func mergeAll(key: String = GraphKeys.summaries, name: String? = nil) throws -> Output? {
        let ops = graph.collection(key).compactMap { $0 as? Output }
        return ops.isEmpty ? nil : try merge(ops, name: name)
    }

    /// TensorFlow's clean_tag: characters outside [-/\w.] become '_', and a leading '/' is dropped.
    public static func cleanTag(_ name: String) -> String {
        var out = String(name.unicodeScalars.map { c -> Character in
            let ok = c == "-" || c == "/" || c == "." || c == "_" || CharacterSet.alphanumerics.contains(c)
            return ok ? Character(c) : "_"
        })
        while out.hasPrefix("/") { out.removeFirst() }
        return out
    }

    /// TensorFlow's summary_scope: a name scope named for the summary, whose name is the tag and
    /// the op's name; the op joins `collections` (default: the summaries collection).
    private func summaryOp(_ type: String, _ name: String, collections: [String]?,
                           _ build: (String) throws -> (inputs: [Output], attrs: [String: AttrValue])) throws -> Output {
        let cleaned = SummaryAPI.cleanTag(name)
        guard !cleaned.isEmpty else { throw KilnError.invalidArgument("a summary needs a non-empty name") }
        let out = try graph.nameScope(cleaned) {
            let tag = graph.currentNameScope
            let (inputs, attrs) = try build(tag)
            return try graph.addOperation(type, name: tag, inputs: inputs, attrs: attrs, nameIsFinal: true).output()
        }
        for c in collections ?? [GraphKeys.summaries] { graph.addToCollection(c, out) }
        return out
    }
}
