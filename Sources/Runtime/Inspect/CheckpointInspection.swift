import Foundation
import KilnIR
import KilnFrontend

/// `kiln inspect` on a TensorFlow V2 checkpoint, named by its prefix (`model.ckpt-20`), its index
/// or one of its data files: every variable's dtype and shape, and every tensor read back from
/// the data files with its size and CRC32C verified (a mismatch is the reader's dataLoss error,
/// naming the data file and the offset).
enum CheckpointInspection {
    /// The prefix `path` names: itself when `<path>.index` exists, else `path` less `.index` or
    /// `.data-NNNNN-of-NNNNN` when that is the name; nil when it names no checkpoint.
    static func prefix(of path: String) -> String? {
        if CheckpointPaths.exists(prefix: path) { return path }
        if path.hasSuffix(".index") { return String(path.dropLast(".index".count)) }
        if let r = path.range(of: #"\.data-[0-9]{5}-of-[0-9]{5}$"#, options: .regularExpression) {
            let prefix = String(path[..<r.lowerBound])
            return CheckpointPaths.exists(prefix: prefix) ? prefix : nil
        }
        return nil
    }

    static func report(path: String) throws -> InspectReport {
        guard let prefix = prefix(of: path) else { throw KilnError.notFound("'\(path)' names no checkpoint") }
        let reader = try CheckpointReader(prefix: prefix)
        var lines = ["\(prefix): TensorFlow checkpoint (tensor bundle), \(reader.keys.count) tensor\(reader.keys.count == 1 ? "" : "s") "
                     + "in \(reader.header.numShards) data file\(reader.header.numShards == 1 ? "" : "s")"]
        var variables: [[String: Any]] = []
        var verified = 0, bytes: Int64 = 0
        let types = reader.keys.map { key -> (dtype: String, shape: String) in
            let entry = reader.entries[key]!
            return (entry.dtype.kilnDType?.name ?? entry.dtype.tensorflowName, (try? Shape(proto: entry.shape))?.description ?? "<invalid shape>")
        }
        let width = reader.keys.map(\.count).max() ?? 0, typeWidth = types.map { $0.dtype.count + 1 + $0.shape.count }.max() ?? 0
        for (key, (dtype, shape)) in zip(reader.keys, types) {
            let entry = reader.entries[key]!
            var v: [String: Any] = ["name": key, "dtype": dtype, "shape": shape, "bytes": Int(entry.size)]
            var detail: String
            do {
                // Reads the tensor: its size and CRC32C are checked against the index.
                let t = try reader.tensor(named: key)
                verified += 1
                bytes += entry.size
                v["checksum"] = "verified"
                if let s = TensorStatistics(t) { v.merge(s.json) { $1 } }
                detail = "crc32c ok  " + TensorStatistics.line(t)
            } catch let e as KilnError where e.code == .unimplemented {
                // A dtype or layout Kiln does not read: listed, but its checksum cannot be checked.
                v["checksum"] = "not checked: \(e.message)"
                detail = "crc32c not checked (\(e.message))"
            }
            variables.append(v)
            lines.append("  \(key.padding(toLength: width, withPad: " ", startingAt: 0))  \("\(dtype) \(shape)".padding(toLength: typeWidth, withPad: " ", startingAt: 0))  \(detail)")
        }
        lines.append("checksums: \(verified) of \(reader.keys.count) verified (\(bytes) bytes of tensor data)")
        return InspectReport(file: path, kind: .checkpoint, lines: lines, fields: [
            "prefix": prefix, "data_files": Int(reader.header.numShards), "variables": variables,
            "checksums_verified": verified, "tensor_count": reader.keys.count,
        ])
    }
}
