import KilnIR
import KilnFrontend

/// What the host pass of one run signature looks at, worked out once per graph version. A run
/// that involves a host op (a training step that dequeues its batch) used to prune the whole
/// graph twice per run and ask every op whether the host computes it: for the digits model that
/// was more time than the queue pipeline itself.
struct HostPlan {
    let version: Int
    /// The pruned run's ops the host may compute (the others always compile), in execution order.
    let candidates: [KilnFrontend.Operation]
    /// How the host answers each candidate.
    let answers: [Session.HostAnswer]
    /// Each candidate's inputs that are not constants: those compiled code may have to compute.
    let computedInputs: [[Output]]
    /// How many outputs the candidates have together (the most values the host pass adds).
    let outputCount: Int
    /// Whether one of them is answered on the host only in some runs: the signature is then never
    /// marked free of host ops.
    let mayChange: Bool
    /// Candidates that may run after the compiled part, from its results (summaries of the
    /// step's loss): no compiled op of the run consumes them, directly or through a control edge.
    let mayRunAfter: Set<KilnFrontend.Operation>
    /// The collective ops among the candidates (HorovodAllreduce), answered in one round.
    let collectives: [KilnFrontend.Operation]
    /// The run's ops that depend on no collective op (the forward pass, the loss): computed in
    /// the same compiled run as the collectives' inputs.
    let beforeCollectives: Set<KilnFrontend.Operation>
    /// The values of those ops that the compiled part after the collectives consumes (batch
    /// norm's moments for its moving averages, say): computed before and fed after, so that part
    /// does not run the forward pass again.
    let collectiveFrontier: [Output]
}

/// A run signature together with the ops that ran on the host: it fixes which feeds the compiled
/// part consumes.
struct CompiledFeedsKey: Hashable {
    var shape: RunShape
    var ranOnHost: [Int]
}

/// The plans and the compiled part's feed sets a session has worked out.
final class HostPlans {
    var plans: [RunShape: HostPlan] = [:]
    var consumed: [CompiledFeedsKey: (version: Int, outputs: Set<Output>)] = [:]
}

extension Session {
    /// Whether the session may compute `op` on the host rather than compile it (hostOutputs
    /// answers nil for every other op). Depends on the op alone.
    static func mayRunOnHost(_ op: KilnFrontend.Operation) -> Bool {
        (OpRegistry.def(op.type).map { $0.execution != .compiled } ?? false) || op.outputSpecs.first?.dtype == .string || followsHostOp(op)
            || (op.type == "Reshape" && op.inputs[1].op.type == "Const" && mayRunOnHost(op.inputs[0].op))
    }

    /// The host plan of a run signature, made on first use and again after the graph changed.
    /// Making it checks that every op the run computes may run on the CPU when it has no GPU
    /// kernel, as each run's host pass did before.
    func hostPlan(_ shape: RunShape, fetches: [Output], feeds: Set<Output>, targets: [KilnFrontend.Operation]) throws -> HostPlan {
        if let p = hostPlans.plans[shape], p.version == graph.version { return p }
        var candidates: [KilnFrontend.Operation] = []
        var mayChange = false
        let ops = Lowering.prune(fetches: fetches, feeds: feeds, targets: targets)
        for op in ops {
            if Session.sometimesAnsweredOps.contains(op.type) { mayChange = true }
            guard op.outputSpecs.indices.contains(where: { !feeds.contains(op.output($0)) }) || op.outputSpecs.isEmpty else { continue }
            // An op computed on the host runs on the CPU: its device must allow that.
            if !Placement.hasGPUKernel(op) { try placeOnDevices([op]) }
            if Session.mayRunOnHost(op) { candidates.append(op) }
        }
        let collectives = candidates.filter { Session.isCollective($0) }
        let before = collectives.isEmpty ? [] : Session.opsUpstreamOfNone(Set(collectives), in: ops)
        let p = HostPlan(version: graph.version, candidates: candidates, answers: try candidates.map(Session.hostAnswer),
                         computedInputs: candidates.map { $0.inputs.filter { $0.op.type != "Const" } },
                         outputCount: candidates.reduce(0) { $0 + $1.outputSpecs.count }, mayChange: mayChange,
                         mayRunAfter: Session.opsThatMayRunAfter(ops, candidates: Set(candidates)), collectives: collectives,
                         beforeCollectives: before,
                         collectiveFrontier: collectives.isEmpty ? [] : Session.frontier(after: before, in: ops, targets: targets))
        hostPlans.plans[shape] = p
        return p
    }
}

