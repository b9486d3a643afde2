import Foundation
import KilnIR
import SwiftProtobuf

extension Graph {
    /// The `versions.producer` Kiln writes: a TensorFlow 1.x-era GraphDef version, old enough
    /// that TensorFlow applies no version-dependent upgrades to ops Kiln writes in their
    /// current form.
    public static let graphDefProducer: Int32 = 27

    /// This graph as a GraphDef: nodes in graph order, inputs as "name" (output 0), "name:k" and
    /// "^name" (control, after the data inputs), every attribute including defaults, devices.
    public func graphDef() -> Tensorflow_GraphDef {
        var def = Tensorflow_GraphDef()
        def.node = operations.map(Graph.nodeDef)
        var versions = Tensorflow_VersionDef()
        versions.producer = Graph.graphDefProducer
        def.versions = versions
        return def
    }

    static func nodeDef(_ op: Operation) -> Tensorflow_NodeDef {
        var n = Tensorflow_NodeDef()
        n.name = op.name
        n.op = op.type
        n.input = op.inputs.map { $0.index == 0 ? $0.op.name : "\($0.op.name):\($0.index)" } + op.controlInputs.map { "^" + $0.name }
        n.device = op.device
        n.attr = op.attrs.mapValues(\.proto)
        if op.type == InitializedValueInterchange.kilnType {
            // TensorFlow has no such op: it is written as an Identity of the initial value (what
            // it computes until the variable is initialised), naming its variable in an internal
            // attribute TensorFlow ignores and Kiln's import reads back.
            n.op = "Identity"
            n.attr[InitializedValueInterchange.attribute] = op.attrs["variable"]?.proto
            n.attr["variable"] = nil
        }
        return n
    }

    /// The binary GraphDef (`.pb`), with attributes in key order so equal graphs give equal bytes.
    public func serializedGraphDef() throws -> Data {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        do {
            return try graphDef().serializedData(options: options)
        } catch {
            throw KilnError(.resourceExhausted, "cannot serialize the graph's \(operations.count) operations as one GraphDef (protobuf messages are limited to 2 GiB): \(error)")
        }
    }

    /// The text-format GraphDef (`.pbtxt`), as `tf.io.write_graph(..., as_text=True)` writes it.
    public func graphDefText() -> String { graphDef().textFormatString() }

    /// Writes the GraphDef to `path`, as text when the name ends in `.pbtxt` or `.txt` (or when
    /// `asText` says so), binary otherwise. The file is replaced atomically.
    public func writeGraphDef(toFile path: String, asText: Bool? = nil) throws {
        let text = asText ?? GraphDefFile.isTextPath(path)
        let data = text ? Data(graphDefText().utf8) : try serializedGraphDef()
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch let e as CocoaError {
            let code: KilnError.Code
            switch e.code {
            case .fileNoSuchFile: code = .notFound
            case .fileWriteNoPermission: code = .permissionDenied
            case .fileWriteOutOfSpace: code = .resourceExhausted
            default: code = .unknown
            }
            throw KilnError(code, "cannot write GraphDef file '\(path)': \(e.localizedDescription)")
        }
    }
}
