import KilnIR
import KilnFrontend

/// The queue ops (FIFOQueueV2, QueueDequeueV2, ...), answered by the session on the host against
/// the queues it keeps. Waits (a dequeue from an empty queue, an enqueue into a full one) let go
/// of the session's lock, so the runs that end them can proceed on other threads.
extension Session {
    func queueOutputs(of op: KilnFrontend.Operation, feeds: [Output: Tensor]) throws -> [Tensor] {
        if op.type == "FIFOQueueV2" || op.type == "RandomShuffleQueueV2" {
            return [Tensor(try queue(madeBy: op).name)]
        }
        guard let queueOp = QueueOps.queueOp(of: op.inputs[0]) else {
            throw KilnError.invalidArgument("input 0 of '\(op.name)' (op: \(op.type)) must be a queue handle, got '\(op.inputs[0].name)' (op: \(op.inputs[0].op.type))")
        }
        let q = try queue(madeBy: queueOp)
        let release: HostQueue.Release = { try self.withoutLock($0) }
        let inputs = try hostInputs(of: op, feeds: feeds)
        switch op.type {
        case "QueueEnqueueV2":
            try q.enqueue(Array(inputs.dropFirst()), release: release)
            return []
        case "QueueEnqueueManyV2":
            try q.enqueueMany(Array(inputs.dropFirst()), release: release)
            return []
        case "QueueDequeueV2":
            return try q.dequeue(release: release)
        case "QueueDequeueManyV2":
            return try q.dequeueMany(try count(inputs[1]), release: release)
        case "QueueDequeueUpToV2":
            return try q.dequeueUpTo(try count(inputs[1]), release: release)
        case "QueueCloseV2":
            q.close(cancelPendingEnqueues: op.attrs["cancel_pending_enqueues"]?.bool ?? false)
            return []
        case "QueueSizeV2":
            return [Tensor(Int32(clamping: q.size))]
        default:
            throw KilnError.internalError("'\(op.name)': no host implementation of queue op \(op.type)")
        }
    }

    /// The queue a queue op makes in this session (made on first use, from the op's attrs).
    func queue(madeBy op: KilnFrontend.Operation) throws -> HostQueue {
        let q = try resource(of: op) { name in
            guard case .types(let types)? = op.attrs["component_types"] else {
                throw KilnError.invalidArgument("'\(op.name)' (op: \(op.type)) has no component_types")
            }
            let shapes: [[Int]]?
            if case .shapes(let s)? = op.attrs["shapes"], !s.isEmpty {
                shapes = try s.map { shape in
                    guard let dims = shape.concrete else { throw KilnError.invalidArgument("'\(op.name)': all shapes must be fully defined, got \(shape)") }
                    return dims
                }
            } else { shapes = nil }
            let kind: HostQueue.Kind = op.type == "RandomShuffleQueueV2"
                ? .randomShuffle(minAfterDequeue: op.attrs["min_after_dequeue"]?.int ?? 0, seed: op.attrs["seed"]?.int ?? 0, seed2: op.attrs["seed2"]?.int ?? 0)
                : .fifo
            return try HostQueue(name: name, kind: kind, capacity: op.attrs["capacity"]?.int ?? -1, dtypes: types, shapes: shapes)
        }
        // Ops sharing a queue by shared_name must agree on what it holds, as TensorFlow checks.
        if case .types(let types)? = op.attrs["component_types"], types != q.dtypes {
            throw KilnError.invalidArgument("Shared queue '\(q.name)' has component types \(q.dtypes.map(\.name).joined(separator: ", ")) but requested component types \(types.map(\.name).joined(separator: ", "))")
        }
        if q.typeName != (op.type == "RandomShuffleQueueV2" ? "RandomShuffleQueue" : "FIFOQueue") {
            throw KilnError.invalidArgument("Shared queue '\(q.name)' is a \(q.typeName), but '\(op.name)' asks for a \(op.type)")
        }
        return q
    }

    /// The queue behind a handle (an output of a queue op, possibly through Identity ops): for
    /// ops of other families that take a queue (a reader's `read`).
    func queue(for handle: Output) throws -> HostQueue {
        guard let op = QueueOps.queueOp(of: handle) else {
            throw KilnError.invalidArgument("'\(handle.name)' (op: \(handle.op.type)) is not a queue handle")
        }
        return try queue(madeBy: op)
    }

    private func count(_ n: Tensor) throws -> Int {
        guard n.dtype == .int32, n.rank == 0 else { throw KilnError.invalidArgument("n must be an int32 scalar, got \(n.dtype)\(Shape(n.shape))") }
        return Int(try n.scalar(as: Int32.self))
    }
}
