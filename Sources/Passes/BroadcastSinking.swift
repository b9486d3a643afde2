import KilnIR

/// Computes elementwise ops on broadcast values before the broadcast: `op(broadcast(a),
/// broadcast(b))` becomes `broadcast(op(a, b))` where the broadcasts replicate alike (or one is
/// a scalar's), as XLA's simplifier sinks them. Gradient graphs apply per-channel arithmetic to
/// broadcast tensors (batch norm's backward divides a broadcast per-channel sum by a broadcast
/// element count); done after the broadcast, every element of the image repeats its channel's
/// division. Each element's value is the same either way, bit for bit. Broadcasts replicate
/// alike when their operands have one shape and their `dims` are equal; a `[1,1,1,C]` operand
/// and a `[C]` one are not unified, since a size-1 axis may be a batch of one, and dropping it
/// would lower a batch of one differently from other batches (see `BatchTemplate`).
public struct BroadcastSinkingPass: Pass {
    public init() {}
    public var name: String { "sink-broadcasts" }

    /// A broadcast in the rewritten body: its operand, the operand's type, and its own attributes.
    struct Replication {
        var source: Int
        var sourceType: TensorType
        var shape: [Int]
        var dims: [Int]
    }

    public func run(_ f: inout Function) throws {
        // Tables indexed by value id (ids are dense), which the pass's new values extend; the
        // body is rebuilt only when something sinks. The pass runs on every lowering (the short
        // batch's check and the batch template's shorter lowering too).
        var nextID = max(f.params.count, (f.body.map(\.id).max() ?? -1) + 1)
        var types = [TensorType?](repeating: nil, count: nextID)
        for (i, p) in f.params.enumerated() { types[i] = p.type }
        for inst in f.body { types[inst.id] = inst.type }
        var replications = [Replication?](repeating: nil, count: nextID)
        // By body index, the instructions that replace a sunk one (its broadcast, under its id, last).
        var rewrites: [Int: [Instruction]] = [:]

        for k in f.body.indices {
            let inst = f.body[k]
            guard let type = inst.type else { continue }
            if case .broadcast(let shape, let dims) = inst.op, let xt = types[inst.operands[0]] {
                replications[inst.id] = Replication(source: inst.operands[0], sourceType: xt, shape: shape, dims: dims)
                continue
            }
            guard Self.sinks(inst.op), type.rank > 0, !inst.operands.isEmpty,
                  inst.operands.allSatisfy({ replications[$0] != nil }) else { continue }
            let reps = inst.operands.map { replications[$0]! }
            // The replication every non-scalar operand shares, if they share one.
            let key = reps.first { $0.sourceType.rank > 0 }
            if let key, !reps.allSatisfy({ $0.sourceType.rank == 0 || ($0.sourceType.shape == key.sourceType.shape && $0.dims == key.dims) }) {
                continue
            }
            var added: [Instruction] = []
            func add(_ op: Op, _ operands: [Int], _ type: TensorType) -> Int {
                added.append(Instruction(id: nextID, op: op, operands: operands, type: type))
                types.append(type)
                replications.append(nil)
                nextID += 1
                return nextID - 1
            }
            let small = key?.sourceType.shape ?? []
            let operands = reps.map { r -> Int in
                if r.sourceType.rank > 0 || small.isEmpty { return r.source }
                return add(.broadcast(shape: small, dims: []), [r.source], TensorType(r.sourceType.dtype, small))
            }
            let value = add(inst.op, operands, TensorType(type.dtype, small))
            let dims = key?.dims ?? []
            added.append(Instruction(id: inst.id, op: .broadcast(shape: type.shape, dims: dims), operands: [value], type: type))
            rewrites[k] = added
            replications[inst.id] = Replication(source: value, sourceType: TensorType(type.dtype, small), shape: type.shape, dims: dims)
        }
        guard !rewrites.isEmpty else { return }
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count + 3 * rewrites.count)
        for k in f.body.indices {
            if let added = rewrites[k] { body += added } else { body.append(f.body[k]) }
        }
        f.body = body
    }

    /// Pure elementwise ops, whose value at an element depends only on their operands' values
    /// there (a random draw depends on its position, a check reports the element it fails at).
    static func sinks(_ op: Op) -> Bool {
        switch op {
        case .unary, .binary, .compare, .select, .cast: return true
        default: return false
        }
    }
}
