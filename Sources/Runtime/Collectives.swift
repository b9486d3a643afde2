import Foundation
import KilnIR
import KilnFrontend

/// One tensor of a collective round: a HorovodAllreduce op's input and what its attrs ask for.
public struct AllreduceRequest: Sendable {
    public let name: String
    public let tensor: Tensor
    public let reduceOp: CollectiveOps.ReduceOp
    public let prescale: Double
    public let postscale: Double

    public init(name: String, tensor: Tensor, reduceOp: CollectiveOps.ReduceOp, prescale: Double = 1, postscale: Double = 1) {
        self.name = name
        self.tensor = tensor
        self.reduceOp = reduceOp
        self.prescale = prescale
        self.postscale = postscale
    }

    /// What the request reduces, without its value: what fusion buffers are formed from.
    public var spec: AllreduceSpec { AllreduceSpec(name: name, dtype: tensor.dtype, shape: tensor.shape, reduceOp: reduceOp) }
}

/// What carries out the collective ops of a session's runs. The runtime declares it and
/// KilnDistributed implements it over MPI, installing it when its world starts: programs that
/// never run on a cluster link nothing of MPI, and a graph with a collective op run without a
/// world gets a clear error.
public protocol CollectiveEngine: AnyObject, Sendable {
    /// The reduced tensors, in the order of `requests`: one round of a step. Every rank passes
    /// the same list (names, dtypes, shapes) in the same order.
    func allreduce(_ requests: [AllreduceRequest]) throws -> [Tensor]
    /// The buckets (indices of `tensors`, which come in the order the backward pass produces
    /// them) a round is reduced in while the rest of the backward pass runs, or nil to reduce
    /// the round at once after it (the default). Fixed by the list alone, never by timing, so
    /// every rank forms the same buckets.
    func overlapBuckets(_ tensors: [AllreduceSpec]) -> [[Int]]?
    /// Begins a round reduced in `buckets` (as overlapBuckets answered, in the order they will
    /// be started): the session starts each bucket once its tensors are computed.
    func allreduceOverlapped(_ tensors: [AllreduceSpec], buckets: [[Int]]) throws -> BackgroundAllreduce
}

extension CollectiveEngine {
    public func overlapBuckets(_ tensors: [AllreduceSpec]) -> [[Int]]? { nil }

    /// Each bucket as a round of its own.
    public func allreduceOverlapped(_ tensors: [AllreduceSpec], buckets: [[Int]]) throws -> BackgroundAllreduce {
        BackgroundAllreduce(count: tensors.count, buckets: buckets) { _, requests in try self.allreduce(requests) }
    }
}

/// What a round's tensor is, before its value exists: what the buckets are formed from.
public struct AllreduceSpec: Hashable, Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let reduceOp: CollectiveOps.ReduceOp

    public init(name: String, dtype: DType, shape: [Int], reduceOp: CollectiveOps.ReduceOp) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.reduceOp = reduceOp
    }

    public var byteCount: Int { shape.reduce(dtype.byteSize, *) }
}

/// The installed engine (at most one per process, as there is one MPI world).
public enum Collectives {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var installed: (any CollectiveEngine)?

    public static func install(_ engine: (any CollectiveEngine)?) {
        lock.lock()
        defer { lock.unlock() }
        installed = engine
    }

    public static var engine: (any CollectiveEngine)? {
        lock.lock()
        defer { lock.unlock() }
        return installed
    }
}

extension Session {
    /// Runs the collective ops of a run's host plan that are still unanswered, all in one round:
    /// their inputs (the gradients) and the fetches that need no collective are computed in one
    /// compiled run, the engine reduces them (fused), and their results are fed to the compiled
    /// rest of the step (the apply ops). One Session.run, one forward and backward pass. When the
    /// engine overlaps, the compiled run is split into stages and the early gradients are
    /// reduced while the later ones are computed (CollectiveOverlap.swift).
    func runCollectiveRound(_ plan: HostPlan, fetches: [Output], feeds: inout [Output: Tensor]) throws {
        guard let engine = Collectives.engine else {
            let op = plan.collectives[0]
            throw KilnError.failedPrecondition("'\(op.name)' (op: \(op.type)) reduces across processes, but no distributed world is running in this process: start one with KilnDistributed's World.start() (under mpirun)")
        }
        let round = plan.collectives.filter { feeds[$0.output()] == nil }
        guard !round.isEmpty else { return }
        var wanted: [Output] = []
        var seen = Set<Output>()
        for op in round { for i in op.inputs where feeds[i] == nil && seen.insert(i).inserted { wanted.append(i) } }
        // The loss and other fetches upstream of no collective come out of the same compiled run,
        // and so do the values the compiled part after the collectives reads from before them.
        for f in fetches + plan.collectiveFrontier where feeds[f] == nil && plan.beforeCollectives.contains(f.op) && f.dtype != .string
            && seen.insert(f).inserted {
            wanted.append(f)
        }
        if let layout = try Session.overlapLayout(round, engine: engine) {
            return try runOverlappedRound(layout, wanted: wanted, engine: engine, feeds: &feeds)
        }
        if !wanted.isEmpty {
            for (o, t) in zip(wanted, try runLocked(wanted, feeds: feeds, targets: [])) { feeds[o] = t }
        }
        let requests = try round.map { op -> AllreduceRequest in
            guard let x = feeds[op.inputs[0]] else { throw KilnError.internalError("'\(op.name)' (op: \(op.type)): its input was not computed before the collective round") }
            return Session.allreduceRequest(op, x)
        }
        let reduced = try engine.allreduce(requests)
        guard reduced.count == round.count else { throw KilnError.internalError("the collective engine answered \(reduced.count) tensors for \(round.count) requests") }
        for (op, t) in zip(round, reduced) { feeds[op.output()] = t }
    }
}

extension Session {
    static func reduceOp(_ op: KilnFrontend.Operation) -> CollectiveOps.ReduceOp {
        CollectiveOps.ReduceOp(rawValue: op.attrs[CollectiveOps.Allreduce.reduceOp]) ?? .average
    }

    /// What `op` asks the engine to do with `x`, its input's value.
    static func allreduceRequest(_ op: KilnFrontend.Operation, _ x: Tensor) -> AllreduceRequest {
        AllreduceRequest(name: op.name, tensor: x, reduceOp: reduceOp(op), prescale: op.attrs[CollectiveOps.Allreduce.prescale],
                         postscale: op.attrs[CollectiveOps.Allreduce.postscale])
    }

    /// Whether the session's collective round answers `op` (its entry's service is `.collective`).
    static func isCollective(_ op: KilnFrontend.Operation) -> Bool {
        OpRegistry.def(op.type)?.sessionService == .collective
    }
}
