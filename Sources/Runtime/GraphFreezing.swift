import KilnFrontend
import KilnIR

/// TensorFlow's `tf.compat.v1.graph_util`: freezing a trained graph for inference.
public enum GraphUtil {
    /// The variable ops `convertVariablesToConstants` replaces: TensorFlow's list without the
    /// legacy `Variable`, which Kiln's graphs never hold (Kiln does not register it).
    public static let variableOps: Set<String> = ["VariableV2", "VarHandleOp"]

    /// TensorFlow's `convert_variables_to_constants(sess, input_graph_def, output_node_names)`:
    /// the part of `graphDef` the outputs need (`extractSubGraph`), with every variable node in it
    /// replaced by a `Const` of the same name holding the variable's current value in `session`,
    /// and every `ReadVariableOp` of a replaced resource variable by an `Identity` of the constant.
    /// Other nodes are copied unchanged, so the frozen graph imports and runs without variables,
    /// and Kiln's passes see its weights as constants (batch norm folds into the convolution).
    ///
    /// - Parameters:
    ///   - variableNamesWhitelist: when given, only these variables are converted.
    ///   - variableNamesBlacklist: variables that stay variables.
    /// - Throws: `invalidArgument` for an output that is not a node of `graphDef`; `notFound` for a
    ///   variable the session's graph lacks; the session's `failedPrecondition` for one it has not
    ///   initialised.
    public static func convertVariablesToConstants(_ session: Session, _ graphDef: Tensorflow_GraphDef, outputNodeNames: [String],
                                                   variableNamesWhitelist: Set<String>? = nil,
                                                   variableNamesBlacklist: Set<String>? = nil) throws -> Tensorflow_GraphDef {
        var frozen = try extractSubGraph(graphDef, destNodes: outputNodeNames)
        let converted = frozen.node.filter {
            variableOps.contains($0.op) && (variableNamesWhitelist?.contains($0.name) ?? true)
                && !(variableNamesBlacklist?.contains($0.name) ?? false)
        }
        let outputs = try converted.map { node -> Output in
            guard let op = session.graph.operation(named: node.name) else {
                throw KilnError.notFound("variable '\(node.name)' of the GraphDef is not in the session's graph")
            }
            guard op.type == node.op else {
                throw KilnError.invalidArgument("node '\(node.name)' is a \(node.op) in the GraphDef but a \(op.type) in the session's graph")
            }
            return op.output()
        }
        // One run reads every value, as TensorFlow's single sess.run does.
        let values = outputs.isEmpty ? [] : try session.run(outputs)
        var constants: [String: (dtype: DType, value: Tensor)] = [:]
        for (node, value) in zip(converted, values) { constants[node.name] = (value.dtype, value) }
        frozen.node = frozen.node.map { node in
            if let c = constants[node.name] {
                var n = Tensorflow_NodeDef()
                n.op = "Const"
                n.name = node.name
                n.attr["dtype"] = AttrValue.type(c.dtype).proto
                n.attr["value"] = AttrValue.tensor(c.value).proto
                return n
            }
            if node.op == "ReadVariableOp", let source = node.input.first, let c = constants[source] {
                var n = Tensorflow_NodeDef()
                n.op = "Identity"
                n.name = node.name
                n.input = [source]
                n.device = node.device
                n.attr["T"] = AttrValue.type(c.dtype).proto
                if let cls = node.attr["_class"] { n.attr["_class"] = cls }
                return n
            }
            return node
        }
        return frozen
    }

    /// TensorFlow's `extract_sub_graph(graph_def, dest_nodes)`: the nodes `destNodes` (node
    /// names, not tensor names) depend on through data and control inputs, in their order in
    /// `graphDef`, with its versions and function library.
    public static func extractSubGraph(_ graphDef: Tensorflow_GraphDef, destNodes: [String]) throws -> Tensorflow_GraphDef {
        var index: [String: Int] = [:]
        for (i, n) in graphDef.node.enumerated() where index[n.name] == nil { index[n.name] = i }
        let missing = destNodes.filter { index[$0] == nil }
        if !missing.isEmpty {
            let hint = missing.contains { $0.contains(":") } ? " (give node names, without an output index)" : ""
            throw KilnError.invalidArgument("\(missing.map { "'\($0)'" }.joined(separator: ", ")) \(missing.count == 1 ? "is" : "are") not in graph\(hint)")
        }
        var keep = Set<Int>()
        var stack = destNodes.map { index[$0]! }
        while let i = stack.popLast() {
            guard keep.insert(i).inserted else { continue }
            for input in graphDef.node[i].input {
                let name = GraphDefFile.nodeName(ofInput: input)
                guard let k = index[name] else {
                    throw KilnError.invalidArgument("node '\(graphDef.node[i].name)' has input '\(input)', which is not a node of the GraphDef")
                }
                stack.append(k)
            }
        }
        var out = graphDef
        out.node = graphDef.node.indices.filter(keep.contains).map { graphDef.node[$0] }
        return out
    }
}
