import Foundation
import KilnIR
import KilnPasses
import KilnCPU
import KilnKernels
import KilnFrontend

/// Runs a graph: compiles each distinct (fetches, feeds, targets, feed types) once into one native
/// executable, keeps variables, and calls the executable's single entry per run.
public final class Session: @unchecked Sendable {
    public let graph: Graph
    public let config: SessionConfig
    /// Variable values by variable op (internal: the host ops in SessionHostOps.swift read it).
    var variables: [KilnFrontend.Operation: Tensor] = [:]
    var cache: ExecutableCache
    /// Run signatures known to involve no host op and no string: they skip the host pass.
    private var hostFree = Set<RunShape>()
    /// The host pass's plans of the other signatures (SessionHostPlan.swift).
    let hostPlans = HostPlans()
    private var closed = false
    /// Held for the whole of a run, except while a host op waits or a host kernel computes from
    /// its inputs alone (see `withoutLock`) and while compiled CPU code runs (see `execute`).
    private let lock = NSLock()
    /// Held while compiled code that reads or writes variables runs, and by everything else that
    /// reads, replaces or drops variable values: such code runs with `lock` let go (so a queue
    /// runner's host work proceeds beside a training step) and keeps raw pointers to the values.
    /// Taken with `lock` held or with no lock at all, never the other way round (see `execute`).
    private let executionLock = NSLock()
    /// Resources ops make (queues, readers), by shared name or op, created on first use.
    private var resources: [String: AnyObject] = [:]
    /// The same by op id: the input pipeline looks its queues up several times a record.
    private var resourceOfOp: [Int: AnyObject] = [:]
    private var handleOfOp: [Int: Tensor] = [:]
    /// Numbers resources as TensorFlow names unshared ones ("_0_input_producer").
    private var resourceCount = 0
    let debugLevel: Int
    /// Seeds unseeded random ops, so they differ between sessions.
    let sessionSeed = UInt64.random(in: 1...UInt64.max)
    /// How many times each host-computed random op (a shuffle of strings) has drawn.
    var hostDraws: [KilnFrontend.Operation: UInt64] = [:]
    /// How many executables this session has compiled (each new signature compiles once).
    public private(set) var compileCount = 0
    /// Of those, the executables whose machine code came wholly from the compiled-code cache.
    private var codeCacheHits = 0
    private var lastStep: Step?
    /// How many device segments the most recent compiled run had (1: one executable).
    private(set) var lastRunSegmentCount = 0
    /// Compiles each run signature's IR function (SessionConfig.backend, else KILN_BACKEND).
    let backend: any Backend
    /// The debugger's hooks (Debugger/DebugSession.swift): runs on `countingThread` compile (and
    /// cache) executables that count each kernel's non-finite outputs, and the last such CPU run
    /// keeps what it was given. Other threads' runs (queue runners) are not affected.
    var countingThread: Thread?
    var countsNonFinite: Bool { countingThread.map { $0 === Thread.current } ?? false }
    var lastCountedRun: CountedRun?
    /// The CPU and the GPUs ops can be placed on, with their backends.
    let devices: SessionDevices
    /// Where each op of the graph runs, placed again when the graph changes.
    private var placement: (version: Int, placement: Placement)?
    /// Where each variable's current value is, once a device run has touched it (empty while
    /// everything runs on the CPU: host bytes are then always current).
    private var residences: [KilnFrontend.Operation: VariableResidence] = [:]
    /// Ops whose placement was logged (logDevicePlacement logs each node once).
    private var loggedPlacement = Set<Int>()

    /// The executable behind the most recent run that executed compiled code.
    public var lastRunSummary: RunSummary? {
        lock.lock()
        defer { lock.unlock() }
        return lastStep.map { RunSummary($0.executable) }
    }

    /// The executable cache's size and what it has done (compiles, hits, evictions).
    public var executableCache: ExecutableCacheStatistics {
        lock.lock()
        defer { lock.unlock() }
        return ExecutableCacheStatistics(cached: cache.count, capacity: cache.capacity, compiles: compileCount, hits: cache.hits, evictions: cache.evictions,
                                         codeCacheHits: codeCacheHits, batchReuses: cache.batchReuses)
    }

    public init(graph: Graph, config: SessionConfig = SessionConfig()) throws {
        guard config.executableCacheCapacity >= 1 else {
            throw KilnError.invalidArgument("executableCacheCapacity must be at least 1, got \(config.executableCacheCapacity)")
        }
        self.graph = graph
        self.config = config
        self.debugLevel = config.debugLevel ?? Debug.level
        let backend = try (config.backend ?? BackendKind.fromEnvironment()).make()
        self.backend = backend
        self.devices = try SessionDevices(config: config, cpuBackend: backend)
        self.cache = ExecutableCache(capacity: config.executableCacheCapacity)
    }

    /// A session dropped without close() still reports its kernel profile at KILN_DEBUG=2.
    deinit { if !closed { reportProfiles() } }

    private func reportProfiles() {
        if debugLevel >= 2 { for step in cache.steps { Debug.log(KernelProfile.report(step.executable)) } }
    }

