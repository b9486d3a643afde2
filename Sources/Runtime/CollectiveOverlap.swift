import Foundation
import KilnIR
import KilnFrontend

/// A round whose buckets are reduced one after another on a thread of their own while the
/// session computes the later gradients. Buckets start in order (every rank starts the same
/// ones in the same order, so the messages match); after a failed bucket the rest are skipped
/// (its deadline has passed: they would only wait out theirs), and finishing waits for every
/// started bucket, so no reduction outlives the step, failed or not.
public final class BackgroundAllreduce: @unchecked Sendable {
    private let buckets: [[Int]]
    private let reduce: (_ bucket: Int, [AllreduceRequest]) throws -> [Tensor]
    private let end: (_ succeeded: Bool) -> Void
    private let queue = DispatchQueue(label: "kiln.collectives.overlap")
    private let group = DispatchGroup()
    private let lock = NSLock()
    private var results: [Tensor?]
    private var failure: Error?
    /// Touched by the session's thread only.
    private var started = 0
    private var ended = false

    /// `reduce` reduces one bucket's tensors (in the bucket's order), on the round's thread;
    /// `end` hears once, on the session's thread, whether the whole round succeeded.
    public init(count: Int, buckets: [[Int]], reduce: @escaping (_ bucket: Int, [AllreduceRequest]) throws -> [Tensor],
                end: @escaping (_ succeeded: Bool) -> Void = { _ in }) {
        self.buckets = buckets
        self.reduce = reduce
        self.end = end
        results = Array(repeating: nil, count: count)
    }

    var bucketCount: Int { buckets.count }

    /// Starts the next bucket, whose tensors are `requests` (in the bucket's order).
    func start(_ requests: [AllreduceRequest]) {
        let b = started
        started += 1
        guard b < buckets.count else {
            lock.withLock { if failure == nil { failure = KilnError.internalError("bucket \(b) of an overlapped round of \(buckets.count) started") } }
            return
        }
        queue.async(group: group) { [self] in
            lock.lock()
            let failed = failure != nil
            lock.unlock()
            if failed { return }
            do {
                let out = try reduce(b, requests)
                guard out.count == requests.count else {
                    throw KilnError.internalError("the collective engine answered \(out.count) tensors for a bucket of \(requests.count)")
                }
                lock.lock()
                for (k, i) in buckets[b].enumerated() { results[i] = out[k] }
                lock.unlock()
            } catch {
                lock.lock()
                if failure == nil { failure = error }
                lock.unlock()
            }
        }
    }

    /// Waits for every bucket; the reduced tensors in the round's order, or the first failure.
    func finish() throws -> [Tensor] {
        group.wait()
        lock.lock()
        let failure = self.failure, results = self.results
        lock.unlock()
        let complete = failure == nil && started == buckets.count
        if !ended { end(complete) }
        ended = true
        if let failure { throw failure }
        guard complete, !results.contains(where: { $0 == nil }) else { throw KilnError.internalError("an overlapped collective round ended after \(started) of its \(buckets.count) buckets") }
        return results.map { $0! }
    }

    /// After the step itself failed: waits for the started buckets and drops the round.
    func abandon() {
        group.wait()
        if !ended { end(false) }
        ended = true
    }
}

/// How the compiled run before a step's collectives is split so early gradients can be reduced
/// while later ones are computed: one segment per stage (compileSegments), run in order.
struct CompiledStaging {
    /// The stage of each gradient the round reduces: its producer, and everything that needs,
    /// runs in that stage's segment or an earlier one. Everything else runs after the last.
    let stages: [Output: Int]
    /// Hears, after each segment, the fetched values it computed.
    let computed: ([(Output, Tensor)]) throws -> Void
}

/// A round's overlap: its collectives in production order, their specs, and the buckets in
/// the order they start.
struct OverlapLayout {
    let ordered: [KilnFrontend.Operation]
    let specs: [AllreduceSpec]
    let buckets: [[Int]]
}

extension Session {
    /// The stage of each op of a run (`order`: an execution order): the earliest stage of the
    /// staged fetches that need it, and after the last stage for ops that none needs. A producer
    /// is never of a later stage than its consumers.
    static func stageOfOps(_ order: [KilnFrontend.Operation], feeds: Set<Output>, fetchStages: [Output: Int]) -> [KilnFrontend.Operation: Int] {
        let rest = (fetchStages.values.max() ?? 0) + 1
        var stage: [KilnFrontend.Operation: Int] = [:]
        for (o, s) in fetchStages { stage[o.op] = min(stage[o.op] ?? s, s) }
        // Consumers come later in an execution order: walking backwards settles them first.
        for op in order.reversed() {
            let s = stage[op] ?? rest
            stage[op] = s
            for i in op.inputs where !feeds.contains(i) { stage[i.op] = min(stage[i.op] ?? s, s) }
            for c in op.controlInputs { stage[c] = min(stage[c] ?? s, s) }
        }
        return stage
    }

