import Foundation
import KilnIR
import SwiftProtobuf

/// Reading GraphDef files: binary `.pb` and text `.pbtxt`.
public enum GraphDefFile {
    /// Parses a binary GraphDef. Bytes that are not one give a dataLoss error naming `source`.
    public static func parse(binary bytes: Data, source: String = "GraphDef") throws -> Tensorflow_GraphDef {
        let def: Tensorflow_GraphDef
        do {
            def = try Tensorflow_GraphDef(serializedBytes: bytes)
        } catch {
            throw KilnError.dataLoss("\(source) is not a valid binary GraphDef (\(bytes.count) bytes)\(ProtobufWireLocation.describe([UInt8](bytes), as: .graphDef)): \(error)")
        }
        // Random bytes can happen to be well-formed protobuf wire data with no GraphDef field in it.
        if def.node.isEmpty && !def.unknownFields.data.isEmpty {
            throw KilnError.dataLoss("\(source) is not a valid binary GraphDef (\(bytes.count) bytes): it holds no nodes, only fields GraphDef does not have")
        }
        return def
    }

    /// The node a NodeDef input names: "^x" (a control input), "x:1" and "x" all name node "x".
    public static func nodeName(ofInput input: String) -> String {
        let name = input.hasPrefix("^") ? input.dropFirst() : Substring(input)
        if let colon = name.lastIndex(of: ":"), Int(name[name.index(after: colon)...]) != nil { return String(name[..<colon]) }
        return String(name)
    }

    /// Parses a text-format GraphDef (`node { name: "x" op: "Placeholder" ... }`).
    public static func parse(text: String, source: String = "GraphDef") throws -> Tensorflow_GraphDef {
        do {
            return try Tensorflow_GraphDef(textFormatString: text)
        } catch {
            throw KilnError.invalidArgument("\(source) is not a valid text-format GraphDef: \(error)")
        }
    }

    /// Reads a GraphDef file: text when the name ends in `.pbtxt` or `.txt`, binary otherwise.
    public static func read(path: String) throws -> Tensorflow_GraphDef {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError.notFound("cannot read GraphDef file '\(path)': no such readable file")
        }
        if isTextPath(path) {
            guard let text = String(data: data, encoding: .utf8) else {
                throw KilnError.invalidArgument("text GraphDef '\(path)' is not UTF-8")
            }
            return try parse(text: text, source: "'\(path)'")
        }
        return try parse(binary: data, source: "'\(path)'")
    }

    static func isTextPath(_ path: String) -> Bool { path.hasSuffix(".pbtxt") || path.hasSuffix(".txt") }

    /// The op types of `def` that Kiln does not have, with how many nodes use each (what
    /// `importGraphDef` refuses; `kiln inspect` lists them).
    public static func unsupportedOps(_ def: Tensorflow_GraphDef) -> [String: Int] {
        unsupportedOps(def.node.map(InitializedValueInterchange.restore))
    }

    static func unsupportedOps(_ nodes: [Tensorflow_NodeDef]) -> [String: Int] {
        var unsupported: [String: Int] = [:]
        for n in nodes where OpRegistry.def(n.op) == nil { unsupported[n.op, default: 0] += 1 }
        return unsupported
    }
}

