import Foundation
import KilnIR
import KilnFrontend

/// What `kiln inspect FILE` found in a file: human-readable lines and one JSON object (`--json`)
/// holding the same facts. Built in-process, so tests check it without the binary.
public struct InspectReport {
    /// The kinds of file Kiln reads, as `kind` names them in the JSON.
    public enum Kind: String, Sendable, CaseIterable {
        case graphDef = "graphdef", metaGraphDef = "metagraphdef", checkpoint, tfrecord, events, npy
    }

    public let file: String
    public let kind: Kind
    public let lines: [String]
    /// "file" and "kind", then the kind's own fields.
    public let json: [String: Any]

    init(file: String, kind: Kind, lines: [String], fields: [String: Any]) {
        self.file = file
        self.kind = kind
        self.lines = lines
        self.json = fields.merging(["file": file, "kind": kind.rawValue]) { _, new in new }
    }

    public var text: String { lines.joined(separator: "\n") + "\n" }

    /// The JSON object, keys sorted so the output is stable.
    public func jsonData() throws -> Data {
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    }
}

/// `kiln inspect`: tells a file's kind from its content (its name only where content cannot, or
/// to keep a corrupt file's own error), then reads all of it, so a corrupt file fails with an
/// error naming the file and the offset.
public enum FileInspector {
    public static func inspect(path: String) throws -> InspectReport {
        switch try kind(of: path) {
        case .npy: return try NPYInspection.report(path: path)
        case .checkpoint: return try CheckpointInspection.report(path: path)
        case .tfrecord: return try RecordInspection.report(path: path)
        case .events: return try EventsInspection.report(path: path)
        case .graphDef: return try GraphInspection.report(path: path, meta: false)
        case .metaGraphDef: return try GraphInspection.report(path: path, meta: true)
        }
    }

    /// The kind of the file at `path` (a checkpoint may be named by its prefix, index or data file).
    public static func kind(of path: String) throws -> InspectReport.Kind {
        if CheckpointInspection.prefix(of: path) != nil { return .checkpoint }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KilnError.notFound("cannot inspect '\(path)': no such file (nor a checkpoint prefix with a '\(path).index')")
        }
        guard !isDirectory.boolValue else { throw KilnError.invalidArgument("cannot inspect '\(path)': it is a directory; name a file in it") }
        guard let handle = FileHandle(forReadingAtPath: path) else { throw KilnError(.permissionDenied, "cannot read '\(path)'") }
        let head = [UInt8](handle.readData(ofLength: 64))
        try? handle.close()
        let name = (path as NSString).lastPathComponent

        if head.starts(with: NPY.magic) || name.hasSuffix(".npy") { return .npy }
        // The name decides for the record formats, so that a file whose first header is corrupt
        // still gets the record reader's error (with its offset) rather than "unknown kind".
        if name.contains(".tfevents.") { return .events }
        if [".tfrecord", ".tfrecords"].contains(where: name.hasSuffix) { return .tfrecord }
        if RecordInspection.compression(of: head) != nil {
            return (try? EventsInspection.startsWithVersionRecord(path: path)) == true ? .events : .tfrecord
        }
        if name.hasSuffix(".meta") { return .metaGraphDef }
        if name.hasSuffix(".pb") || name.hasSuffix(".pbtxt") || name.hasSuffix(".graphdef") { return .graphDef }
        if GraphInspection.looksLikeMetaGraph(path: path) { return .metaGraphDef }
        if GraphInspection.looksLikeGraph(path: path) { return .graphDef }
        throw KilnError.invalidArgument("cannot inspect '\(path)': it is not a GraphDef, MetaGraphDef, checkpoint, TFRecord, events or .npy file "
                                        + "(first bytes: \(head.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")))")
    }
}