extension Session {
    /// The candidates whose consumers in the run (`ops`, in graph order) may all run after the
    /// compiled part too: summary ops and host kernels, which compute from their inputs alone.
    /// (A host op that feeds compiled code runs before it.)
    static func opsThatMayRunAfter(_ ops: [KilnFrontend.Operation], candidates: Set<KilnFrontend.Operation>) -> Set<KilnFrontend.Operation> {
        var consumers: [KilnFrontend.Operation: [KilnFrontend.Operation]] = [:]
        for op in ops {
            for i in op.inputs { consumers[i.op, default: []].append(op) }
            for c in op.controlInputs { consumers[c, default: []].append(op) }
        }
        var after = Set<KilnFrontend.Operation>()
        // Consumers come later in graph order: walking backwards decides them first.
        for op in ops.reversed() where candidates.contains(op) && computesFromInputsOnHost(op) {
            if (consumers[op] ?? []).allSatisfy(after.contains) { after.insert(op) }
        }
        return after
    }

    /// The ops of `ops` (in execution order) that depend on none of `ops`, directly or through
    /// a control edge.
    static func opsUpstreamOfNone(_ these: Set<KilnFrontend.Operation>, in ops: [KilnFrontend.Operation]) -> Set<KilnFrontend.Operation> {
        var downstream = these
        for op in ops where op.inputs.contains(where: { downstream.contains($0.op) }) || op.controlInputs.contains(where: downstream.contains) {
            downstream.insert(op)
        }
        return Set(ops.filter { !downstream.contains($0) })
    }

    /// The outputs of `before` ops (those upstream of no collective) that the ops running after
    /// the collectives read. Those ops are the rest of `ops`, plus the stateful `before` ops
    /// they reach (by a control edge, as minimize reaches batch norm's update ops, or by
    /// data) and the `targets` among `before`, which have not run yet; the pure values they
    /// read (not constants, not variables, which they read themselves) are the frontier.
    static func frontier(after before: Set<KilnFrontend.Operation>, in ops: [KilnFrontend.Operation],
                         targets: [KilnFrontend.Operation]) -> [Output] {
        var later = Set(ops.filter { !before.contains($0) && !Session.isCollective($0) })
        later.formUnion(targets.filter(before.contains))
        var cut: [Output] = []
        var seen = Set<Output>()
        for op in ops.reversed() where later.contains(op) {
            for c in op.controlInputs where before.contains(c) { later.insert(c) }
            for i in op.inputs where before.contains(i.op) {
                let def = OpRegistry.def(i.op.type)
                if def?.isVariable == true || i.isRef || i.op.type == "Const" { continue }
                if def?.isStateful == true { later.insert(i.op) } else if seen.insert(i).inserted { cut.append(i) }
            }
        }
        return cut
    }

    /// Ops the host computes from their input values alone, whatever those are (hostOutputs
    /// never leaves them to compiled code).
    static func computesFromInputsOnHost(_ op: KilnFrontend.Operation) -> Bool {
        switch OpRegistry.def(op.type)?.execution {
        case .host?, .session(.summary)?: return true
        default: return false
        }
    }

}

extension Session {
    /// The feeds compiled code gets once host ops have run: those it consumes, plus the caller's
    /// non-string feeds. What it consumes depends only on the signature and on which ops ran on
    /// the host, so it is worked out once for each (per graph version).
    func cachedCompiledFeeds(_ fetches: [Output], feeds all: [Output: Tensor], given: [Output: Tensor],
                             targets: [KilnFrontend.Operation], ranOnHost: Set<KilnFrontend.Operation>) throws -> [Output: Tensor] {
        let key = CompiledFeedsKey(shape: RunShape(fetches: fetches, targets: targets, feeds: all.keys), ranOnHost: ranOnHost.map(\.id).sorted())
        let consumed: Set<Output>
        if let c = hostPlans.consumed[key], c.version == graph.version { consumed = c.outputs } else {
            consumed = try consumedByCompiled(fetches, feeds: all, targets: targets, ranOnHost: ranOnHost)
            hostPlans.consumed[key] = (graph.version, consumed)
        }
        return all.filter { consumed.contains($0.key) || (given[$0.key] != nil && $0.value.dtype != .string) }
    }
}