extension Graph {
    /// Adds the nodes of `graphDef` to this graph, as TensorFlow's `import_graph_def` does.
    ///
    /// - Parameters:
    ///   - prefix: names the imported nodes `<prefix>/<name>` (made unique like a name scope:
    ///     a second import gets `import_1/`); "" keeps the names as they are.
    ///   - inputMap: tensor names of the GraphDef ("x:0", or "x" for output 0) replaced by
    ///     outputs of this graph wherever a node consumes them; "^x" keys redirect control inputs
    ///     on `x` to the given output's op. Every key must name a node of the GraphDef.
    /// - Returns: the new operations, in the order they were added.
    ///
    /// Nodes may appear in any order; they are added in a topological order of their data and
    /// control inputs. A graph using node types Kiln does not have fails before anything is added,
    /// with one error listing each such type and how many nodes use it.
    @discardableResult
    public func importGraphDef(_ graphDef: Tensorflow_GraphDef, prefix: String = "import",
                               inputMap: [String: Output] = [:]) throws -> [Operation] {
        let nodes = graphDef.node.map(InitializedValueInterchange.restore)
        var index: [String: Int] = [:]
        for (i, n) in nodes.enumerated() {
            guard !n.name.isEmpty else { throw KilnError.invalidArgument("GraphDef node #\(i) (op: '\(n.op)') has no name") }
            guard !n.op.isEmpty else { throw KilnError.invalidArgument("GraphDef node '\(n.name)' has no op type") }
            guard index[n.name] == nil else { throw KilnError.invalidArgument("GraphDef has two nodes named '\(n.name)'") }
            index[n.name] = i
        }

        let unsupported = GraphDefFile.unsupportedOps(nodes)
        if !unsupported.isEmpty {
            let list = unsupported.sorted { $0.key < $1.key }
                .map { "\($0.key) (\($0.value) node\($0.value == 1 ? "" : "s"))" }.joined(separator: ", ")
            throw KilnError.unimplemented("the GraphDef uses \(unsupported.count) op type(s) Kiln does not support: \(list)")
        }

        for (key, o) in inputMap where o.graph !== self {
            throw KilnError.invalidArgument("input_map value for '\(key)' ('\(o.name)') belongs to another graph")
        }
        var dataMap: [TensorRef: Output] = [:]
        var controlMap: [String: Operation] = [:]
        var notFound: [String] = []
        for (key, o) in inputMap {
            if key.hasPrefix("^") {
                let name = String(key.dropFirst())
                if index[name] == nil { notFound.append(key) } else { controlMap[name] = o.op }
            } else {
                let ref = try TensorRef(parsing: key, context: "input_map key")
                if index[ref.node] == nil { notFound.append(key) } else { dataMap[ref] = o }
            }
        }
        if !notFound.isEmpty {
            throw KilnError.invalidArgument("Attempted to map inputs that were not found in graph_def: [\(notFound.sorted().joined(separator: ", "))]")
        }

        let parsed = try nodes.map { try ParsedNode($0, known: index) }
        let order = try Graph.topologicalOrder(parsed, index: index, dataMap: dataMap, controlMap: controlMap)

        var attrs: [[String: AttrValue]] = []
        attrs.reserveCapacity(nodes.count)
        for n in nodes {
            let defaults = OpRegistry.def(n.op)?.attrDefaults ?? [:]
            var converted: [String: AttrValue] = [:]
            for (key, value) in n.attr {
                do {
                    converted[key] = try AttrValue(proto: value, emptyListLike: defaults[key])
                } catch let e as KilnError {
                    throw KilnError(e.code, "node '\(n.name)' (op: '\(n.op)') attribute '\(key)': \(e.message)")
                }
            }
            attrs.append(converted)
        }

        if isFinalized { throw KilnError.failedPrecondition("Graph is finalized and cannot be modified (importing a GraphDef)") }
        let scope = prefix.isEmpty ? "" : uniqueName(prefix, markAsUsed: false) + "/"
        for n in parsed where operation(named: scope + n.name) != nil {
            throw KilnError.alreadyExists("the graph already has an operation named '\(scope + n.name)' (importing node '\(n.name)')")
        }

        // Shape and attribute errors surface only as nodes are added, and a Graph cannot remove
        // nodes, so the import first runs on a scratch graph whose stand-ins for the mapped
        // tensors have the same dtype, shape and constant value. Only a clean run is repeated here.
        // (Stand-in names start with "_", which TensorFlow's node names never do.)
        let scratch = Graph()
        var proxies: [TensorRef: Output] = [:]
        for (ref, o) in dataMap { proxies[ref] = try scratch.standIn(for: o, name: "_kiln_stand_in_\(proxies.count)") }
        var proxyControls: [String: Operation] = [:]
        for (name, _) in controlMap {
            proxyControls[name] = try scratch.addOperation("NoOp", name: "_kiln_stand_in_control_\(proxyControls.count)")
        }
        _ = try scratch.addNodes(parsed, attrs: attrs, order: order, index: index, scope: scope, dataMap: proxies, controlMap: proxyControls)

        if !prefix.isEmpty { _ = uniqueName(prefix) }
        return try addNodes(parsed, attrs: attrs, order: order, index: index, scope: scope, dataMap: dataMap, controlMap: controlMap)
    }

