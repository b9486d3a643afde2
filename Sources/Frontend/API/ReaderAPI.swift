import KilnIR

/// TensorFlow's `tf.io.TFRecordOptions`: how the files a TFRecord reader reads are compressed.
public struct TFRecordOptions: Sendable, Equatable {
    /// TensorFlow's compression_type string: "" (none), "ZLIB" or "GZIP".
    public let compressionType: String

    public static let none = TFRecordOptions(checked: "")
    public static let zlib = TFRecordOptions(checked: "ZLIB")
    public static let gzip = TFRecordOptions(checked: "GZIP")

    /// From TensorFlow's strings ("", "NONE", "ZLIB", "GZIP", any case); others are invalidArgument.
    public init(compressionType: String) throws {
        switch compressionType.uppercased() {
        case "", "NONE": self = .none
        case "ZLIB": self = .zlib
        case "GZIP": self = .gzip
        default: throw KilnError.invalidArgument("unknown TFRecord compression type '\(compressionType)' (use \"\", \"ZLIB\" or \"GZIP\")")
        }
    }

    private init(checked: String) { compressionType = checked }
}

/// TensorFlow 1's `tf.TFRecordReader`: a reader op in the graph. Each `read(queue)` gives the
/// next record of the files whose names the queue holds, file after file: the key is
/// "<file>:<offset>" (the record's byte offset in the file, as TensorFlow's key), the value the
/// record's bytes. The reader itself lives in the session, made on first use.
///
///     let files = try FIFOQueue(g, capacity: 32, dtypes: [.string])   // or a string input producer
///     let reader = try TFRecordReader(graph: g, options: .gzip)
///     let (key, serialized) = try reader.read(files)
public final class TFRecordReader {
    public let graph: Graph
    /// The reader handle (TensorFlow's `reader_ref`).
    public let readerRef: Output

    public init(graph: Graph, options: TFRecordOptions = .none, name: String = "TFRecordReaderV2",
                sharedName: String = "", container: String = "") throws {
        self.graph = graph
        readerRef = try graph.addOperation("TFRecordReaderV2", name: name, attrs: [
            "compression_type": .string(options.compressionType), "shared_name": .string(sharedName), "container": .string(container),
        ]).output()
    }

    /// The next record: (key, value) string scalars. When the queue is closed and every file is
    /// read, the run fails with outOfRange (a Coordinator's signal to stop).
    public func read(_ queue: some OutputConvertible, name: String = "ReaderReadV2") throws -> (key: Output, value: Output) {
        let op = try graph.addOperation("ReaderReadV2", name: name, inputs: [readerRef, queue.output])
        return (op.output(0), op.output(1))
    }

    /// The next record of the files in `queue` (a queue of filename strings).
    public func read(_ queue: QueueBase, name: String = "ReaderReadV2") throws -> (key: Output, value: Output) {
        try read(queue.handle, name: name)
    }

    /// Up to `numRecords` records of the files in `queue`, all from one file.
    public func readUpTo(_ queue: QueueBase, numRecords: Int, name: String = "ReaderReadUpToV2") throws -> (keys: Output, values: Output) {
        try readUpTo(queue.handle, numRecords: numRecords, name: name)
    }

    /// Up to `numRecords` records, all from one file: (keys, values) string vectors.
    public func readUpTo(_ queue: some OutputConvertible, numRecords: Int, name: String = "ReaderReadUpToV2") throws -> (keys: Output, values: Output) {
        let n = try graph.constant(Tensor(Int64(numRecords)), name: name + "/num_records")
        let op = try graph.addOperation("ReaderReadUpToV2", name: name, inputs: [readerRef, queue.output, n])
        return (op.output(0), op.output(1))
    }

    /// How many records the reader has produced (an int64 scalar).
    public func numRecordsProduced(name: String = "ReaderNumRecordsProducedV2") throws -> Output {
        try graph.addOperation("ReaderNumRecordsProducedV2", name: name, inputs: [readerRef]).output()
    }

    /// How many files (work units) the reader has finished (an int64 scalar).
    public func numWorkUnitsCompleted(name: String = "ReaderNumWorkUnitsCompletedV2") throws -> Output {
        try graph.addOperation("ReaderNumWorkUnitsCompletedV2", name: name, inputs: [readerRef]).output()
    }

    /// An op that returns the reader to its initial state: no current file, counts at zero.
    public func reset(name: String = "ReaderResetV2") throws -> Operation {
        try graph.addOperation("ReaderResetV2", name: name, inputs: [readerRef])
    }
}
