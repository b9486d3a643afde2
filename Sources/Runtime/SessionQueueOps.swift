import KilnIR
import KilnFrontend

/// The queue ops (FIFOQueueV2, QueueDequeueV2, ...), answered by the session on the host against
/// the queues it keeps. Waits (a dequeue from an empty queue, an enqueue into a full one) let go
/// of the session's lock, so the runs that end them can proceed on other threads.
extension Session {
    /// The session's handler of each queue op (see `sessionHandlers`).
    static let queueHandlers: [String: SessionOpHandler] = [
        "FIFOQueueV2": madeQueue,
        "RandomShuffleQueueV2": madeQueue,
        "QueueEnqueueV2": onQueue { q, inputs, _, release in
            try q.enqueue(Array(inputs.dropFirst()), release: release)
            return []
        },
        "QueueEnqueueManyV2": onQueue { q, inputs, _, release in
            try q.enqueueMany(Array(inputs.dropFirst()), release: release)
            return []
        },
        "QueueDequeueV2": onQueue { q, _, _, release in try q.dequeue(release: release) },
        "QueueDequeueManyV2": onQueue { q, inputs, _, release in try q.dequeueMany(try count(inputs[1]), release: release) },
        "QueueDequeueUpToV2": onQueue { q, inputs, _, release in try q.dequeueUpTo(try count(inputs[1]), release: release) },
        "QueueCloseV2": onQueue { q, _, op, _ in
            q.close(cancelPendingEnqueues: op.attrs[QueueOps.cancelPendingEnqueues])
            return []
        },
        "QueueSizeV2": onQueue { q, _, _, _ in [Tensor(Int32(clamping: q.size))] },
    ]

    /// A queue op's output: the name of the queue it makes.
    private static let madeQueue: SessionOpHandler = { session, op, _ in [try session.handle(of: op) { try session.queue(madeBy: op).name }] }

    /// An op on the queue behind its input 0, given the queue and its input values; waits let go
    /// of the session's lock.
    private static func onQueue(_ body: @escaping @Sendable (HostQueue, [Tensor], KilnFrontend.Operation, HostQueue.Release) throws -> [Tensor]) -> SessionOpHandler {
        { session, op, feeds in
            guard let queueOp = QueueOps.queueOp(of: op.inputs[0]) else {
                throw KilnError.invalidArgument("input 0 of '\(op.name)' (op: \(op.type)) must be a queue handle, got '\(op.inputs[0].name)' (op: \(op.inputs[0].op.type))")
            }
            let q = try session.queue(madeBy: queueOp)
            let release: HostQueue.Release = { try session.withoutLock($0) }
            return try body(q, try session.hostInputs(of: op, feeds: feeds), op, release)
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
                ? .randomShuffle(minAfterDequeue: op.attrs[QueueOps.minAfterDequeue], seed: op.attrs[QueueOps.seed], seed2: op.attrs[QueueOps.seed2])
                : .fifo
            return try HostQueue(name: name, kind: kind, capacity: op.attrs[QueueOps.capacity], dtypes: types, shapes: shapes)
        } validate: { q in
            // Ops sharing a queue by shared_name must agree on what it holds, as TensorFlow checks.
            if case .types(let types)? = op.attrs["component_types"], types != q.dtypes {
                throw KilnError.invalidArgument("Shared queue '\(q.name)' has component types \(q.dtypes.map(\.name).joined(separator: ", ")) but requested component types \(types.map(\.name).joined(separator: ", "))")
            }
            if q.typeName != (op.type == "RandomShuffleQueueV2" ? "RandomShuffleQueue" : "FIFOQueue") {
                throw KilnError.invalidArgument("Shared queue '\(q.name)' is a \(q.typeName), but '\(op.name)' asks for a \(op.type)")
            }
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

    private static func count(_ n: Tensor) throws -> Int {
        guard n.dtype == .int32, n.rank == 0 else { throw KilnError.invalidArgument("n must be an int32 scalar, got \(n.dtype)\(Shape(n.shape))") }
        return Int(try n.scalar(as: Int32.self))
    }
}
