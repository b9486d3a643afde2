import KilnIR
import KilnFrontend

/// SaveV2 and RestoreV2 as a session runs them (the ops of TensorFlow's Saver subgraph):
/// whole tensors only, through the same bundle writer and reader a `Saver` uses.
enum CheckpointKernels {
    /// SaveV2(prefix, tensor_names, shape_and_slices, tensors...): writes the bundle `prefix`.
    static func save(_ inputs: [Tensor], node: KilnFrontend.Operation) throws {
        let (prefix, names) = try arguments(inputs, count: inputs.count - 3, node: node)
        let tensors = Array(inputs.dropFirst(3))
        do {
            try CheckpointWriter.write(Array(zip(names, tensors)).map { (key: $0.0, tensor: $0.1) }, prefix: prefix)
        } catch let e as KilnError {
            throw KilnError(e.code, "'\(node.name)' (op: SaveV2): \(e.message)")
        }
    }

    /// RestoreV2(prefix, tensor_names, shape_and_slices) -> one tensor per name, each checked
    /// against the node's `dtypes`.
    static func restore(_ inputs: [Tensor], node: KilnFrontend.Operation) throws -> [Tensor] {
        let dtypes = node.outputSpecs.map(\.dtype)
        let (prefix, names) = try arguments(inputs, count: dtypes.count, node: node)
        let reader: CheckpointReader
        do { reader = try CheckpointReader(prefix: prefix) } catch let e as KilnError {
            throw KilnError(e.code, "'\(node.name)' (op: RestoreV2): \(e.message)")
        }
        return try zip(names, dtypes).map { name, dtype in
            let t: Tensor
            do { t = try reader.tensor(named: name) } catch let e as KilnError {
                throw KilnError(e.code, "'\(node.name)' (op: RestoreV2): \(e.message)")
            }
            guard t.dtype == dtype else {
                throw KilnError.invalidArgument("'\(node.name)' (op: RestoreV2): tensor '\(name)' in checkpoint '\(prefix)' is \(t.dtype), but the op expects \(dtype)")
            }
            return t
        }
    }

    /// The prefix and tensor names, after checking that there is one name and one empty
    /// (whole-tensor) slice spec per tensor.
    private static func arguments(_ inputs: [Tensor], count: Int, node: KilnFrontend.Operation) throws -> (String, [String]) {
        let at = "'\(node.name)' (op: \(node.type))"
        guard inputs.count >= 3, inputs[0].dtype == .string, inputs[0].elementCount == 1 else {
            throw KilnError.invalidArgument("\(at): the prefix must be one string")
        }
        let names = inputs[1].strings.map { String(decoding: $0, as: UTF8.self) }
        let slices = inputs[2].strings.map { String(decoding: $0, as: UTF8.self) }
        guard names.count == count, slices.count == count else {
            throw KilnError.invalidArgument("\(at): \(names.count) tensor names and \(slices.count) shape_and_slices for \(count) tensors")
        }
        if let k = slices.firstIndex(where: { !$0.isEmpty }) {
            throw KilnError.unimplemented("\(at): tensor '\(names[k])' has shape_and_slices '\(slices[k])'; Kiln saves and restores whole tensors only")
        }
        let prefix = String(decoding: inputs[0].strings[0], as: UTF8.self)
        guard !prefix.isEmpty else { throw KilnError.invalidArgument("\(at): the checkpoint prefix is empty") }
        return (prefix, names)
    }
}
