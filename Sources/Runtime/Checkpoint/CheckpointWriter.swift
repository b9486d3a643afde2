import Foundation
import KilnIR
import KilnFrontend
import SwiftProtobuf

/// Writes a TensorFlow V2 checkpoint (a tensor bundle): `prefix.index` and
/// `prefix.data-00000-of-00001`, byte-compatible with TensorFlow's BundleWriter.
public enum CheckpointWriter {
    /// kTensorBundleVersion: the bundle format version written in the header.
    static let bundleVersion: Int32 = 1

    /// Writes `tensors` under their keys (for a TF1 Saver, variable op names such as
    /// "conv1/weights"). Entries go to the data file and the index in bytewise key order, as
    /// TensorFlow's Saver writes them. Both files are written under temporary names and renamed
    /// into place only when complete, so a failure leaves any previous checkpoint intact.
    ///
    /// - Returns: the paths written (index, data).
    @discardableResult
    public static func write(_ tensors: [(key: String, tensor: Tensor)], prefix: String) throws -> [String] {
        try write(tensors, prefix: prefix, beforeCommit: {})
    }

    /// `beforeCommit` runs when both temporary files are complete, before either is renamed:
    /// tests make it throw to see that a failed save leaves the previous checkpoint alone.
    @discardableResult
    static func write(_ tensors: [(key: String, tensor: Tensor)], prefix: String, beforeCommit: () throws -> Void) throws -> [String] {
        var seen = Set<String>()
        for (key, _) in tensors {
            guard !key.isEmpty else { throw KilnError.invalidArgument("checkpoint keys must be non-empty (the empty key holds the bundle header)") }
            guard seen.insert(key).inserted else { throw KilnError.invalidArgument("checkpoint key '\(key)' appears twice") }
        }
        let sorted = tensors.map { (bytes: Array($0.key.utf8), tensor: $0.tensor) }
            .sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }

        let indexPath = CheckpointPaths.index(prefix: prefix)
        let dataPath = CheckpointPaths.data(prefix: prefix)
        let data = try AtomicFile(path: dataPath)
        var table = TableWriter()
        table.add(key: [], value: try header().serializedBytes())
        for (key, t) in sorted {
            var entry = Tensorflow_BundleEntryProto()
            entry.dtype = Tensorflow_DataType(t.dtype)
            entry.shape = Shape(t.shape).proto
            entry.offset = Int64(data.bytesWritten)
            let crc: UInt32
            if t.dtype == .string {
                let (bytes, c) = BundleStrings.encode(t.strings)
                try data.write(bytes)
                crc = c
            } else {
                crc = try t.withUnsafeBytes { raw in
                    try data.write(raw)
                    return CRC32C.checksum(raw)
                }
            }
            entry.size = Int64(data.bytesWritten) - entry.offset
            entry.crc32C = CRC32C.mask(crc)
            table.add(key: key, value: try entry.serializedBytes())
        }
        let index = try AtomicFile(path: indexPath)
        try index.write(table.finish())
        try beforeCommit()
        // Data before index, as TensorFlow does: an index is only ever visible with its data.
        try data.commit()
        try index.commit()
        return [indexPath, dataPath]
    }

    /// `[key: tensor]`, written in key order.
    @discardableResult
    public static func write(_ tensors: [String: Tensor], prefix: String) throws -> [String] {
        try write(tensors.map { (key: $0.key, tensor: $0.value) }, prefix: prefix)
    }

    static func header() -> Tensorflow_BundleHeaderProto {
        var h = Tensorflow_BundleHeaderProto()
        h.numShards = 1
        h.endianness = .little
        var v = Tensorflow_VersionDef()
        v.producer = bundleVersion
        h.version = v
        return h
    }
}