    /// Releases executables and variables; later runs fail.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        // A run's compiled code may hold its variables' bytes right now.
        executionLock.lock()
        defer { executionLock.unlock() }
        reportProfiles()
        closed = true
        cache.removeAll()
        variables.removeAll()
        residences.removeAll()
        // Runs waiting in a queue (or a reader) end with `cancelled`, as TensorFlow's do.
        for r in resources.values { (r as? CancellableResource)?.cancel() }
        resources.removeAll()
        resourceOfOp.removeAll()
        handleOfOp.removeAll()
    }

    // MARK: resources

    /// The resource `op` makes (a queue, a reader), made by `make` (given the name TensorFlow gives
    /// it: the op's shared_name, else "_<n>_<op name>") the first time a run needs it. Ops with
    /// the same shared_name share one.
    /// `validate` checks a resource another op made (by the same shared_name) against what `op`
    /// asks for; it runs once, before the resource becomes `op`'s, so later runs (an input
    /// pipeline's per-record runs find their queue and reader) only look it up.
    func resource<T: AnyObject>(of op: KilnFrontend.Operation, make: (_ name: String) throws -> T,
                                validate: (T) throws -> Void = { _ in }) throws -> T {
        if let r = resourceOfOp[op.id] as? T { return r }
        let shared = op.attrs["shared_name"]?.string ?? ""
        let key = shared.isEmpty ? "op:" + op.name : "shared:" + shared
        if let existing = resources[key] {
            guard let r = existing as? T else {
                throw KilnError.invalidArgument("Resource '\(shared)' of '\(op.name)' (op: \(op.type)) is a \(type(of: existing)), not a \(T.self)")
            }
            try validate(r)
            resourceOfOp[op.id] = r
            return r
        }
        let r = try make(shared.isEmpty ? "_\(resourceCount)_\(op.name)" : shared)
        resourceCount += 1
        resources[key] = r
        resourceOfOp[op.id] = r
        return r
    }

    /// The string scalar naming the resource `op` makes: its handle output, the same tensor every run.
    func handle(of op: KilnFrontend.Operation, name: () throws -> String) rethrows -> Tensor {
        if let t = handleOfOp[op.id] { return t }
        let t = Tensor(try name())
        handleOfOp[op.id] = t
        return t
    }

    /// Runs `body` (a host op that waits: a dequeue from an empty queue; or a host kernel: a
    /// parse, a decode) with the session's lock let go, so other threads' runs (the enqueues that
    /// end the wait, a second reader thread's record, a training step) proceed meanwhile. Called
    /// only inside a run, which holds the lock; the run's own state is local to it. A session
    /// closed during the wait ends the run.
    func withoutLock(_ body: () throws -> Void) throws {
        lock.unlock()
        var failure: Error?
        do { try body() } catch { failure = error }
        lock.lock()
        if let failure { throw failure }
        if closed { throw KilnError(.cancelled, "Session has been closed.") }
    }

    // MARK: variables

    /// The current value of a variable (its VariableV2 or VarHandleOp op), or nil before it is initialised.
    public func value(of variable: KilnFrontend.Operation) -> Tensor? {
        lock.lock()
        defer { lock.unlock() }
        return withVariablesHeld { () -> Tensor? in
            do {
                try syncToHost(variable)
            } catch {
                // The value is on a device that cannot hand it back: there is no value to give.
                Debug.log("cannot read variable '\(variable.name)' back from its device: \(error)")
                return nil
            }
            return variables[variable]
        }
    }

    /// Runs `body` (which reads, replaces or drops variable values; the lock is held) once no
    /// compiled code uses the variables.
    func withVariablesHeld<R>(_ body: () throws -> R) rethrows -> R {
        executionLock.lock()
        defer { executionLock.unlock() }
        return try body()
    }

    /// Makes the host bytes of `variable` current (before the host, the CPU or a saver reads them).
    func syncToHost(_ variable: KilnFrontend.Operation) throws {
        guard let r = residences[variable], !r.hostCurrent, variables[variable] != nil else { return }
        try variables[variable]!.withUnsafeMutableBytes { try r.syncToHost($0.baseAddress!, bytes: $0.count) }
    }

    public func value(of variable: Variable) -> Tensor? { value(of: variable.variableOp) }

    /// Sets a variable's host value from a host op of this run (the lock is held); a device copy is stale then.
    func writeHostValue(_ t: Tensor, of variable: KilnFrontend.Operation) {
        variables[variable] = t
        residences[variable]?.hostWritten()
    }

    /// Sets a variable's value directly (restoring a checkpoint); dtype and shape must match its
    /// declaration.
    public func setValue(_ t: Tensor, of variable: KilnFrontend.Operation) throws {
        let declared = variable.outputSpecs[0]
        guard t.dtype == declared.dtype, Shape(t.shape).isCompatible(with: declared.shape) else {
            throw KilnError.invalidArgument("cannot set variable '\(variable.name)' of \(declared.dtype)\(declared.shape) to a \(t.dtype) tensor of shape \(Shape(t.shape))")
        }
        lock.lock()
        defer { lock.unlock() }
        if closed { throw KilnError(.cancelled, "Attempted to use a closed Session.") }
        var copy = try Tensor(zeros: t.dtype, shape: t.shape)
        try copy.withUnsafeMutableBytes { dst in t.withUnsafeBytes { dst.copyMemory(from: $0) } }
        withVariablesHeld {
            variables[variable] = t.dtype == .string ? t : copy
            residences[variable]?.hostWritten()
        }
    }

    public func setValue(_ t: Tensor, of variable: Variable) throws { try setValue(t, of: variable.variableOp) }

    /// Whether a variable has a value in this session.
    public func isInitialized(_ variable: Variable) -> Bool { value(of: variable) != nil }

    // MARK: run

    public func run(_ fetch: some OutputConvertible, feeds: [Output: Tensor] = [:]) throws -> Tensor {
        try run([fetch.output], feeds: feeds, targets: [])[0]
    }

    public func run(_ target: KilnFrontend.Operation, feeds: [Output: Tensor] = [:]) throws {
        _ = try run([Output](), feeds: feeds, targets: [target])
    }

    public func run(targets: [KilnFrontend.Operation], feeds: [Output: Tensor] = [:]) throws {
        _ = try run([Output](), feeds: feeds, targets: targets)
    }

    /// TensorFlow's `Session.run(fetches, feed_dict)` with explicit targets.
    public func run(_ fetches: [Output], feeds: [Output: Tensor] = [:], targets: [KilnFrontend.Operation] = []) throws -> [Tensor] {
        lock.lock()
        defer { lock.unlock() }
        if closed { throw KilnError(.cancelled, "Attempted to use a closed Session.") }
        return try runLocked(fetches, feeds: feeds, targets: targets)
    }

    /// `staging` (a collective round that overlaps its allreduces): the compiled part is split
    /// into its stages (CollectiveOverlap.swift).
    func runLocked(_ fetches: [Output], feeds given: [Output: Tensor], targets: [KilnFrontend.Operation],
                   staging: CompiledStaging? = nil) throws -> [Tensor] {
        var feeds = given
        // Ops the session computes on the host (data-dependent shapes, strings, checkpoint I/O,
        // questions about the variable store) run first, in graph order, and their outputs are
        // fed to the compiled rest. Those that consume values compiled code computes and feed no
        // compiled op (summaries of the step's loss) run after it instead, from its results: one
        // run, one forward pass, one dequeue, as TensorFlow's `run([train, merged])`. (Stateful
        // ops upstream of another host op's inputs run in the extra run that computes those
        // inputs too.) Signatures without any host op skip this pass next time.
        // Few ops per run: a list, searched by identity, costs less than a set.
        var ranOnHost: [KilnFrontend.Operation] = []
        var after: [KilnFrontend.Operation] = []
        var afterAnswers: [HostAnswer] = []
        let shape = RunShape(fetches: fetches, targets: targets, feeds: given.keys)
        if !hostFree.contains(shape) {
            let plan = try hostPlan(shape, fetches: fetches, feeds: Set(given.keys), targets: targets)
            feeds.reserveCapacity(given.count + plan.outputCount)
            for (k, op) in plan.candidates.enumerated() {
                if case .collective = plan.answers[k] {
                    // Between the compiled parts of one step: gradients in, reduced gradients out.
                    // The first collective's round answers all of them; the rest are fed by then.
                    if feeds[op.output()] == nil { try runCollectiveRound(plan, fetches: fetches, feeds: &feeds) }
                    ranOnHost.append(op)
                    continue
                }
                if plan.computedInputs[k].contains(where: { feeds[$0] == nil }) {
                    if plan.mayRunAfter.contains(op) {
                        after.append(op)
                        afterAnswers.append(plan.answers[k])
                        continue
                    }
                    if SummaryOps.types.contains(op.type) {
                        // Computing its inputs in a run of their own would run the step twice.
                        throw KilnError.unimplemented("'\(op.name)' (op: \(op.type)) summarizes values compiled code computes in this run, and a compiled op depends on it (fetches [\(fetches.map(\.name).joined(separator: ", "))], targets [\(targets.map(\.name).joined(separator: ", "))]); Kiln runs such summaries after the compiled part: run that op in a separate call")
                    }
                }
                guard let outputs = try hostOutputs(of: op, answer: plan.answers[k], feeds: feeds) else { continue }
                for (i, t) in outputs.enumerated() { feeds[op.output(i)] = t }
                ranOnHost.append(op)
            }
            if ranOnHost.isEmpty && after.isEmpty && !plan.mayChange && !given.values.contains(where: { $0.dtype == .string }) { hostFree.insert(shape) }
        }
        // The caller's feeds; what host ops computed is theirs by construction.
        for (o, t) in given {
            guard o.graph === graph else { throw KilnError.invalidArgument("Cannot feed '\(o.name)': it belongs to another graph") }
            if t.dtype != o.dtype {
                throw KilnError.invalidArgument("Cannot feed value of dtype \(t.dtype) for Tensor '\(o.name)', which has dtype \(o.dtype)")
            }
            if !o.shape.admits(t.shape) {
                throw KilnError.invalidArgument("Cannot feed value of shape \(Shape(t.shape)) for Tensor '\(o.name)', which has shape \(o.shape)")
            }
            if t.byteCount > config.memoryLimit {
                throw KilnError.resourceExhausted("Cannot feed value of shape \(Shape(t.shape)) (\(t.byteCount) bytes) for Tensor '\(o.name)': above the memory limit of \(config.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
            }
        }
        // A fetched tensor that is fed (or was computed on the host) is answered directly; this
        // is how string results come back, since compiled code does not handle strings.
        let runsAfter = Set(after)
        let computed = fetches.filter { feeds[$0] == nil && !runsAfter.contains($0.op) }
        let compiledTargets = targets.filter { t in !ranOnHost.contains { $0 === t } && !runsAfter.contains(t) }
        // The inputs of the ops that run after compiled code: extra results of the compiled run.
        var afterInputs: [Output] = []
        for op in after {
            for i in op.inputs where feeds[i] == nil && i.op.type != "Const" && !runsAfter.contains(i.op) && !computed.contains(i) && !afterInputs.contains(i) {
                afterInputs.append(i)
            }
        }
        var values: [Output: Tensor] = [:]
        if !computed.isEmpty || !afterInputs.isEmpty || !compiledTargets.isEmpty {
            let results = try runCompiled(computed + afterInputs, feeds: feeds, given: given, targets: compiledTargets, ranOnHost: Set(ranOnHost),
                                          staging: staging)
            for (f, t) in zip(computed + afterInputs, results) where values[f] == nil { values[f] = t }
            // Results past the fetches are checks nothing reads (see Lowering.lower).
            if after.isEmpty && computed.count == fetches.count { return results.count == fetches.count ? results : Array(results.prefix(fetches.count)) }
        }
        if !after.isEmpty {
            for i in computed + afterInputs { feeds[i] = values[i] }
            for (op, answer) in zip(after, afterAnswers) {
                // Every input is known now: hostInputs needs no run of its own.
                guard let outputs = try hostOutputs(of: op, answer: answer, feeds: feeds) else {
                    throw KilnError.internalError("'\(op.name)' (op: \(op.type)) was left to run on the host after compiled code, but the host did not compute it")
                }
                for (k, t) in outputs.enumerated() { feeds[op.output(k)] = t }
            }
        }
        for f in fetches where feeds[f] != nil { values[f] = feeds[f] }
        return fetches.map { values[$0]! }
    }

    /// Compiles (once per signature) and runs the part of the graph that is not computed on the
    /// host. When strings or host ops are involved, only feeds that compiled ops consume are
    /// passed, plus the caller's non-string feeds, so host-side strings never reach generated code.
    private func runCompiled(_ fetches: [Output], feeds all: [Output: Tensor], given: [Output: Tensor],
                             targets: [KilnFrontend.Operation], ranOnHost: Set<KilnFrontend.Operation>,
                             staging: CompiledStaging? = nil) throws -> [Tensor] {
        let feeds = ranOnHost.isEmpty && !all.values.contains(where: { $0.dtype == .string })
            ? all   // the common case: no strings anywhere, nothing ran on the host
            : try cachedCompiledFeeds(fetches, feeds: all, given: given, targets: targets, ranOnHost: ranOnHost)
        let orderedFeeds = feeds.sorted { ($0.key.op.id, $0.key.index) < ($1.key.op.id, $1.key.index) }
        let stages = staging.map { s in Dictionary(fetches.compactMap { f in s.stages[f].map { (f, $0) } }, uniquingKeysWith: min) }
            .flatMap { $0.isEmpty ? nil : $0 }
        let key = StepKey(fetches: RunShape.flat(fetches), targets: targets.map(\.id),
                          feeds: orderedFeeds.map { StepKey.Feed(op: $0.key.op.id, index: $0.key.index, dtype: $0.value.dtype, shape: $0.value.shape) },
                          countsNonFinite: countsNonFinite, stages: stages.map { s in fetches.map { s[$0] ?? -1 } } ?? [])
        let step: CompiledRun
        if let s = cache.lookup(key) { step = s } else {
            let types = orderedFeeds.map { ($0.key, TensorType($0.value.dtype, $0.value.shape)) }
            // Runs differing only in their batch share an executable where they can.
            let batch = stages == nil && !countsNonFinite && config.batchTemplates ? BatchFeeds(types) : nil
            let evicted: CompiledRun?
            if let batch, let reuse = try templateRun(for: key, batch: batch, fetches: fetches, feeds: types, targets: targets) {
                step = reuse
                evicted = cache.insertReuse(step, for: key)
            } else {
                step = try compile(fetches: fetches, feeds: types, targets: targets, stages: stages, batch: batch)
                evicted = cache.insert(step, for: key)
                if let batch, step.batch != nil { cache.addTemplate(key, open: key.openBatch(batch)) }
            }
            if debugLevel >= 1 {
                if let evicted {
                    Debug.log("evicted \(evicted.steps.map(\.executable.function.name).joined(separator: ", ")), the least recently used executable (capacity \(cache.capacity))")
                    if debugLevel >= 2 { for e in evicted.steps { Debug.log(KernelProfile.report(e.executable)) } }
                }
                Debug.log("  executable cache: \(cache.count) of \(cache.capacity) cached, \(compileCount) compiled, \(cache.hits) hits, \(cache.evictions) evicted")
            }
        }
        lastStep = step.steps.last
        lastRunSegmentCount = step.segments?.count ?? 1
        guard let staging, step.segments != nil else { return try execute(step, feeds: orderedFeeds.map(\.value)) }
        // Hands each fetch to the round as soon as the segment computing it has run.
        return try execute(step, feeds: orderedFeeds.map(\.value)) { segment, results in
            try staging.computed(step.fetches.indices.filter { step.fetches[$0].segment == segment }.map { (fetches[$0], results[step.fetches[$0].result]) })
        }
    }

    /// The values compiled code consumes once host ops have run (their outputs and the feeds in
    /// `all`), after checking that no compiled op handles strings or depends on a host op through
    /// a control edge.
    func consumedByCompiled(_ fetches: [Output], feeds all: [Output: Tensor],
                            targets: [KilnFrontend.Operation], ranOnHost: Set<KilnFrontend.Operation>) throws -> Set<Output> {
        let ops = Lowering.prune(fetches: fetches, feeds: Set(all.keys), targets: targets)
        var consumed = Set<Output>(fetches)
        for op in ops {
            if op.type == "Placeholder" {
                // Lowering reports an unfed placeholder; a string one is reported here, before
                // its consumers fail the string checks below.
                let o = op.output()
                if o.dtype == .string { throw KilnError.invalidArgument("You must feed a value for placeholder tensor '\(op.name)' with dtype \(o.dtype) and shape \(o.shape)") }
                continue
            }
            if ranOnHost.contains(op) {
                // Reached only through a control edge: it already ran, but lowering would try
                // to compile it again.
                throw KilnError.unimplemented("'\(op.name)' (op: \(op.type)) runs on the host before compiled code, but a compiled op depends on it through a control edge (fetches [\(fetches.map(\.name).joined(separator: ", "))], targets [\(targets.map(\.name).joined(separator: ", "))]); run it in a separate call")
            }
            for i in op.inputs { consumed.insert(i) }
            if let s = op.inputs.first(where: { $0.dtype == .string }) {
                throw KilnError.unimplemented("'\(op.name)' (op: \(op.type)) consumes the string tensor '\(s.name)', and compiled code does not handle strings (Kiln computes strings on the host, in Const, Identity, PlaceholderWithDefault and checkpoint ops)")
            }
            if let s = op.outputs.first(where: { $0.dtype == .string && all[$0] == nil }) {
                throw KilnError.unimplemented("'\(op.name)' (op: \(op.type)) computes the string tensor '\(s.name)', and compiled code does not handle strings (Kiln computes strings on the host, in Const, Identity, PlaceholderWithDefault and checkpoint ops)")
            }
        }
        return consumed
    }

    /// Runs a run signature's executables: the one step of a run on the CPU alone, or each
    /// device segment in order, feeding values computed by earlier segments to later ones.
    /// `afterSegment` gets each segment's index and results once it has run.
    private func execute(_ run: CompiledRun, feeds: [Tensor], afterSegment: ((Int, [Tensor]) throws -> Void)? = nil) throws -> [Tensor] {
        guard let segments = run.segments else { return try execute(run.steps[0], feeds: feeds, batch: run.batch) }
        var results: [[Tensor]] = []
        results.reserveCapacity(segments.count)
        for (k, seg) in segments.enumerated() {
            let inputs = seg.sources.map { source -> Tensor in
                switch source {
                case .feed(let i): return feeds[i]
                case .result(let s, let r): return results[s][r]
                }
            }
            results.append(try execute(run.steps[k], feeds: inputs))
            try afterSegment?(k, results[k])
        }
        return run.fetches.map { results[$0.segment][$0.result] }
    }

    /// Runs one executable. Variables it uses are brought to where it runs first: the host bytes
    /// for CPU code, the device's copy (through VariableResidence) for a device executable.
    /// Compiled CPU code runs with the session's lock let go: other threads' runs (a queue
    /// runner reading, parsing and enqueueing the next batch) proceed meanwhile instead of
    /// waiting for the whole training step. Code that uses variables holds `executionLock`
    /// while it runs, so runs touching variables stay one at a time, as before.
    /// `batch`: the batch to run a step that takes it at run time, with its result types there.
    private func execute(_ step: Step, feeds: [Tensor], batch: (n: Int, resultTypes: [TensorType])? = nil) throws -> [Tensor] {
        let exe = step.executable
        let device = step.device
        let n = step.lowered.feeds.count + step.lowered.variables.count
        var holdsVariables = !step.lowered.variables.isEmpty
        if holdsVariables { executionLock.lock() }
        defer { if holdsVariables { executionLock.unlock() } }
        // A device run, the debugger's counting run and a session whose variables live on a
        // device keep the lock (they touch the residences and what the debugger keeps), as does
        // kernel profiling (close and lastRunSummary read the profile) and a run that creates
        // variables (a failure drops them again, which needs both locks).
        let mayUnlock = device == nil && !countsNonFinite && residences.isEmpty && debugLevel < 2
        return try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(n, 1)) { inputs in
            for (k, t) in feeds.enumerated() { inputs[k] = t.buffer.pointer }
            var created: [KilnFrontend.Operation] = []
            var snapshot: [Tensor] = []
            let counting = countsNonFinite
            for (k, v) in step.lowered.variables.enumerated() {
                if variables[v] == nil {
                    created.append(v)
                    if step.lowered.readBeforeWrite.contains(v) && !step.lowered.autoInitialized.contains(v) {
                        throw KilnError.failedPrecondition("Attempting to use uninitialized value \(v.name)")
                    }
                    let t = exe.function.params[feeds.count + k].type
                    variables[v] = try Tensor(zeros: t.dtype, shape: t.shape)
                }
                if !residences.isEmpty || device != nil { try prepare(v, for: device) }
                // Held by the debugger, the value before the run stays as it is: the run gets a copy.
                if counting { snapshot.append(variables[v]!) }
                inputs[feeds.count + k] = try variables[v]!.withUnsafeMutableBytes { $0.baseAddress }
            }
            if counting && device == nil { lastCountedRun = CountedRun(step: step, inputs: feeds + snapshot) }
            let pool = step.results
            let resultTypes = batch?.resultTypes ?? exe.resultTypes
            if pool.buffers.count != resultTypes.count { pool.buffers = Array(repeating: nil, count: resultTypes.count) }
            var results: [Tensor] = []
            results.reserveCapacity(resultTypes.count)
            for (k, t) in resultTypes.enumerated() {
                // Reuse last run's buffer when nobody else holds it (and it is not also result j < k)
                // and it is large enough (a run of a larger batch than the last).
                if !isKnownUniquelyReferenced(&pool.buffers[k]) || pool.buffers[k]!.byteCount < t.byteCount {
                    pool.buffers[k] = try TensorBuffer(byteCount: t.byteCount)
                }
                results.append(try Tensor(dtype: t.dtype, shape: t.shape, buffer: pool.buffers[k]!))
            }
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(results.count, 1)) { outputs in
                for (k, r) in results.enumerated() { outputs[k] = r.buffer.pointer }
                do {
                    if let device {
                        let rs = [VariableResidence?](repeating: nil, count: feeds.count) + step.lowered.variables.map { residences[$0] }
                        try withExtendedLifetime(feeds) { try device.run(inputs: inputs.baseAddress, outputs: outputs.baseAddress, residences: rs) }
                    } else if mayUnlock && created.isEmpty {
                        lock.unlock()
                        var failure: Error?
                        do { try withExtendedLifetime(feeds) { try run(exe, inputs.baseAddress, outputs.baseAddress, batch?.n) } } catch { failure = error }
                        // Never wait for `lock` while holding executionLock (the lock order).
                        if holdsVariables { executionLock.unlock() }
                        holdsVariables = false
                        lock.lock()
                        if let failure { throw failure }
                    } else {
                        try withExtendedLifetime(feeds) { try run(exe, inputs.baseAddress, outputs.baseAddress, batch?.n) }
                        // Host code wrote these: a device copy of them is stale now.
                        if !residences.isEmpty { for v in step.writes { residences[v]?.hostWritten() } }
                    }
                } catch {
                    // A failed check stops the run before any later kernel: a variable this run
                    // would have initialised is still uninitialised, as in TensorFlow.
                    for v in created { variables[v] = nil; residences[v] = nil }
                    throw error
                }
            }
            return results
        }
    }

    /// Runs `exe` as compiled, or at `batch` (an executable that takes the batch at run time).
    private func run(_ exe: any Executable, _ inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                     _ outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ batch: Int?) throws {
        if let batch { try exe.run(inputs: inputs, outputs: outputs, batch: batch) } else { try exe.run(inputs: inputs, outputs: outputs) }
    }

    /// Brings variable `v` to where the next executable runs: the host bytes for host code; for
    /// a device executable, a residence (made on first use), its host bytes made current first
    /// when the copy it has belongs to another device.
    private func prepare(_ v: KilnFrontend.Operation, for device: (any DeviceExecutable)?) throws {
        guard let device else { return try syncToHost(v) }
        guard let r = residences[v] else {
            residences[v] = VariableResidence()
            return
        }
        if let copy = r.deviceCopy, copy.deviceName != device.deviceName {
            try syncToHost(v)
            r.hostWritten()
            r.deviceCopy = nil
        }
    }

    // MARK: placement

    /// The placement of the graph as it is now (placed again after it changed).
    private func currentPlacement() -> Placement {
        if let p = placement, p.version == graph.version { return p.placement }
        let p = Placement(graph: graph, devices: devices.devices, allowSoftPlacement: config.allowSoftPlacement)
        placement = (graph.version, p)
        return p
    }

    /// The device of each of `ops` (throwing the first that cannot be placed), logged once per
    /// node with logDevicePlacement.
    @discardableResult
    func placeOnDevices(_ ops: [KilnFrontend.Operation]) throws -> [PlacementDevice] {
        let p = currentPlacement()
        let placed = try ops.map { try p.device(of: $0) }
        if config.logDevicePlacement {
            for (op, d) in zip(ops, placed) where loggedPlacement.insert(op.id).inserted {
                FileHandle.standardError.write(Data("\(op.name): (\(op.type)): \(d.name)\n".utf8))
            }
        }
        return placed
    }

    // MARK: compile

    /// Compiles a run signature: one executable when every op runs on the CPU, else one per
    /// device segment; `stages` (the stage of some fetches) splits segments by stage too.
    private func compile(fetches: [Output], feeds: [(Output, TensorType)], targets: [KilnFrontend.Operation],
                         stages: [Output: Int]? = nil, batch: BatchFeeds? = nil) throws -> CompiledRun {
        let start = DispatchTime.now()
        for f in fetches where f.graph !== graph { throw KilnError.invalidArgument("Fetch '\(f.name)' belongs to another graph") }
        for t in targets where t.graph !== graph { throw KilnError.invalidArgument("Target '\(t.name)' belongs to another graph") }
        let ops = Lowering.prune(fetches: fetches, feeds: Set(feeds.map(\.0)), targets: targets)
        let placed = try placeOnDevices(ops)
        if placed.allSatisfy(\.isCPU) && stages == nil {
            return CompiledRun(single: try compileStep(fetches: fetches, feeds: feeds, targets: targets, within: nil, opCount: ops.count,
                                                       device: nil, start: start, batch: batch), batch: batch?.n)
        }
        return try compileSegments(fetches: fetches, feeds: feeds, ops: ops, placed: placed, stages: stages)
    }

    /// Splits the run's ops into device segments and compiles each. An op joins the first
    /// segment of its device that comes no earlier than its same-device producers and after
    /// every segment holding a producer on another device (data and control edges), so the
    /// segments run in order and ops of one device that can run together share an executable.
    /// A value crossing segments is a result of its producer's segment and a feed of its
    /// consumer's (the copy between devices). A variable is no value: every segment using it
    /// takes it as a parameter (its residence moves it between devices when that is needed).
    /// With `stages`, a segment holds one device's ops of one stage (Session.stageOfOps), the
    /// stages in order.
    private func compileSegments(fetches: [Output], feeds: [(Output, TensorType)], ops: [KilnFrontend.Operation],
                                 placed: [PlacementDevice], stages: [Output: Int]? = nil) throws -> CompiledRun {
        let feedSet = Set(feeds.map(\.0))
        var feedIndex: [Output: Int] = [:]
        for (k, f) in feeds.enumerated() { feedIndex[f.0] = k }
        var deviceOf: [KilnFrontend.Operation: PlacementDevice] = [:]
        for (op, d) in zip(ops, placed) { deviceOf[op] = d }
        let isVariable = { (op: KilnFrontend.Operation) in OpRegistry.def(op.type)?.isVariable == true }
        var segmentOf: [KilnFrontend.Operation: Int] = [:]
        var segDevice: [PlacementDevice] = [], segOps: [[KilnFrontend.Operation]] = [], segStage: [Int] = []
        var order = try Lowering.executionOrder(ops, feeds: feedSet)
        let stageOf = stages.map { Session.stageOfOps(order, feeds: feedSet, fetchStages: $0) } ?? [:]
        // Producers are never of a later stage than their consumers: still an execution order.
        if !stageOf.isEmpty { order = order.enumerated().sorted { (stageOf[$0.element]!, $0.offset) < (stageOf[$1.element]!, $1.offset) }.map(\.element) }
        for op in order {
            let d = deviceOf[op]!, stage = stageOf[op] ?? 0
            var earliest = 0
            for p in op.inputs.filter({ !feedSet.contains($0) }).map(\.op) + op.controlInputs {
                guard let s = segmentOf[p], !isVariable(p) else { continue }
                earliest = max(earliest, segDevice[s] == d && segStage[s] == stage ? s : s + 1)
            }
            let k: Int
            if let j = (earliest..<max(earliest, segDevice.count)).first(where: { segDevice[$0] == d && segStage[$0] == stage }) { k = j } else {
                segDevice.append(d)
                segStage.append(stage)
                segOps.append([])
                k = segDevice.count - 1
            }
            segmentOf[op] = k
            segOps[k].append(op)
        }
        var exports = [[Output]](repeating: [], count: segDevice.count)
        var exportIndex: [Output: Int] = [:]
        func export(_ o: Output) -> (segment: Int, result: Int) {
            let s = segmentOf[o.op]!
            if let i = exportIndex[o] { return (s, i) }
            exports[s].append(o)
            exportIndex[o] = exports[s].count - 1
            return (s, exports[s].count - 1)
        }
        var segFeeds = [[Output]](repeating: [], count: segDevice.count)
        var sources = [[ValueSource]](repeating: [], count: segDevice.count)
        var within = segOps.map { Set($0) }
        for k in segDevice.indices {
            var seen = Set<Output>()
            for op in segOps[k] {
                for i in op.inputs where !seen.contains(i) {
                    if feedIndex[i] == nil && isVariable(i.op) {
                        within[k].insert(i.op)
                        continue
                    }
                    if let f = feedIndex[i] {
                        sources[k].append(.feed(f))
                    } else if segmentOf[i.op] != k {
                        let (s, r) = export(i)
                        sources[k].append(.result(segment: s, index: r))
                    } else { continue }
                    seen.insert(i)
                    segFeeds[k].append(i)
                }
            }
        }
        let fetchSources = fetches.map { export($0) }
        var steps: [Step] = []
        for k in segDevice.indices {
            let types = zip(segFeeds[k], sources[k]).map { o, source -> (Output, TensorType) in
                switch source {
                case .feed(let i): return (o, feeds[i].1)
                case .result(let s, let r): return (o, steps[s].executable.resultTypes[r])
                }
            }
            steps.append(try compileStep(fetches: exports[k], feeds: types, targets: segOps[k], within: within[k],
                                         opCount: segOps[k].count, device: segDevice[k], start: DispatchTime.now()))
        }
        if debugLevel >= 1 {
            Debug.log("  \(segDevice.count) device segment(s): \(segDevice.indices.map { "\(segDevice[$0].shortName) (\(segOps[$0].count) ops, \(segFeeds[$0].count) in, \(exports[$0].count) out)" }.joined(separator: ", "))")
        }
        return CompiledRun(steps: steps, segments: zip(segDevice, sources).map { Segment(device: $0, sources: $1) }, fetches: fetchSources)
    }

    /// Lowers (the ops `within`, or the whole pruned run), optimises and compiles one executable
    /// for `device` (nil: the CPU of a run that has no other device).
    private func compileStep(fetches: [Output], feeds: [(Output, TensorType)], targets: [KilnFrontend.Operation],
                             within: Set<KilnFrontend.Operation>?, opCount: Int, device: PlacementDevice?, start: DispatchTime,
                             batch: BatchFeeds? = nil) throws -> Step {
        let backend = try devices.backend(for: device ?? .cpu)
        let name = "step\(compileCount + 1)"
        let level = debugLevel
        var t0 = DispatchTime.now()
        // The same run one row shorter tells which values carry the batch (BatchTemplate); it is
        // lowered on another thread while this one lowers the run as fed.
        let shorter = batch.flatMap { device == nil ? lowerShorter(batch: $0, fetches: fetches, feeds: feeds, targets: targets, within: within,
                                                                   name: name, backend: backend) : nil }
        defer { _ = shorter?.wait() }
        var lowered = try lowerOptimized(fetches: fetches, feeds: feeds, targets: targets, within: within, name: name, backend: backend,
                                         passesStart: &t0, log: level >= 3)
        var template: BatchTemplate?
        if let batch, let shorter { template = batchTemplate(lowered.function, batch: batch, shorter: shorter.wait()) }
        let t1 = DispatchTime.now()
        var options = CompileOptions(keepSource: level >= 4, keepAssembly: level >= 5, profile: level >= 2, fuse: config.fusion,
                                     memoryLimit: config.memoryLimit)
        options.countNonFinite = countsNonFinite
        options.codeCacheRoot = config.codeCacheRoot
        // An initializer's run: nothing fed, nothing fetched, no variable read before it is
        // written (random ops' hidden counters aside); a session runs it once.
        options.runsOnce = feeds.isEmpty && fetches.isEmpty && lowered.readBeforeWrite.isEmpty
        options.batch = template
        let exe = try backend.compile(lowered.function, options: options)
        compileCount += 1
        if exe.stats.compiledNothing { codeCacheHits += 1 }
        if level >= 1 {
            let plan = exe.plan
            let inline = lowered.function.body.filter { inst in
                guard plan.storage[inst.id] == .inline, inst.op != .varRead else { return false }
                if case .constant = inst.op { return false }
                return true
            }.count
            let ms = { (a: DispatchTime, b: DispatchTime) in String(format: "%.2f", Double(b.uptimeNanoseconds - a.uptimeNanoseconds) / 1e6) }
            Debug.log("compiled \(name) with the \(exe.backendName) backend (\(backend.target.name))\(device.map { " on \($0.shortName)" } ?? ""): fetches [\(fetches.map(\.name).joined(separator: ", "))] feeds [\(feeds.map(\.0.name).joined(separator: ", "))] targets [\(targets.map(\.name).joined(separator: ", "))]")
            Debug.log("  \(opCount) graph ops -> \(lowered.function.body.count) IR instructions -> \(plan.kernels.count) kernel(s), \(inline) value(s) fused into consumers, arena \(plan.arenaBytes) B")
            let eachModule = exe.stats.moduleMs.count > 1 ? ": " + exe.stats.moduleMs.map { String(format: "%.1f", $0) }.joined(separator: ", ") + " ms each" : ""
            let modules = exe.stats.shards > 1 ? " (\(exe.stats.shards) modules in parallel\(eachModule))" : ""
            Debug.log("  compile \(ms(start, DispatchTime.now())) ms: lower \(ms(start, t0)), passes \(ms(t0, t1)), \(exe.backendName) emit \(String(format: "%.2f", exe.stats.emitMs)), optimize \(String(format: "%.2f", exe.stats.optimizeMs)), load \(String(format: "%.2f", exe.stats.loadMs))\(modules)\(exe.stats.optimisedForOneRun ? ", optimised for one run" : "")")
            let objects = exe.stats
            if objects.objectsCompiled + objects.objectsFromDisk + objects.objectsShared > 0 {
                Debug.log("  code: \(objects.objectsCompiled) object(s) compiled, \(objects.objectsFromDisk) from the disk cache, \(objects.objectsShared) linked already")
            }
            if let rows = exe.batchRows {
                Debug.log("  takes the batch at run time: every batch up to \(rows.template.batch) (\(rows.template.carriers.count) value(s) carry it, \(rows.scalars.count) scalar(s) follow it)")
            } else if let why = exe.stats.batchRefusal {
                Debug.log("  compiled for batch \(batch?.n ?? 0) alone: \(why)")
            }
            for line in CompileReport.describe(exe, level: level) { Debug.log(line) }
        }
        if let source = exe.stats.source { Debug.log("kernels of \(name) as rendered by \(exe.backendName):\n\(source)") }
        if let asm = exe.stats.assembly { Debug.log("assembly of \(name):\n\(asm)") }
        let base = lowered.feeds.count
        let written = Set(lowered.function.body.filter { $0.op == .varWrite }.map { $0.operands[0] - base })
        return Step(lowered: lowered, executable: exe, writes: lowered.variables.indices.filter { written.contains($0) }.map { lowered.variables[$0] },
                    device: exe as? any DeviceExecutable)
    }
}
