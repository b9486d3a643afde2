import KilnIR

/// TensorFlow's input producers (tf.train.string_input_producer and friends): a FIFO queue that a
/// queue runner fills with the rows of a tensor, shuffled or not, for `numEpochs` passes or
/// forever. After the last epoch the runner closes the queue and its consumers get outOfRange.
extension Graph {
    /// TensorFlow's `limit_epochs`: `tensor`, which may be computed `numEpochs` times; the next
    /// run fails with outOfRange ("Reached limit of N"). The count is a local variable
    /// (`<name>/epochs`, initialised by localVariablesInitializer). nil: no limit.
    public func limitEpochs(_ tensor: some OutputConvertible, numEpochs: Int?, name: String = "limit_epochs") throws -> Output {
        guard let numEpochs else { return tensor.output }
        guard numEpochs > 0 else { throw KilnError.invalidArgument("num_epochs must be > 0 not \(numEpochs).") }
        return try nameScope(name) {
            let scope = currentNameScope
            let epochs = try variable(constant(Tensor(Int64(0)), name: "Const"), name: "epochs", trainable: false, collections: [GraphKeys.localVariables])
            let counter = try addOperation("CountUpTo", name: "CountUpTo", inputs: [epochs.ref], attrs: ["limit": .int(numEpochs), "T": .type(.int64)])
            return try controlDependencies([counter]) { try identity(tensor, name: scope + "/") }
        }
    }

    /// TensorFlow's `input_producer`: the rows of `input` (dimension 0) in a FIFO queue that a queue
    /// runner (added to the graph's collection) fills, `numEpochs` times over (nil: forever),
    /// shuffled each pass when `shuffle`. `summaryName` names the queue's fullness,
    /// `<name>/<summaryName>` (size / capacity, a float scalar).
    public func inputProducer(_ input: some OutputConvertible, elementShape: Shape? = nil, numEpochs: Int? = nil, shuffle: Bool = true,
                              seed: Int? = nil, capacity: Int = 32, sharedName: String? = nil, summaryName: String? = nil,
                              name: String = "input_producer") throws -> FIFOQueue {
        let input = input.output
        guard let dims = input.shape.dims, !dims.isEmpty else {
            throw KilnError.invalidArgument("input_producer '\(name)': the input must have at least one dimension, got shape \(input.shape)")
        }
        var element = Shape(dims: Array(dims.dropFirst()))
        if let elementShape {
            guard element.isCompatible(with: elementShape) else {
                throw KilnError.invalidArgument("input_producer '\(name)': element_shape \(elementShape) does not match the input's rows of shape \(element)")
            }
            element = elementShape
        }
        guard element.isFullyDefined else {
            throw KilnError.invalidArgument("Either `input_tensor` must have a fully defined shape or `element_shape` must be specified (input_producer '\(name)', rows of shape \(element))")
        }
        return try nameScope(name) {
            let scope = currentNameScope
            var rows = input
            if shuffle { rows = try randomShuffle(rows, seed: seed) }
            rows = try limitEpochs(rows, numEpochs: numEpochs)
            let q = try FIFOQueue(self, capacity: capacity, dtypes: [rows.dtype], shapes: [element], sharedName: sharedName, name: scope + "/")
            addQueueRunner(try QueueRunner(queue: q, enqueueOps: [q.enqueueMany([rows])]))
            if let summaryName { _ = try fullness(q, capacity: capacity, name: "\(scope)/\(summaryName)") }
            return q
        }
    }

    /// TensorFlow's `string_input_producer`: the strings (file names, typically) in a queue,
    /// `numEpochs` times (nil: forever), shuffled each pass unless `shuffle` is false.
    /// `shardIndex`/`shardCount` keep every shardCount-th string from shardIndex: one process's
    /// part of the files in a data-parallel run (the rank and the world size).
    public func stringInputProducer(_ strings: [String], numEpochs: Int? = nil, shuffle: Bool = true, seed: Int? = nil, capacity: Int = 32,
                                    sharedName: String? = nil, shardIndex: Int = 0, shardCount: Int = 1,
                                    name: String = "input_producer") throws -> FIFOQueue {
        guard !strings.isEmpty else { throw KilnError.invalidArgument("string_input_producer requires a non-null input tensor") }
        let t = try constant(Tensor(shape: [strings.count], strings: strings.map { Array($0.utf8) }), name: "Const")
        return try stringInputProducer(t, numEpochs: numEpochs, shuffle: shuffle, seed: seed, capacity: capacity, sharedName: sharedName,
                                       shardIndex: shardIndex, shardCount: shardCount, name: name)
    }