    private func addNodes(_ parsed: [ParsedNode], attrs: [[String: AttrValue]], order: [Int], index: [String: Int], scope: String,
                          dataMap: [TensorRef: Output], controlMap: [String: Operation]) throws -> [Operation] {
        var created: [Operation?] = Array(repeating: nil, count: parsed.count)
        var added: [Operation] = []
        added.reserveCapacity(parsed.count)
        for i in order {
            let n = parsed[i]
            var inputs: [Output] = []
            for ref in n.data {
                if let o = dataMap[ref] { inputs.append(o); continue }
                let producer = created[index[ref.node]!]!
                guard ref.output < producer.outputSpecs.count else {
                    throw KilnError.invalidArgument("node '\(n.name)' (op: '\(n.op)') has input '\(ref.node):\(ref.output)', but '\(ref.node)' (op: '\(producer.type)') has \(producer.outputSpecs.count) output(s)")
                }
                inputs.append(producer.output(ref.output))
            }
            var controls: [Operation] = [], seen = Set<Operation>()
            for c in n.control {
                let op = controlMap[c] ?? created[index[c]!]!
                if seen.insert(op).inserted { controls.append(op) }
            }
            var nodeAttrs = attrs[i]
            if n.op == InitializedValueInterchange.kilnType, let v = nodeAttrs["variable"]?.string {
                nodeAttrs["variable"] = .string(scope + v)   // the variable was imported under the prefix too
            }
            let add = { try self.addOperation(n.op, name: scope + n.name, inputs: inputs, controlInputs: controls,
                                              attrs: nodeAttrs, nameIsFinal: true) }
            let op = try n.device.isEmpty ? add() : device(n.device, add)
            created[i] = op
            added.append(op)
        }
        return added
    }

    /// An output of this graph that shape functions cannot tell from `o`: a Const of its static
    /// value, a variable for a ref, else a placeholder of its dtype and shape.
    private func standIn(for o: Output, name: String) throws -> Output {
        if let value = staticValue(of: o) {
            return try addOperation("Const", name: name, attrs: ["value": .tensor(value), "dtype": .type(value.dtype)]).output()
        }
        if o.isRef {
            return try addOperation("VariableV2", name: name, attrs: ["dtype": .type(o.dtype), "shape": .shape(o.shape)]).output()
        }
        return try addOperation("Placeholder", name: name, attrs: ["dtype": .type(o.dtype), "shape": .shape(o.shape)]).output()
    }

    /// Parses and imports a binary GraphDef.
    @discardableResult
    public func importGraphDef(serialized bytes: Data, prefix: String = "import", inputMap: [String: Output] = [:]) throws -> [Operation] {
        try importGraphDef(GraphDefFile.parse(binary: bytes), prefix: prefix, inputMap: inputMap)
    }

    /// Parses and imports a text-format GraphDef.
    @discardableResult
    public func importGraphDef(text: String, prefix: String = "import", inputMap: [String: Output] = [:]) throws -> [Operation] {
        try importGraphDef(GraphDefFile.parse(text: text), prefix: prefix, inputMap: inputMap)
    }

    /// Reads and imports a `.pb` (binary) or `.pbtxt` (text) GraphDef file.
    @discardableResult
    public func importGraphDef(contentsOf path: String, prefix: String = "import", inputMap: [String: Output] = [:]) throws -> [Operation] {
        try importGraphDef(GraphDefFile.read(path: path), prefix: prefix, inputMap: inputMap)
    }

