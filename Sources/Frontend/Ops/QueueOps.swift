import KilnIR

/// TensorFlow's queue ops (data_flow_ops). A queue op's output is a handle to a queue the session
/// keeps (a string scalar here, so compiled code never sees it); the enqueue, dequeue, close and
/// size ops take that handle and the session runs them on the host, against its queue.
public enum QueueOps {
    public static let capacity = Attr<Int>("capacity", default: -1)
    public static let minAfterDequeue = Attr<Int>("min_after_dequeue", default: 0)
    public static let seed = Attr<Int>("seed", default: 0)
    public static let seed2 = Attr<Int>("seed2", default: 0)
    public static let cancelPendingEnqueues = Attr<Bool>("cancel_pending_enqueues", default: false)

    static let defs: [OpDef] = [
        queue("FIFOQueueV2"),
        queue("RandomShuffleQueueV2").declaring(minAfterDequeue, seed, seed2),
        OpDef("QueueEnqueueV2", arity: .atLeast(2), attrs: ["Tcomponents": .types([]), "timeout_ms": .int(-1)], stateful: true, infer: { ctx in
            try checkComponents(ctx, batched: false)
            return []
        }).notDifferentiable(),
        OpDef("QueueEnqueueManyV2", arity: .atLeast(2), attrs: ["Tcomponents": .types([]), "timeout_ms": .int(-1)], stateful: true, infer: { ctx in
            try checkComponents(ctx, batched: true)
            return []
        }).notDifferentiable(),
        OpDef("QueueDequeueV2", arity: .exactly(1), attrs: ["component_types": .types([]), "timeout_ms": .int(-1)], stateful: true, infer: { ctx in
            try dequeued(ctx, batch: nil)
        }).notDifferentiable(),
        OpDef("QueueDequeueManyV2", arity: .exactly(2), attrs: ["component_types": .types([]), "timeout_ms": .int(-1)], stateful: true, infer: { ctx in
            try dequeued(ctx, batch: try count(ctx))
        }).notDifferentiable(),
        OpDef("QueueDequeueUpToV2", arity: .exactly(2), attrs: ["component_types": .types([]), "timeout_ms": .int(-1)], stateful: true, infer: { ctx in
            _ = try count(ctx)
            return try dequeued(ctx, batch: .some(nil))
        }).notDifferentiable(),
        OpDef("QueueCloseV2", arity: .exactly(1), stateful: true, infer: { ctx in
            try checkHandle(ctx)
            return []
        }).declaring(cancelPendingEnqueues).notDifferentiable(),
        OpDef("QueueSizeV2", arity: .exactly(1), stateful: true, infer: { ctx in
            try checkHandle(ctx)
            return [(.int32, Shape([]))]
        }).notDifferentiable(),
    ].map { $0.answeredBySession(.queue).notDifferentiable() }

    /// Every queue op type: the session answers all of them on the host.
    public static let types: Set<String> = Set(defs.map(\.name))
    static let queueTypes: Set<String> = ["FIFOQueueV2", "RandomShuffleQueueV2"]

    /// The queue op behind a handle (through Identity ops), nil when it is not a queue op.
    public static func queueOp(of handle: Output) -> Operation? {
        var o = handle
        while o.op.type == "Identity" { o = o.op.inputs[0] }
        return queueTypes.contains(o.op.type) ? o.op : nil
    }

    /// A queue op: the checks TensorFlow makes when the queue kernel is built, made when the node is.
    static func queue(_ name: String) -> OpDef {
        let attrs: [String: AttrValue] = ["component_types": .types([]), "shapes": .shapes([]), "container": .string(""), "shared_name": .string("")]
        return OpDef(name, arity: .exactly(0), attrs: attrs, stateful: true, infer: { ctx in
            guard case .types(let types)? = ctx.attrs["component_types"], !types.isEmpty else {
                throw ctx.error("a queue needs at least one component type (component_types is empty)")
            }
            let shapes = declaredShapes(ctx.attrs)
            guard shapes.isEmpty || shapes.count == types.count else {
                throw ctx.error("shapes must have the same length as component_types (\(shapes.count) vs \(types.count))")
            }
            guard shapes.allSatisfy({ $0.concrete != nil }) else { throw ctx.error("All shapes must be fully defined: \(shapes)") }
            let capacity = ctx.attrs[QueueOps.capacity]
            guard capacity > 0 || capacity == -1 else { throw ctx.error("capacity must be positive (or -1 for unbounded), got \(capacity)") }
            if let minAfter = ctx.attrs["min_after_dequeue"]?.int {
                guard minAfter >= 0 else { throw ctx.error("min_after_dequeue must be >= 0, got \(minAfter)") }
                guard capacity == -1 || minAfter < capacity else {
                    throw ctx.error("min_after_dequeue (\(minAfter)) must be less than capacity (\(capacity))")
                }
            }
            return [(.string, Shape([]))]
        }).declaring(capacity)
    }

