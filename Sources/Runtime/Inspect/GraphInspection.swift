import Foundation
import KilnIR
import KilnFrontend

/// `kiln inspect` on a GraphDef (.pb, .pbtxt) or MetaGraphDef (.meta): the nodes by op type, the
/// feeds it likely has (placeholders, with dtype and shape), the fetches it likely has (nodes
/// whose outputs and control edges nothing consumes) and the op types Kiln does not support.
enum GraphInspection {
    /// Fetch candidates listed in the text form (the JSON has all).
    static let shownFetches = 20

    static func report(path: String, meta: Bool) throws -> InspectReport {
        var lines: [String] = []
        var fields: [String: Any] = [:]
        let graph: Tensorflow_GraphDef
        if meta {
            let def = try MetaGraphFile.read(path: path)
            graph = def.graphDef
            let info = def.metaInfoDef
            lines.append("\(path): MetaGraphDef (TensorFlow \(info.tensorflowVersion.isEmpty ? "version not recorded" : info.tensorflowVersion)"
                         + (info.tags.isEmpty ? ")" : ", tags \(info.tags.joined(separator: ", ")))"))
            let collections = def.collectionDef.keys.sorted().map { key -> (String, Int) in (key, count(def.collectionDef[key]!)) }
            if !collections.isEmpty {
                lines.append("collections: " + collections.map { "\($0.0) (\($0.1))" }.joined(separator: ", "))
            }
            fields["tensorflow_version"] = info.tensorflowVersion
            fields["tags"] = info.tags
            fields["collections"] = Dictionary(uniqueKeysWithValues: collections)
            fields["has_saver_def"] = def.hasSaverDef
        } else {
            graph = try GraphDefFile.read(path: path)
            lines.append("\(path): GraphDef (producer \(graph.versions.producer))")
        }
        fields["producer"] = Int(graph.versions.producer)

        let nodes = graph.node
        var byOp: [String: Int] = [:]
        for n in nodes { byOp[n.op, default: 0] += 1 }
        let ops = byOp.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        lines.append("nodes: \(nodes.count) (\(ops.count) op type\(ops.count == 1 ? "" : "s"))")
        for (op, n) in ops { lines.append("  \(String(n).leftPadded(6))  \(op)") }
        fields["node_count"] = nodes.count
        fields["ops"] = byOp

        let feeds = nodes.filter { $0.op == "Placeholder" || $0.op == "PlaceholderWithDefault" }.map { n -> [String: Any] in
            ["name": n.name, "op": n.op, "dtype": dtypeName(n.attr["dtype"]?.type), "shape": shapeText(n.attr["shape"]?.shape)]
        }
        lines.append("likely feeds (placeholders):" + (feeds.isEmpty ? " none" : ""))
        for f in feeds {
            lines.append("  \(f["name"]!) \(f["dtype"]!) \(f["shape"]!)" + (f["op"] as! String == "Placeholder" ? "" : " (with a default)"))
        }
        fields["feeds"] = feeds

        let fetches = unconsumed(nodes)
        lines.append("likely fetches (consumed by no node):" + (fetches.isEmpty ? " none" : ""))
        for n in fetches.prefix(shownFetches) { lines.append("  \(n.name) (\(n.op))") }
        if fetches.count > shownFetches { lines.append("  ... and \(fetches.count - shownFetches) more (--json lists all)") }
        fields["fetches"] = fetches.map { ["name": $0.name, "op": $0.op] }

        let unsupported = GraphDefFile.unsupportedOps(graph)
        if unsupported.isEmpty {
            lines.append("ops Kiln does not support: none")
        } else {
            lines.append("ops Kiln does not support: " + unsupported.sorted { $0.key < $1.key }
                .map { "\($0.key) (\($0.value) node\($0.value == 1 ? "" : "s"))" }.joined(separator: ", "))
        }
        fields["unsupported_ops"] = unsupported
        return InspectReport(file: path, kind: meta ? .metaGraphDef : .graphDef, lines: lines, fields: fields)
    }

    /// Nodes no other node names as a data or control input, in file order.
    static func unconsumed(_ nodes: [Tensorflow_NodeDef]) -> [Tensorflow_NodeDef] {
        var consumed = Set<String>()
        for n in nodes {
            for input in n.input { consumed.insert(GraphDefFile.nodeName(ofInput: input)) }
        }
        return nodes.filter { !consumed.contains($0.name) }
    }

    static func dtypeName(_ t: Tensorflow_DataType?) -> String {
        guard let t else { return "dtype not recorded" }
        return t.kilnDType?.name ?? t.tensorflowName
    }

    /// "[?,784]", "[]" for a scalar, "<unknown>" for an unknown rank or no shape recorded.
    static func shapeText(_ proto: Tensorflow_TensorShapeProto?) -> String {
        guard let proto else { return "<unknown>" }
        return (try? Shape(proto: proto))?.description ?? "<invalid shape>"
    }

    static func count(_ c: Tensorflow_CollectionDef) -> Int {
        switch c.kind {
        case .nodeList(let l)?: return l.value.count
        case .bytesList(let l)?: return l.value.count
        case .int64List(let l)?: return l.value.count
        case .floatList(let l)?: return l.value.count
        case .anyList(let l)?: return l.value.count
        case nil: return 0
        }
    }

    /// A file with no telling name holding a MetaGraphDef with a graph (binary or text).
    static func looksLikeMetaGraph(path: String) -> Bool {
        guard let def = try? MetaGraphFile.read(path: path) else { return false }
        return def.hasGraphDef && !def.graphDef.node.isEmpty
    }

    static func looksLikeGraph(path: String) -> Bool {
        guard let def = try? GraphDefFile.read(path: path) else { return false }
        return !def.node.isEmpty
    }
}

extension String {
    /// Right-aligned in `width` characters (never cut).
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
