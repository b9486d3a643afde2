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
    /// TensorFlow's Saver writes them. The save is atomic as a whole, even when it replaces a
    /// checkpoint with the same prefix and the process is killed half-way (CheckpointCommit):
    /// the prefix then holds either the old checkpoint or the new one.
    ///
    /// - Returns: the paths written (index, data).
    @discardableResult
    public static func write(_ tensors: [(key: String, tensor: Tensor)], prefix: String) throws -> [String] {
        try write(tensors, prefix: prefix, hook: nil)
    }

    /// `hook` runs at each step of the commit: tests make it throw to see that a failed or
    /// killed save leaves one complete checkpoint.
    @discardableResult
    static func write(_ tensors: [(key: String, tensor: Tensor)], prefix: String, hook: CheckpointCommit.Hook?) throws -> [String] {
        let files = try temporaries(tensors, prefix: prefix)
        try CheckpointCommit.commit(files, removing: [], name: prefix, hook: hook)
        return files.map(\.path).reversed()
    }

    /// The data file and the index of the bundle, complete under temporary names, for a
    /// CheckpointCommit to rename into place (data first, as TensorFlow does).
    static func temporaries(_ tensors: [(key: String, tensor: Tensor)], prefix: String) throws -> [AtomicFile] {
        var seen = Set<String>()
        for (key, _) in tensors {
            guard !key.isEmpty else { throw KilnError.invalidArgument("checkpoint keys must be non-empty (the empty key holds the bundle header)") }
            guard seen.insert(key).inserted else { throw KilnError.invalidArgument("checkpoint key '\(key)' appears twice") }
        }
        let sorted = tensors.map { (bytes: Array($0.key.utf8), tensor: $0.tensor) }
            .sorted { $0.bytes.lexicographicallyPrecedes($1.bytes) }

        let data = try AtomicFile(path: CheckpointPaths.data(prefix: prefix))
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
        let index = try AtomicFile(path: CheckpointPaths.index(prefix: prefix))
        try index.write(table.finish())
        return [data, index]
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
