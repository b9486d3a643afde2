import KilnIR
import KilnKernels
import KilnFrontend

// What a session keys and keeps for each run signature: the signatures (RunShape before host ops,
// StepKey for an executable) and what a signature compiled to (CompiledRun, its Steps and device
// Segments).

/// The signature an executable is specialised on.
struct StepKey: Hashable {
    struct Feed: Hashable {
        var op: Int, index: Int
        var dtype: DType
        var shape: [Int]
    }
    /// (op id, output index) pairs, flattened.
    var fetches: [Int]
    var targets: [Int]
    var feeds: [Feed]
    /// Compiled for the debugger, counting non-finite outputs.
    var countsNonFinite = false
    /// The stage of each fetch of a staged run (-1: none), empty when the run is not staged.
    var stages: [Int] = []

    /// This signature with the batch feeds' leading dimension left open (-1): the key of every
    /// run a batch template may serve.
    func openBatch(_ batch: BatchFeeds) -> StepKey {
        var k = self
        for p in batch.positions { k.feeds[p].shape[0] = -1 }
        return k
    }
}

/// The feeds of a run whose leading dimension is its batch: those whose graph shape leaves it
/// unknown (a placeholder `[None, ...]`) and that are fed the same leading size n as the first
/// of them. Runs differing only in n may share an executable (`BatchTemplate`).
struct BatchFeeds {
    /// Positions in the run's feeds (in their sorted order).
    let positions: [Int]
    let n: Int

    init?(_ feeds: [(Output, TensorType)]) {
        var positions: [Int] = [], n: Int?
        for (k, (o, t)) in feeds.enumerated() {
            guard let dims = o.shape.dims, !dims.isEmpty, dims[0] == nil, t.rank == dims.count, t.shape[0] >= 1 else { continue }
            if n == nil { n = t.shape[0] }
            if t.shape[0] == n { positions.append(k) }
        }
        guard let n else { return nil }
        self.positions = positions
        self.n = n
    }

    /// `feeds` with the batch feeds' leading dimension `m`.
    func types(_ feeds: [(Output, TensorType)], batch m: Int) -> [(Output, TensorType)] {
        var out = feeds
        for p in positions { out[p].1.shape[0] = m }
        return out
    }
}

/// A run of a counting executable (Session.countsNonFinite): its step and its inputs as they were
/// before the run (feeds, then variables), so the debugger can recompute part of it.
struct CountedRun {
    let step: Step
    let inputs: [Tensor]
}

struct Step {
    var lowered: LoweredGraph
    var executable: any Executable
    /// The variables the executable writes (their device copies are stale after host code runs it).
    var writes: [KilnFrontend.Operation]
    /// The executable as a device executable (it then runs with the variables' residences).
    var device: (any DeviceExecutable)?
    /// The last results handed out; reused when the caller has let go of them, so steady-state
    /// runs do not fault in fresh pages for every result.
    let results = ResultBuffers()
}

final class ResultBuffers {
    var buffers: [TensorBuffer?] = []
}

/// What one run signature compiled to: one executable when the whole run is on the CPU (run
/// exactly as it was before devices existed), else one per device segment, run in order.
final class CompiledRun {
    let steps: [Step]
    /// The batch its one step runs at, when that step takes the batch at run time (compiled from
    /// a batch template), with the step's result types there (made once for every run of the
    /// signature); nil: as compiled.
    let batch: (n: Int, resultTypes: [TensorType])?
    /// Where each segment's feeds come from; nil for a single CPU step fed the run's feeds.
    let segments: [Segment]?
    /// Where each fetch comes from.
    let fetches: [(segment: Int, result: Int)]

    init(single step: Step, batch: Int? = nil) {
        steps = [step]
        segments = nil
        fetches = []
        self.batch = step.executable.batchRows == nil ? nil : batch.map { ($0, step.executable.resultTypes(batch: $0)) }
    }

    init(steps: [Step], segments: [Segment], fetches: [(segment: Int, result: Int)]) {
        self.steps = steps
        self.segments = segments
        self.fetches = fetches
        batch = nil
    }

    /// The same executable run at batch `n` (at most the one it was compiled for).
    func at(batch n: Int) -> CompiledRun { CompiledRun(single: steps[0], batch: n) }
}

/// One device's part of a run.
struct Segment {
    let device: PlacementDevice
    /// Where each of the segment's feeds comes from, in its executable's feed order.
    let sources: [ValueSource]
}

enum ValueSource {
    /// The run's feed `i` (in the run's feed order).
    case feed(Int)
    /// Result `index` of an earlier segment.
    case result(segment: Int, index: Int)
}

/// A run's signature before host ops are considered (feeds by identity only).
struct RunShape: Hashable {
    /// (op id, output index) pairs, flattened (one array a run, not one per fetch); feeds sorted.
    var fetches: [Int]
    var targets: [Int]
    var feeds: [Int]

    init(fetches: [Output], targets: [KilnFrontend.Operation], feeds: some Collection<Output>) {
        self.fetches = RunShape.flat(fetches)
        self.targets = targets.map(\.id)
        self.feeds = RunShape.flat(feeds.sorted { ($0.op.id, $0.index) < ($1.op.id, $1.index) })
    }

    static func flat(_ outputs: [Output]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(2 * outputs.count)
        for o in outputs { out.append(o.op.id); out.append(o.index) }
        return out
    }
}