    /// Node indices such that every node follows the producers of its data and control inputs,
    /// keeping GraphDef order where it already is one. Iterative, so long chains cannot
    /// overflow the stack.
    private static func topologicalOrder(_ nodes: [ParsedNode], index: [String: Int],
                                         dataMap: [TensorRef: Output], controlMap: [String: Operation]) throws -> [Int] {
        let deps: [[Int]] = nodes.map { n in
            n.data.filter { dataMap[$0] == nil }.map { index[$0.node]! } + n.control.filter { controlMap[$0] == nil }.map { index[$0]! }
        }
        enum Mark { case unvisited, inProgress, done }
        var mark = Array(repeating: Mark.unvisited, count: nodes.count)
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        for root in nodes.indices where mark[root] == .unvisited {
            var stack: [(node: Int, next: Int)] = [(root, 0)]
            mark[root] = .inProgress
            while let (node, next) = stack.last {
                if next < deps[node].count {
                    stack[stack.count - 1].next += 1
                    let d = deps[node][next]
                    switch mark[d] {
                    case .done: continue
                    case .unvisited:
                        mark[d] = .inProgress
                        stack.append((d, 0))
                    case .inProgress:
                        let start = stack.firstIndex { $0.node == d }!
                        let cycle = stack[start...].map { nodes[$0.node].name } + [nodes[d].name]
                        throw KilnError.invalidArgument("GraphDef has a cycle: \(cycle.joined(separator: " -> ")) (Kiln graphs have no control flow loops)")
                    }
                } else {
                    mark[node] = .done
                    order.append(node)
                    stack.removeLast()
                }
            }
        }
        return order
    }
}

/// A tensor named in a GraphDef: "node" or "node:k".
struct TensorRef: Hashable {
    var node: String
    var output: Int

    init(parsing s: String, context: @autoclosure () -> String) throws {
        if let colon = s.lastIndex(of: ":"), let k = Int(s[s.index(after: colon)...]) {
            guard k >= 0 else { throw KilnError.invalidArgument("\(context()) '\(s)' has a negative output index") }
            node = String(s[..<colon])
            output = k
        } else {
            node = s
            output = 0
        }
        guard !node.isEmpty else { throw KilnError.invalidArgument("\(context()) '\(s)' names no node") }
    }
}

/// A NodeDef's inputs split into data and control references, checked against the GraphDef.
private struct ParsedNode {
    var name: String
    var op: String
    var device: String
    var data: [TensorRef] = []
    var control: [String] = []

    init(_ n: Tensorflow_NodeDef, known: [String: Int]) throws {
        name = n.name
        op = n.op
        device = n.device
        for input in n.input {
            if input.hasPrefix("^") {
                let c = String(input.dropFirst())
                guard known[c] != nil else {
                    throw KilnError.invalidArgument("node '\(n.name)' (op: '\(n.op)') has control input '\(input)', but the GraphDef has no node named '\(c)'")
                }
                control.append(c)
            } else {
                guard control.isEmpty else {
                    throw KilnError.invalidArgument("node '\(n.name)' (op: '\(n.op)'): data input '\(input)' follows a control input; control inputs must come last")
                }
                let ref = try TensorRef(parsing: input, context: "input of node '\(n.name)' (op: '\(n.op)')")
                guard known[ref.node] != nil else {
                    throw KilnError.invalidArgument("node '\(n.name)' (op: '\(n.op)') has input '\(input)', but the GraphDef has no node named '\(ref.node)'")
                }
                data.append(ref)
            }
        }
    }
}

/// How `initialized_value()` (Kiln's KilnInitializedValue op) travels through GraphDefs.
enum InitializedValueInterchange {
    static let kilnType = "KilnInitializedValue"
    static let attribute = "_kiln_initialized_value"

    /// An Identity that Kiln wrote for KilnInitializedValue becomes one again.
    static func restore(_ n: Tensorflow_NodeDef) -> Tensorflow_NodeDef {
        guard n.op == "Identity", let v = n.attr[attribute] else { return n }
        var r = n
        r.op = kilnType
        r.attr["variable"] = v
        r.attr[attribute] = nil
        return r
    }
}
