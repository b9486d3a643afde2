import KilnIR

/// TensorFlow's `tf.train.batch` and `tf.train.shuffle_batch`: a queue that `numThreads` queue-runner
/// threads fill with the given tensors (one element per run, or many with `enqueueMany`) and a
/// dequeue of `batchSize` of them at a time. With `allowSmallerFinalBatch`, the last batch
/// after the input ran out may be smaller (dimension 0 is then unknown when built).
extension Graph {
    public func batch(_ tensors: [any OutputConvertible], batchSize: Int, numThreads: Int = 1, capacity: Int = 32, enqueueMany: Bool = false,
                      shapes: [Shape]? = nil, allowSmallerFinalBatch: Bool = false, sharedName: String? = nil,
                      name: String = "batch") throws -> [Output] {
        let list = tensors.map(\.output)
        let elementShapes = try batchShapes(list, shapes: shapes, enqueueMany: enqueueMany, batchSize: batchSize, numThreads: numThreads, op: "batch")
        return try nameScope(name) {
            let scope = currentNameScope
            let q = try FIFOQueue(self, capacity: capacity, dtypes: list.map(\.dtype), shapes: elementShapes, sharedName: sharedName)
            try fill(q, list, numThreads: numThreads, enqueueMany: enqueueMany)
            _ = try fullness(q, capacity: capacity, name: "\(scope)/fraction_of_\(capacity)_full")
            return try allowSmallerFinalBatch ? q.dequeueUpTo(batchSize, name: scope + "/") : q.dequeueMany(batchSize, name: scope + "/")
        }
    }

    /// As `batch`, through a RandomShuffleQueue: each batch is drawn at random from the elements
    /// queued, at least `minAfterDequeue` of which stay behind (until the input runs out) so
    /// that batches mix. `<name>/fraction_over_<min>_of_<capacity-min>_full` says how full it is.
    public func shuffleBatch(_ tensors: [any OutputConvertible], batchSize: Int, capacity: Int, minAfterDequeue: Int, numThreads: Int = 1,
                             seed: Int? = nil, enqueueMany: Bool = false, shapes: [Shape]? = nil, allowSmallerFinalBatch: Bool = false,
                             sharedName: String? = nil, name: String = "shuffle_batch") throws -> [Output] {
        let list = tensors.map(\.output)
        let elementShapes = try batchShapes(list, shapes: shapes, enqueueMany: enqueueMany, batchSize: batchSize, numThreads: numThreads, op: "shuffle_batch")
        return try nameScope(name) {
            let scope = currentNameScope
            let q = try RandomShuffleQueue(self, capacity: capacity, minAfterDequeue: minAfterDequeue, dtypes: list.map(\.dtype), shapes: elementShapes,
                                           seed: seed, sharedName: sharedName)
            try fill(q, list, numThreads: numThreads, enqueueMany: enqueueMany)
            let over = try maximum(constant(Int32(0), name: "Maximum/x"), subtract(q.size(), constant(Int32(clamping: minAfterDequeue), name: "sub/y")))
            let spare = capacity - minAfterDequeue
            _ = try multiply(toFloat(over), constant(1 / Double(spare), dtype: .float32, name: "mul/y"),
                             name: "\(scope)/fraction_over_\(minAfterDequeue)_of_\(spare)_full/")
            return try allowSmallerFinalBatch ? q.dequeueUpTo(batchSize, name: scope + "/") : q.dequeueMany(batchSize, name: scope + "/")
        }
    }

    /// The element shapes of a batch queue, which must be fully defined (TensorFlow's `_shapes`),
    /// after the checks TensorFlow makes on the arguments.
    private func batchShapes(_ list: [Output], shapes: [Shape]?, enqueueMany: Bool, batchSize: Int, numThreads: Int, op: String) throws -> [Shape] {
        guard !list.isEmpty else { throw KilnError.invalidArgument("Expected at least one tensor in \(op)().") }
        guard batchSize > 0 else { throw KilnError.invalidArgument("\(op): batch_size must be positive, got \(batchSize)") }
        guard numThreads > 0 else { throw KilnError.invalidArgument("\(op): num_threads must be positive, got \(numThreads)") }
        if let shapes, shapes.count != list.count {
            throw KilnError.invalidArgument("\(op): \(shapes.count) shapes given for \(list.count) tensors")
        }
        let result = try list.enumerated().map { i, t -> Shape in
            if let shapes { return shapes[i] }
            guard enqueueMany else { return t.shape }
            guard let dims = t.shape.dims, !dims.isEmpty else {
                throw KilnError.invalidArgument("\(op): with enqueue_many, '\(t.name)' must have a batch dimension, got shape \(t.shape)")
            }
            return Shape(dims: Array(dims.dropFirst()))
        }
        guard result.allSatisfy(\.isFullyDefined) else {
            throw KilnError.invalidArgument("All shapes must be fully defined: [\(result.map(\.description).joined(separator: ", "))]")
        }
        return result
    }

    /// The enqueue op, repeated once per thread in the queue runner (as TensorFlow does).
    private func fill(_ q: QueueBase, _ list: [Output], numThreads: Int, enqueueMany: Bool) throws {
        let op = try enqueueMany ? q.enqueueMany(list) : q.enqueue(list)
        addQueueRunner(try QueueRunner(queue: q, enqueueOps: Array(repeating: op, count: numThreads)))
    }
}
