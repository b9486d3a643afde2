import KilnIR
import KilnFrontend

/// What tfdbg's `node_info` shows about a node.
public struct NodeInfo: CustomStringConvertible, Sendable {
    public let name: String
    public let op: String
    public let inputs: [String]
    public let controlInputs: [String]
    /// Nodes reading one of its outputs (or depending on it through a control edge, `^name`).
    public let consumers: [String]
    /// The device it asked for (empty: the session's default).
    public let device: String
    public let attributes: [(name: String, value: String)]
    /// `File.swift:42` where the node was made in the user's code; nil when unknown (no debug
    /// info, or a node an importer made).
    public let sourceLocation: String?
    public let outputs: [String]

    public var description: String {
        var lines = ["Node \(name)", "  Op: \(op)", "  Device: \(device.isEmpty ? "(default)" : device)"]
        lines.append("  Created at: \(sourceLocation ?? "unknown")")
        lines.append("  \(inputs.count) input(s):" + inputs.map { "\n    \($0)" }.joined())
        if !controlInputs.isEmpty { lines.append("  \(controlInputs.count) control input(s):" + controlInputs.map { "\n    ^\($0)" }.joined()) }
        lines.append("  \(consumers.count) consumer(s):" + consumers.map { "\n    \($0)" }.joined())
        lines.append("  Outputs:" + outputs.map { "\n    \($0)" }.joined())
        lines.append("  Attributes:" + attributes.map { "\n    \($0.name): \($0.value)" }.joined())
        return lines.joined(separator: "\n")
    }
}

extension DebugSession {
    /// The node named `name` ("scope/Log", or a tensor name "scope/Log:0").
    func node(_ name: String) throws -> KilnFrontend.Operation {
        let opName = name.split(separator: ":", maxSplits: 1).first.map(String.init) ?? name
        guard let op = graph.operation(named: opName) else { throw KilnError.notFound("the graph has no node named '\(opName)'") }
        return op
    }

    /// tfdbg's `ni`: op, inputs, consumers, device, attributes and where it was made.
    public func nodeInfo(_ name: String) throws -> NodeInfo {
        let op = try node(name)
        var consumers: [String] = []
        for other in graph.operations {
            if other.inputs.contains(where: { $0.op === op }) { consumers.append(other.name) }
            else if other.controlInputs.contains(op) { consumers.append("^" + other.name) }
        }
        let attributes = op.attrs.keys.sorted().map { ($0, String(describing: op.attrs[$0]!)) }
        return NodeInfo(name: op.name, op: op.type, inputs: op.inputs.map(\.name), controlInputs: op.controlInputs.map(\.name),
                        consumers: consumers, device: op.device, attributes: attributes, sourceLocation: SourceLocation.of(op),
                        outputs: op.outputs.map { "\($0.name) \($0.dtype.name)\($0.shape)" })
    }

    /// tfdbg's `li`: the inputs of `name` as a tree, `depth` levels deep (control inputs `^`).
    public func listInputs(_ name: String, depth: Int = 1) throws -> String {
        let op = try node(name)
        guard depth >= 1 else { throw KilnError.invalidArgument("depth must be at least 1, got \(depth)") }
        var lines = ["Inputs to node \"\(op.name)\" (Depth limit = \(depth)):"]
        func walk(_ op: KilnFrontend.Operation, _ level: Int, _ indent: String) {
            let items = op.inputs.map { ($0.op, $0.name, "") } + op.controlInputs.map { ($0, $0.name, "^") }
            for (input, label, mark) in items {
                lines.append("\(indent)|- (\(level)) \(mark)\(label) (\(input.type))")
                if level < depth { walk(input, level + 1, indent + "|  ") }
            }
        }
        walk(op, 1, "  ")
        return lines.joined(separator: "\n")
    }

    /// tfdbg's `pt`: a tensor of the last run, `slice` in numpy's syntax ("[0:2, :]", "[1]",
    /// "[-1, ::2]"). Only tensors the last run kept can be printed: the fetches and the filter's
    /// matches (every tensor after a run with a custom filter).
    public func printTensor(_ name: String, slice: String = "") throws -> String {
        let tensorName = name.contains(":") ? name : name + ":0"
        guard let t = lastRunTensors.first(where: { $0.name == tensorName }) else {
            throw KilnError.notFound("tensor '\(tensorName)' was not part of the last run")
        }
        guard let value = t.value else {
            throw KilnError.notFound("the last run did not keep the value of '\(tensorName)' (has_inf_or_nan keeps the fetches and the matching tensors of the first group; a custom filter keeps every tensor)")
        }
        let sliced = try TensorSlice.parse(slice, shape: value.shape)
        return "Tensor \"\(tensorName)\"\(slice.isEmpty ? "" : slice):\n  dtype: \(value.dtype.name)\n  shape: \(Shape(value.shape))\n\n"
            + sliced.format(value)
    }
}
