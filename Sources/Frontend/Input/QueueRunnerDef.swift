import KilnIR

/// QueueRunners in a MetaGraphDef: TensorFlow keeps the `queue_runners` collection as a
/// bytes_list of serialized QueueRunnerDefs (queue_runner.proto), so that after importing a
/// `.meta` the runners can be started again.
extension QueueRunner {
    /// This runner as TensorFlow's QueueRunnerDef (names of the queue op and of its ops).
    public var queueRunnerDef: Tensorflow_QueueRunnerDef {
        var def = Tensorflow_QueueRunnerDef()
        def.queueName = queue.name
        def.enqueueOpName = enqueueOps.map(\.name)
        def.closeOpName = closeOp.name
        def.cancelOpName = cancelOp.name
        def.queueClosedExceptionTypes = queueClosedErrors.map(QueueRunner.protoCode)
        return def
    }

    /// The runner a QueueRunnerDef describes, its names looked up in `graph` under `scope`
    /// (an import scope with its trailing "/", or ""). A name the graph lacks, or an op that is
    /// not a queue where one is expected, is a clear error.
    public convenience init(_ def: Tensorflow_QueueRunnerDef, graph: Graph, scope: String = "") throws {
        func op(_ name: String, _ role: String) throws -> Operation {
            guard !name.isEmpty else { throw KilnError.invalidArgument("QueueRunnerDef of queue '\(def.queueName)' has no \(role)") }
            guard let op = graph.operation(named: MetaGraphNames.scoped(name, scope)) else {
                throw KilnError.notFound("QueueRunnerDef of queue '\(def.queueName)' names \(role) '\(name)', which the graph does not have")
            }
            return op
        }
        let queue = try QueueBase(existing: try op(def.queueName, "queue"))
        // A QueueRunnerDef without close or cancel op names comes from a TensorFlow that always
        // had them; an empty name is an error rather than a silently different runner.
        try self.init(queue: queue, enqueueOps: try def.enqueueOpName.map { try op($0, "enqueue op") },
                      closeOp: try op(def.closeOpName, "close op"), cancelOp: try op(def.cancelOpName, "cancel op"),
                      queueClosedErrors: def.queueClosedExceptionTypes.isEmpty ? [.outOfRange] : try def.queueClosedExceptionTypes.map(QueueRunner.kilnCode))
    }

    /// TensorFlow's error codes (error_codes.proto) are KilnError's, in the same order from CANCELLED = 1.
    private static let codes: [KilnError.Code] = [.cancelled, .unknown, .invalidArgument, .deadlineExceeded, .notFound, .alreadyExists,
                                                  .permissionDenied, .resourceExhausted, .failedPrecondition, .aborted, .outOfRange,
                                                  .unimplemented, .internal, .unavailable, .dataLoss, .unauthenticated]

    static func protoCode(_ code: KilnError.Code) -> Tensorflow_Error_Code {
        Tensorflow_Error_Code(rawValue: codes.firstIndex(of: code)! + 1) ?? .unknown
    }

    static func kilnCode(_ code: Tensorflow_Error_Code) throws -> KilnError.Code {
        guard (1...codes.count).contains(code.rawValue) else {
            throw KilnError.invalidArgument("QueueRunnerDef: queue_closed_exception_types holds error code \(code.rawValue), which is not an error")
        }
        return codes[code.rawValue - 1]
    }
}
