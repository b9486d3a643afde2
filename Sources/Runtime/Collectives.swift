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
}

/// What carries out the collective ops of a session's runs. The runtime declares it and
/// KilnDistributed implements it over MPI, installing it when its world starts: programs that
/// never run on a cluster link nothing of MPI, and a graph with a collective op run without a
/// world gets a clear error.
public protocol CollectiveEngine: AnyObject, Sendable {
    /// The reduced tensors, in the order of `requests`: one round of a step. Every rank passes
    /// the same list (names, dtypes, shapes) in the same order.
    func allreduce(_ requests: [AllreduceRequest]) throws -> [Tensor]
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
    /// rest of the step (the apply ops). One Session.run, one forward and backward pass.
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
        if !wanted.isEmpty {
            for (o, t) in zip(wanted, try runLocked(wanted, feeds: feeds, targets: [])) { feeds[o] = t }
        }
        let requests = try round.map { op -> AllreduceRequest in
            guard let x = feeds[op.inputs[0]] else { throw KilnError.internalError("'\(op.name)' (op: \(op.type)): its input was not computed before the collective round") }
            let reduce = CollectiveOps.ReduceOp(rawValue: op.attrs[CollectiveOps.Allreduce.reduceOp]) ?? .average
            return AllreduceRequest(name: op.name, tensor: x, reduceOp: reduce, prescale: op.attrs[CollectiveOps.Allreduce.prescale],
                                    postscale: op.attrs[CollectiveOps.Allreduce.postscale])
        }
        let reduced = try engine.allreduce(requests)
        guard reduced.count == round.count else { throw KilnError.internalError("the collective engine answered \(reduced.count) tensors for \(round.count) requests") }
        for (op, t) in zip(round, reduced) { feeds[op.output()] = t }
    }
}

extension Session {
    /// Whether the session's collective round answers `op` (its entry's service is `.collective`).
    static func isCollective(_ op: KilnFrontend.Operation) -> Bool {
        OpRegistry.def(op.type)?.sessionService == .collective
    }
}
