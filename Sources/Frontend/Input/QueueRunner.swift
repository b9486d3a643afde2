import KilnIR

extension GraphKeys {
    /// TensorFlow's `tf.GraphKeys.QUEUE_RUNNERS`: the runners `startQueueRunners` starts.
    public static let queueRunners = "queue_runners"
}

/// TensorFlow's `tf.train.QueueRunner`: a queue and the ops that fill it, each run over and over
/// by a thread of its own (see `startQueueRunners`). When the input runs out (an enqueue fails
/// with outOfRange) the last of those threads closes the queue, so its consumers get outOfRange
/// once it is drained; when the coordinator stops, the queue is closed with pending enqueues cancelled.
/// Immutable once made, so runner threads share it.
public final class QueueRunner: @unchecked Sendable {
    public let queue: QueueBase
    /// One thread each; TensorFlow repeats one op to run it in several threads.
    public let enqueueOps: [Operation]
    /// Run when the input is exhausted: closes the queue.
    public let closeOp: Operation
    /// Run when the coordinator stops: closes the queue and cancels pending enqueues.
    public let cancelOp: Operation
    /// The errors of an enqueue that mean its input ran out or its queue closed: the thread then
    /// ends quietly (TensorFlow's `queue_closed_exception_types`, OutOfRangeError by default).
    public let queueClosedErrors: [KilnError.Code]

    public init(queue: QueueBase, enqueueOps: [Operation], closeOp: Operation? = nil, cancelOp: Operation? = nil,
                queueClosedErrors: [KilnError.Code] = [.outOfRange]) throws {
        guard !enqueueOps.isEmpty else { throw KilnError.invalidArgument("QueueRunner for '\(queue.name)' needs at least one enqueue op") }
        guard !queueClosedErrors.isEmpty else {
            throw KilnError.invalidArgument("QueueRunner for '\(queue.name)': queue_closed_exception_types must not be empty")
        }
        self.queue = queue
        self.enqueueOps = enqueueOps
        self.closeOp = try closeOp ?? queue.close()
        self.cancelOp = try cancelOp ?? queue.close(cancelPendingEnqueues: true)
        self.queueClosedErrors = queueClosedErrors
    }
}

extension Graph {
    /// Adds `runner` to the queue-runner collection (TensorFlow's `add_queue_runner`).
    public func addQueueRunner(_ runner: QueueRunner, collection: String = GraphKeys.queueRunners) {
        addToCollection(collection, runner)
    }

    /// The queue runners of a collection.
    public func queueRunners(_ collection: String = GraphKeys.queueRunners) -> [QueueRunner] {
        self.collection(collection).compactMap { $0 as? QueueRunner }
    }
}