    /// string_input_producer of a string vector computed by the graph (its length known when built).
    public func stringInputProducer(_ strings: some OutputConvertible, numEpochs: Int? = nil, shuffle: Bool = true, seed: Int? = nil,
                                    capacity: Int = 32, sharedName: String? = nil, shardIndex: Int = 0, shardCount: Int = 1,
                                    name: String = "input_producer") throws -> FIFOQueue {
        var s = strings.output
        guard s.dtype == .string, s.shape.isCompatible(with: Shape(dims: [nil])) else {
            throw KilnError.invalidArgument("string_input_producer takes a vector of strings, got \(s.dtype.name)\(s.shape)")
        }
        if s.shape.dims?.first == 0 { throw KilnError.invalidArgument("string_input_producer requires a non-null input tensor") }
        if shardIndex != 0 || shardCount != 1 {
            guard shardCount >= 1, (0..<shardCount).contains(shardIndex) else {
                throw KilnError.invalidArgument("string_input_producer '\(name)': shard index \(shardIndex) is not in 0..<\(shardCount)")
            }
            // Strings are host values: the shard is taken when the graph is built, from a constant.
            guard let all = staticValue(of: s) else {
                throw KilnError.invalidArgument("string_input_producer '\(name)' shards strings known when the graph is built (a constant), got '\(s.name)' (op: \(s.op.type))")
            }
            // A shard without strings would leave its process with no data while the others train.
            guard all.elementCount >= shardCount else {
                throw KilnError.invalidArgument("string_input_producer '\(name)': \(all.elementCount) strings cannot be sharded \(shardCount) ways: every shard needs one at least")
            }
            let mine = stride(from: shardIndex, to: all.elementCount, by: shardCount).map { all.strings[$0] }
            s = try constant(Tensor(shape: [mine.count], strings: mine), name: name + "_shard")
        }
        return try inputProducer(s, elementShape: Shape([]), numEpochs: numEpochs, shuffle: shuffle, seed: seed, capacity: capacity,
                                 sharedName: sharedName, summaryName: "fraction_of_\(capacity)_full", name: name)
    }

    /// TensorFlow's `range_input_producer`: the integers 0..<limit (int32) in a queue.
    public func rangeInputProducer(_ limit: Int, numEpochs: Int? = nil, shuffle: Bool = true, seed: Int? = nil, capacity: Int = 32,
                                   sharedName: String? = nil, name: String = "input_producer") throws -> FIFOQueue {
        guard limit > 0 else { throw KilnError.invalidArgument("range_input_producer '\(name)' needs a positive limit, got \(limit)") }
        return try nameScope(name) {
            let r = try range(0, Double(limit), 1, dtype: .int32, name: "range")
            return try inputProducer(r, elementShape: Shape([]), numEpochs: numEpochs, shuffle: shuffle, seed: seed, capacity: capacity,
                                     sharedName: sharedName, summaryName: "fraction_of_\(capacity)_full", name: currentNameScope + "/")
        }
    }

    /// TensorFlow's `slice_input_producer`: one row of each tensor (the same row of all), row by
    /// row through a range_input_producer of row indices. The tensors must agree in dimension 0,
    /// known when built.
    public func sliceInputProducer(_ tensors: [any OutputConvertible], numEpochs: Int? = nil, shuffle: Bool = true, seed: Int? = nil,
                                   capacity: Int = 32, sharedName: String? = nil, name: String = "input_producer") throws -> [Output] {
        let list = tensors.map(\.output)
        guard let first = list.first else { throw KilnError.invalidArgument("Expected at least one tensor in slice_input_producer().") }
        guard let rows = first.shape.dims?.first ?? nil else {
            throw KilnError.invalidArgument("slice_input_producer needs the number of rows of '\(first.name)' when the graph is built, got shape \(first.shape)")
        }
        for t in list where t.shape.dims?.first != .some(rows) {
            throw KilnError.invalidArgument("slice_input_producer: '\(t.name)' has shape \(t.shape), but '\(first.name)' has \(rows) rows")
        }
        return try nameScope(name) {
            let q = try rangeInputProducer(rows, numEpochs: numEpochs, shuffle: shuffle, seed: seed, capacity: capacity, sharedName: sharedName)
            let index = try q.dequeue()[0]
            return try list.map { try gather($0, index) }
        }
    }

    /// How full a queue is, size / capacity, as a float scalar named exactly `name`.
    func fullness(_ q: QueueBase, capacity: Int, name: String) throws -> Output {
        try multiply(toFloat(q.size()), constant(1 / Double(capacity), dtype: .float32, name: "mul/y"), name: name + "/")
    }
}
