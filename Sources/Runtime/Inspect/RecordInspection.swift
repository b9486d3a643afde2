import Foundation
import KilnIR
import KilnFrontend

/// `kiln inspect` on a TFRecord file (plain, GZIP or ZLIB, told by its first bytes): every
/// record's framing and CRCs checked, the count, and the first records decoded as
/// tf.train.Example (feature names, kinds and abbreviated values) when they parse as one.
enum RecordInspection {
    static let decodedRecords = 3
    /// Values shown per feature, and characters per string value.
    static let shownValues = 6, shownCharacters = 40

    /// The compression of a TFRecord file starting with `head`: none when the first record's
    /// length CRC matches, GZIP or ZLIB by their stream headers; nil when it is none of these.
    static func compression(of head: [UInt8]) -> TFRecordCompression? {
        if head.count >= TFRecordFraming.headerBytes {
            let stored = (0..<4).reduce(UInt32(0)) { $0 | UInt32(head[8 + $1]) << (8 * UInt32($1)) }
            if CRC32C.unmask(stored) == CRC32C.checksum(head[0..<8]) { return TFRecordCompression.none }
        }
        if head.count >= 2, head[0] == 0x1f, head[1] == 0x8b { return .gzip }
        if head.count >= 2, head[0] & 0x0f == 8, (UInt16(head[0]) << 8 | UInt16(head[1])) % 31 == 0 { return .zlib }
        return nil
    }

    static func report(path: String) throws -> InspectReport {
        guard let data = FileManager.default.contents(atPath: path) else { throw KilnError.notFound("cannot read TFRecord file '\(path)'") }
        let bytes = [UInt8](data)
        let compression = compression(of: Array(bytes.prefix(TFRecordFraming.headerBytes))) ?? .none
        let reader = try TFRecordFileReader(bytes: bytes, compression: compression, source: path)
        var count = 0, payload = 0
        var examples: [[String: Any]] = []
        var shown: [String] = []
        while let record = try reader.next() {
            if count < decodedRecords {
                let (json, text) = describe(record)
                examples.append(json.merging(["record": count, "bytes": record.count]) { $1 })
                shown.append("  record \(count) (\(record.count) bytes): " + text.first!)
                shown += text.dropFirst().map { "    " + $0 }
            }
            count += 1
            payload += record.count
        }
        let kind = compression == .none ? "TFRecord file" : "TFRecord file, \(compression.rawValue)-compressed"
        let lines = ["\(path): \(kind), \(count) record\(count == 1 ? "" : "s") (\(payload) bytes of data), every CRC verified"]
            + (count > 0 ? ["first \(min(count, decodedRecords)) record\(min(count, decodedRecords) == 1 ? "" : "s"):"] : []) + shown
        return InspectReport(file: path, kind: .tfrecord, lines: lines, fields: [
            "compression": compression == .none ? "NONE" : compression.rawValue, "records": count, "data_bytes": payload, "first_records": examples,
        ])
    }

    /// A record as an Example: JSON and text lines (the first line: what it is).
    static func describe(_ record: [UInt8]) -> (json: [String: Any], text: [String]) {
        guard let e = try? Example(serialized: record), !(e.features.isEmpty && !record.isEmpty) else {
            return (["example": false], ["not a tf.train.Example"])
        }
        var features: [String: Any] = [:]
        var text = ["tf.train.Example, \(e.features.count) feature\(e.features.count == 1 ? "" : "s")"]
        for name in e.features.keys.sorted() {
            let (kind, values, total) = abbreviate(e.features[name]!)
            features[name] = ["kind": kind, "count": total, "values": values]
            text.append("\(name): \(kind) x\(total) [\(values.joined(separator: ", "))\(total > values.count ? ", ..." : "")]")
        }
        return (["example": true, "features": features], text)
    }

    /// The kind, the first values as text, and how many there are.
    static func abbreviate(_ f: Example.Feature) -> (String, [String], Int) {
        switch f {
        case .int64(let v): return ("int64_list", v.prefix(shownValues).map { String($0) }, v.count)
        case .float(let v): return ("float_list", v.prefix(shownValues).map { TensorStatistics.format($0) }, v.count)
        case .bytes(let v): return ("bytes_list", v.prefix(shownValues).map(bytesText), v.count)
        }
    }

    /// Printable UTF-8 as a quoted string (cut at 40 characters), anything else as its length.
    static func bytesText(_ b: [UInt8]) -> String {
        guard let s = String(validating: b, as: UTF8.self), !s.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" && $0 != "\t" }) else {
            return "<\(b.count) bytes>"
        }
        let cut = s.count > shownCharacters ? String(s.prefix(shownCharacters)) + "..." : s
        return "\"" + cut.replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}