    /// A queue op's `shapes` attr (empty: the queue takes any shapes).
    static func declaredShapes(_ attrs: [String: AttrValue]) -> [Shape] {
        if case .shapes(let s)? = attrs["shapes"] { return s }
        return []
    }

    static func checkHandle(_ ctx: InferenceContext) throws {
        guard ctx.dtype(0) == .string, ctx.shape(0).isCompatible(with: Shape([])) else {
            throw ctx.error("input 0 must be a queue handle (a string scalar), got \(ctx.dtype(0).name)\(ctx.shape(0))")
        }
    }

    /// The queue's component types and shapes, when the handle comes straight from a queue op.
    static func signature(_ ctx: InferenceContext) throws -> (types: [DType], shapes: [Shape])? {
        try checkHandle(ctx)
        guard let q = queueOp(of: ctx.inputs[0]), case .types(let types)? = q.attrs["component_types"] else { return nil }
        let shapes = declaredShapes(q.attrs)
        return (types, shapes.isEmpty ? Array(repeating: Shape.unknown, count: types.count) : shapes)
    }

    /// Enqueued components must match the queue's types (and shapes, with dimension 0 the batch
    /// for EnqueueMany), as TensorFlow checks when the op runs.
    static func checkComponents(_ ctx: InferenceContext, batched: Bool) throws {
        let given = ctx.inputs.dropFirst()
        guard let (types, shapes) = try signature(ctx) else { return }
        guard given.count == types.count else {
            throw ctx.error("Wrong number of components in tuple. Expected \(types.count), got \(given.count)")
        }
        for (i, c) in given.enumerated() {
            guard c.dtype == types[i] else { throw ctx.error("Type mismatch in tuple component \(i). Expected \(types[i].name), got \(c.dtype.name)") }
            var shape = c.shape
            if batched {
                guard let dims = shape.dims else { continue }
                guard !dims.isEmpty else { throw ctx.error("Shape mismatch in tuple component \(i). Expected [batch] + \(shapes[i]), got a scalar") }
                shape = Shape(dims: Array(dims.dropFirst()))
            }
            guard shape.isCompatible(with: shapes[i]) else {
                throw ctx.error("Shape mismatch in tuple component \(i). Expected \(shapes[i]), got \(shape)")
            }
        }
    }

    /// DequeueMany/UpTo's count: an int32 scalar, not negative when known.
    static func count(_ ctx: InferenceContext) throws -> Int? {
        guard ctx.dtype(1) == .int32, ctx.shape(1).isCompatible(with: Shape([])) else {
            throw ctx.error("n must be an int32 scalar, got \(ctx.dtype(1).name)\(ctx.shape(1))")
        }
        guard let v = ctx.constantValue(1) else { return nil }
        let n = Int(v.double(at: 0))
        guard n >= 0 else { throw ctx.error("\(ctx.opType == "QueueDequeueUpToV2" ? "DequeueUpToOp" : "DequeueManyOp") requested \(n) < 0 elements") }
        return n
    }

    /// The dequeued components: the queue's types and shapes, with a leading batch dimension
    /// (`batch`: .some(nil) when its size is not known) for DequeueMany/UpTo.
    static func dequeued(_ ctx: InferenceContext, batch: Int??) throws -> [(DType, Shape)] {
        guard case .types(let types)? = ctx.attrs["component_types"], !types.isEmpty else {
            throw ctx.error("component_types must list the dequeued dtypes")
        }
        var shapes = [Shape](repeating: .unknown, count: types.count)
        if let (queueTypes, queueShapes) = try signature(ctx) {
            guard queueTypes == types else {
                throw ctx.error("component_types [\(types.map(\.name).joined(separator: ", "))] do not match the queue's [\(queueTypes.map(\.name).joined(separator: ", "))]")
            }
            shapes = queueShapes
        }
        return zip(types, shapes).map { t, s in
            guard let batch else { return (t, s) }
            return (t, s.dims.map { Shape(dims: [batch] + $0) } ?? .unknown)
        }
    }
}