    /// The round's overlap when the engine wants one and it has something to overlap (two
    /// buckets or more), else nil. The collectives are put in the order the backward pass
    /// produces their inputs, the graph order of the producers (gradients are built from the
    /// last layer back): fixed by the graph, the same on every rank.
    static func overlapLayout(_ round: [KilnFrontend.Operation], engine: any CollectiveEngine) throws -> OverlapLayout? {
        let ordered = round.sorted { a, b in
            let x = a.inputs[0], y = b.inputs[0]
            return (x.op.id, x.index, a.id) < (y.op.id, y.index, b.id)
        }
        var specs: [AllreduceSpec] = []
        for op in ordered {
            // Buckets are formed before the values exist: from declared shapes only.
            guard let shape = op.inputs[0].shape.concrete else { return nil }
            specs.append(AllreduceSpec(name: op.name, dtype: op.inputs[0].dtype, shape: shape, reduceOp: reduceOp(op)))
        }
        guard let buckets = engine.overlapBuckets(specs), buckets.count > 1 else { return nil }
        guard buckets.flatMap({ $0 }).sorted() == Array(specs.indices), !buckets.contains(where: \.isEmpty) else {
            throw KilnError.internalError("the collective engine's overlap buckets \(buckets) do not split the round's \(specs.count) tensors")
        }
        // Each bucket starts once its last tensor is computed: that is their order.
        return OverlapLayout(ordered: ordered, specs: specs, buckets: buckets.sorted { $0.max()! < $1.max()! })
    }

    /// The collective round with its buckets reduced on the engine's thread as soon as the
    /// compiled stage computing their last gradient has run, and the rest of the step's
    /// compiled run going on meanwhile; the reduced gradients are fed once every bucket is done.
    /// The values are those of the round at once: the same tensors, summed by the same engine.
    func runOverlappedRound(_ layout: OverlapLayout, wanted: [Output], engine: any CollectiveEngine, feeds: inout [Output: Tensor]) throws {
        let reduction = try engine.allreduceOverlapped(layout.specs, buckets: layout.buckets)
        guard reduction.bucketCount == layout.buckets.count else {
            throw KilnError.internalError("the collective engine began a round of \(reduction.bucketCount) buckets for \(layout.buckets.count)")
        }
        var stages: [Output: Int] = [:]
        var positions: [Output: [Int]] = [:]
        for (b, bucket) in layout.buckets.enumerated() {
            for i in bucket {
                let x = layout.ordered[i].inputs[0]
                stages[x] = min(stages[x] ?? b, b)
                positions[x, default: []].append(i)
            }
        }
        var values = [Tensor?](repeating: nil, count: layout.specs.count)
        var next = 0
        let offer = { (computed: [(Output, Tensor)]) throws in
            for (o, t) in computed { for i in positions[o] ?? [] where values[i] == nil { values[i] = t } }
            while next < layout.buckets.count, layout.buckets[next].allSatisfy({ values[$0] != nil }) {
                reduction.start(try layout.buckets[next].map { i in
                    let t = values[i]!
                    guard t.shape == layout.specs[i].shape else {
                        throw KilnError.internalError("'\(layout.specs[i].name)': its input has shape \(t.shape), not the declared \(layout.specs[i].shape) its bucket was formed from")
                    }
                    return Session.allreduceRequest(layout.ordered[i], t)
                })
                next += 1
            }
        }
        do {
            try offer(positions.keys.compactMap { o in feeds[o].map { (o, $0) } })
            if !wanted.isEmpty {
                let results = try runLocked(wanted, feeds: feeds, targets: [], staging: CompiledStaging(stages: stages, computed: offer))
                for (o, t) in zip(wanted, results) { feeds[o] = t }
                // A run that was not split (its gradients fed, say) hands its values over here.
                try offer(Array(zip(wanted, results)))
            }
        } catch {
            // The started buckets end (or time out) before the error leaves the step.
            reduction.abandon()
            throw error
        }
        for (op, t) in zip(layout.ordered, try reduction.finish()) { feeds[op.output()] = t }
    }
}
