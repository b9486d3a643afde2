import KilnIR

/// TensorFlow's `QueueBase`: a queue kept by the session that runs the graph, and the ops that use
/// it. Build one with `FIFOQueue` or `RandomShuffleQueue`; each method adds an op to the graph
/// (named as TensorFlow names it: "fifo_queue_Dequeue", ...), which runs when a session runs it.
public class QueueBase {
    public let graph: Graph
    /// The queue op's output, the handle every queue op takes (TensorFlow's `queue_ref`).
    public let handle: Output
    public let dtypes: [DType]
    /// The element shapes, or nil when the queue takes any shape.
    public let shapes: [Shape]?

    /// The queue op's name.
    public var name: String { handle.op.name }

    init(graph: Graph, type: String, capacity: Int, dtypes: [DType], shapes: [Shape]?, sharedName: String?, name: String,
         extra: [String: AttrValue]) throws {
        if let shapes, shapes.count != dtypes.count {
            throw KilnError.invalidArgument("Queue '\(name)' has \(dtypes.count) dtypes but \(shapes.count) shapes")
        }
        var attrs: [String: AttrValue] = ["component_types": .types(dtypes), "shapes": .shapes(shapes ?? []), "capacity": .int(capacity),
                                          "shared_name": .string(sharedName ?? "")]
        for (k, v) in extra { attrs[k] = v }
        self.graph = graph
        self.handle = try graph.addOperation(type, name: name, attrs: attrs).output()
        self.dtypes = dtypes
        self.shapes = shapes
    }

    /// The queue an existing queue op makes: one of an imported graph (a QueueRunnerDef's).
    public init(existing op: Operation) throws {
        guard QueueOps.queueTypes.contains(op.type) else {
            throw KilnError.invalidArgument("'\(op.name)' (op: \(op.type)) is not a queue op (\(QueueOps.queueTypes.sorted().joined(separator: ", ")))")
        }
        guard case .types(let dtypes)? = op.attrs["component_types"], !dtypes.isEmpty else {
            throw KilnError.invalidArgument("queue op '\(op.name)' has no component_types")
        }
        self.graph = op.graph
        self.handle = op.output()
        self.dtypes = dtypes
        if case .shapes(let s)? = op.attrs["shapes"], !s.isEmpty { shapes = s } else { shapes = nil }
    }

    /// Adds one element (a tuple of one tensor per component); waits while the queue is full.
    @discardableResult
    public func enqueue(_ values: [any OutputConvertible], name: String? = nil) throws -> Operation {
        try graph.addOperation("QueueEnqueueV2", name: name ?? "\(self.name)_enqueue", inputs: [handle] + values.map(\.output),
                               attrs: ["Tcomponents": .types(values.map(\.output.dtype))])
    }

    /// Adds the slices along dimension 0 of each component, as that many elements.
    @discardableResult
    public func enqueueMany(_ values: [any OutputConvertible], name: String? = nil) throws -> Operation {
        try graph.addOperation("QueueEnqueueManyV2", name: name ?? "\(self.name)_EnqueueMany", inputs: [handle] + values.map(\.output),
                               attrs: ["Tcomponents": .types(values.map(\.output.dtype))])
    }

    /// One element's components; waits until there is one.
    public func dequeue(name: String? = nil) throws -> [Output] {
        try graph.addOperation("QueueDequeueV2", name: name ?? "\(self.name)_Dequeue", inputs: [handle],
                               attrs: ["component_types": .types(dtypes)]).outputs
    }

    /// `n` elements stacked along a new dimension 0; a closed queue with fewer fails with outOfRange.
    public func dequeueMany(_ n: Int, name: String? = nil) throws -> [Output] {
        try batchDequeue("QueueDequeueManyV2", n, name: name ?? "\(self.name)_DequeueMany")
    }

    /// As dequeueMany, but once the queue is closed it hands out the fewer elements left.
    public func dequeueUpTo(_ n: Int, name: String? = nil) throws -> [Output] {
        try batchDequeue("QueueDequeueUpToV2", n, name: name ?? "\(self.name)_DequeueUpTo")
    }

    private func batchDequeue(_ type: String, _ n: Int, name: String) throws -> [Output] {
        let exact = name.hasSuffix("/") ? String(name.dropLast()) : graph.uniqueName(name)
        let count = try graph.nameScope(exact + "/") { try graph.int32Scalar(n, name: "n") }
        return try graph.addOperation(type, name: exact + "/", inputs: [handle, count], attrs: ["component_types": .types(dtypes)]).outputs
    }

    /// Closes the queue: later enqueues fail, dequeues drain it and then fail with outOfRange.
    /// `cancelPendingEnqueues` also fails the enqueues waiting for room.
    @discardableResult
    public func close(cancelPendingEnqueues: Bool = false, name: String? = nil) throws -> Operation {
        try graph.addOperation("QueueCloseV2", name: name ?? "\(self.name)_Close", inputs: [handle],
                               attrs: ["cancel_pending_enqueues": .bool(cancelPendingEnqueues)])
    }

    /// The number of elements in the queue (int32 scalar).
    public func size(name: String? = nil) throws -> Output {
        try graph.addOperation("QueueSizeV2", name: name ?? "\(self.name)_Size", inputs: [handle]).output()
    }
}

/// TensorFlow's `FIFOQueue`: elements come out in the order they went in. Capacity -1: unbounded.
public final class FIFOQueue: QueueBase {
    public init(_ graph: Graph, capacity: Int, dtypes: [DType], shapes: [Shape]? = nil, sharedName: String? = nil,
                name: String = "fifo_queue") throws {
        try super.init(graph: graph, type: "FIFOQueueV2", capacity: capacity, dtypes: dtypes, shapes: shapes, sharedName: sharedName,
                       name: name, extra: [:])
    }
}

/// TensorFlow's `RandomShuffleQueue`: each dequeue takes a random element, and leaves at least
/// `minAfterDequeue` behind until the queue is closed (so consecutive elements mix).
public final class RandomShuffleQueue: QueueBase {
    public init(_ graph: Graph, capacity: Int, minAfterDequeue: Int, dtypes: [DType], shapes: [Shape]? = nil, seed: Int? = nil,
                sharedName: String? = nil, name: String = "random_shuffle_queue") throws {
        let (s1, s2) = graph.seeds(seed)
        try super.init(graph: graph, type: "RandomShuffleQueueV2", capacity: capacity, dtypes: dtypes, shapes: shapes, sharedName: sharedName,
                       name: name, extra: ["min_after_dequeue": .int(minAfterDequeue), "seed": .int(s1), "seed2": .int(s2)])
    }
}
