import Foundation
import SwiftProtobuf

/// Where binary protobuf data that does not parse goes wrong, as a file offset: SwiftProtobuf's
/// errors name no position, and a user with a corrupt 50 MB GraphDef needs one. The data is
/// walked field by field (tag, then varint, fixed or length-delimited payload); the first field
/// that is malformed or runs past the end is the answer, else the first submessage of a known
/// field that does not parse is searched the same way.
struct ProtobufWireLocation {
    /// A message type: its name, how to parse it, and its submessage fields by number.
    struct Schema: Sendable {
        let name: String
        let parse: @Sendable ([UInt8]) throws -> Void
        var fields: [Int: (name: String, schema: Schema)] = [:]
    }

    /// " at offset N: reason" for the first problem found in `bytes` read as `schema`, or "" when
    /// the wire structure is sound and every known submessage parses (the error lies deeper).
    static func describe(_ bytes: [UInt8], as schema: Schema) -> String {
        guard let (offset, reason) = locate(bytes[...], as: schema) else { return "" }
        return " at offset \(offset): \(reason)"
    }

    /// The offset (in the whole buffer: slices keep their indices) and reason of the first problem.
    static func locate(_ bytes: ArraySlice<UInt8>, as schema: Schema) -> (Int, String)? {
        var i = bytes.startIndex
        var counts: [Int: Int] = [:]
        var submessages: [(field: String, index: Int, payload: ArraySlice<UInt8>, schema: Schema)] = []
        while i < bytes.endIndex {
            let start = i
            guard let tag = varint(bytes, &i) else { return (start, "\(schema.name) field tag runs past the end or is longer than 10 bytes") }
            let number = Int(tag >> 3), wireType = Int(tag & 7)
            guard number > 0, number <= 536_870_911 else { return (start, "\(schema.name) has a field tag with field number \(number)") }
            switch wireType {
            case 0:
                guard varint(bytes, &i) != nil else { return (start, "\(schema.name) field \(number): its varint runs past the end") }
            case 1, 5:
                let size = wireType == 1 ? 8 : 4
                guard bytes.endIndex - i >= size else { return (start, "\(schema.name) field \(number): its \(size)-byte value runs past the end") }
                i += size
            case 2:
                let lengthAt = i
                guard let length = varint(bytes, &i) else { return (lengthAt, "\(schema.name) field \(number): its length runs past the end") }
                guard length <= UInt64(bytes.endIndex - i) else {
                    return (lengthAt, "\(schema.name) field \(number) declares \(length) bytes but \(bytes.endIndex - i) remain")
                }
                let payload = bytes[i..<(i + Int(length))]
                if let (name, sub) = schema.fields[number] {
                    submessages.append((name, counts[number, default: 0], payload, sub))
                }
                counts[number, default: 0] += 1
                i += Int(length)
            default:
                return (start, "\(schema.name) field \(number) has wire type \(wireType), which \(schema.name) never uses")
            }
        }
        for s in submessages {
            do { try s.schema.parse(Array(s.payload)) } catch {
                let which = s.field == "node" ? "node #\(s.index)" : s.field
                if let (offset, reason) = locate(s.payload, as: s.schema) { return (offset, "in \(which): \(reason)") }
                return (s.payload.startIndex, "\(which) (\(s.schema.name), \(s.payload.count) bytes from here) does not parse: \(error)")
            }
        }
        return nil
    }

    private static func varint(_ bytes: ArraySlice<UInt8>, _ i: inout Int) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            guard i < bytes.endIndex else { return nil }
            let b = bytes[i]
            i += 1
            value |= UInt64(b & 0x7f) << UInt64(shift)
            if b & 0x80 == 0 { return value }
        }
        return nil
    }
}

extension ProtobufWireLocation.Schema {
    static let nodeDef = Self(name: "NodeDef", parse: { _ = try Tensorflow_NodeDef(serializedBytes: $0) })
    static let graphDef = Self(name: "GraphDef", parse: { _ = try Tensorflow_GraphDef(serializedBytes: $0) },
                                 fields: [1: ("node", nodeDef),
                                          2: ("library", Self(name: "FunctionDefLibrary", parse: { _ = try Tensorflow_FunctionDefLibrary(serializedBytes: $0) })),
                                          4: ("versions", Self(name: "VersionDef", parse: { _ = try Tensorflow_VersionDef(serializedBytes: $0) }))])
    static let metaGraphDef = Self(name: "MetaGraphDef", parse: { _ = try Tensorflow_MetaGraphDef(serializedBytes: $0) },
                                     fields: [1: ("meta_info_def", Self(name: "MetaInfoDef", parse: { _ = try Tensorflow_MetaGraphDef.MetaInfoDef(serializedBytes: $0) })),
                                              2: ("graph_def", graphDef),
                                              3: ("saver_def", Self(name: "SaverDef", parse: { _ = try Tensorflow_SaverDef(serializedBytes: $0) }))])
}
