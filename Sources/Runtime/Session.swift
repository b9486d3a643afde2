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
    private var cache: ExecutableCache
    /// Run signatures known to involve no host op and no string: they skip the host pass.
    private var hostFree = Set<RunShape>()
    private var closed = false
    private let lock = NSLock()
    private let debugLevel: Int
    /// Seeds unseeded random ops, so they differ between sessions.
    private let sessionSeed = UInt64.random(in: 1...UInt64.max)
    /// How many executables this session has compiled (each new signature compiles once).
    public private(set) var compileCount = 0
    private var lastStep: Step?
    /// Compiles each run signature's IR function.
    private let backend: any Backend = LLVMBackend()

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
        return ExecutableCacheStatistics(cached: cache.count, capacity: cache.capacity, compiles: compileCount, hits: cache.hits, evictions: cache.evictions)
    }

    public init(graph: Graph, config: SessionConfig = SessionConfig()) throws {
        guard config.executableCacheCapacity >= 1 else {
            throw KilnError.invalidArgument("executableCacheCapacity must be at least 1, got \(config.executableCacheCapacity)")
        }
        self.graph = graph
        self.config = config
        self.debugLevel = config.debugLevel ?? Debug.level
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
        reportProfiles()
        closed = true
        cache.removeAll()
        variables.removeAll()
    }

    // MARK: variables

    /// The current value of a variable (its VariableV2 or VarHandleOp op), or nil before it is initialised.
    public func value(of variable: KilnFrontend.Operation) -> Tensor? {
        lock.lock()
        defer { lock.unlock() }
        return variables[variable]
    }

    public func value(of variable: Variable) -> Tensor? { value(of: variable.variableOp) }

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
        variables[variable] = t.dtype == .string ? t : copy
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

    func runLocked(_ fetches: [Output], feeds given: [Output: Tensor], targets: [KilnFrontend.Operation]) throws -> [Tensor] {
        var feeds = given
        // Ops the session computes on the host (data-dependent shapes, strings, checkpoint I/O,
        // questions about the variable store) run first, in graph order, and their outputs are
        // fed to the compiled rest. (Stateful ops upstream of a host op's inputs run in the extra
        // run that computes those inputs too.) Signatures without any skip this pass next time.
        var ranOnHost = Set<KilnFrontend.Operation>()
        let shape = RunShape(fetches: fetches.map { [$0.op.id, $0.index] }, targets: targets.map(\.id),
                             feeds: given.keys.map { [$0.op.id, $0.index] }.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) })
        if !hostFree.contains(shape) {
            var mayChange = false
            for op in Lowering.prune(fetches: fetches, feeds: Set(feeds.keys), targets: targets) {
                if Session.sometimesAnsweredOps.contains(op.type) { mayChange = true }
                guard op.outputSpecs.indices.contains(where: { feeds[op.output($0)] == nil }) || op.outputSpecs.isEmpty else { continue }
                guard let outputs = try hostOutputs(of: op, feeds: feeds) else { continue }
                for (k, t) in outputs.enumerated() { feeds[op.output(k)] = t }
                ranOnHost.insert(op)
            }
            if ranOnHost.isEmpty && !mayChange && !given.values.contains(where: { $0.dtype == .string }) { hostFree.insert(shape) }
        }
        for (o, t) in feeds {
            guard o.graph === graph else { throw KilnError.invalidArgument("Cannot feed '\(o.name)': it belongs to another graph") }
            if t.dtype != o.dtype {
                throw KilnError.invalidArgument("Cannot feed value of dtype \(t.dtype) for Tensor '\(o.name)', which has dtype \(o.dtype)")
            }
            if !Shape(t.shape).isCompatible(with: o.shape) {
                throw KilnError.invalidArgument("Cannot feed value of shape \(Shape(t.shape)) for Tensor '\(o.name)', which has shape \(o.shape)")
            }
            if t.byteCount > config.memoryLimit {
                throw KilnError.resourceExhausted("Cannot feed value of shape \(Shape(t.shape)) (\(t.byteCount) bytes) for Tensor '\(o.name)': above the memory limit of \(config.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
            }
        }
        // A fetched tensor that is fed (or was computed on the host) is answered directly; this
        // is how string results come back, since compiled code does not handle strings.
        let computed = fetches.filter { feeds[$0] == nil }
        let compiledTargets = targets.filter { !ranOnHost.contains($0) }
        var values: [Output: Tensor] = [:]
        if !computed.isEmpty || !compiledTargets.isEmpty {
            let results = try runCompiled(computed, feeds: feeds, given: given, targets: compiledTargets, ranOnHost: ranOnHost)
            for (f, t) in zip(computed, results) where values[f] == nil { values[f] = t }
            if computed.count == fetches.count { return results }
        }
        for f in fetches where feeds[f] != nil { values[f] = feeds[f] }
        return fetches.map { values[$0]! }
    }

    /// Compiles (once per signature) and runs the part of the graph that is not computed on the
    /// host. When strings or host ops are involved, only feeds that compiled ops consume are
    /// passed, plus the caller's non-string feeds, so host-side strings never reach generated code.
    private func runCompiled(_ fetches: [Output], feeds all: [Output: Tensor], given: [Output: Tensor],
                             targets: [KilnFrontend.Operation], ranOnHost: Set<KilnFrontend.Operation>) throws -> [Tensor] {
        let feeds = ranOnHost.isEmpty && !all.values.contains(where: { $0.dtype == .string })
            ? all   // the common case: no strings anywhere, nothing ran on the host
            : try compiledFeeds(fetches, feeds: all, given: given, targets: targets, ranOnHost: ranOnHost)
        let orderedFeeds = feeds.sorted { ($0.key.op.id, $0.key.index) < ($1.key.op.id, $1.key.index) }
        let key = StepKey(fetches: fetches.map { [$0.op.id, $0.index] }, targets: targets.map(\.id),
                          feeds: orderedFeeds.map { StepKey.Feed(op: $0.key.op.id, index: $0.key.index, dtype: $0.value.dtype, shape: $0.value.shape) })
        let step: Step
        if let s = cache.lookup(key) { step = s } else {
            step = try compile(fetches: fetches, feeds: orderedFeeds.map { ($0.key, TensorType($0.value.dtype, $0.value.shape)) }, targets: targets)
            let evicted = cache.insert(step, for: key)
            if debugLevel >= 1 {
                if let evicted {
                    Debug.log("evicted \(evicted.executable.function.name), the least recently used executable (capacity \(cache.capacity))")
                    if debugLevel >= 2 { Debug.log(KernelProfile.report(evicted.executable)) }
                }
                Debug.log("  executable cache: \(cache.count) of \(cache.capacity) cached, \(compileCount) compiled, \(cache.hits) hits, \(cache.evictions) evicted")
            }
        }
        lastStep = step
        return try execute(step, feeds: orderedFeeds.map(\.value))
    }

    /// The feeds compiled code gets once host ops have run, after checking that no compiled op
    /// handles strings or depends on a host op through a control edge.
    private func compiledFeeds(_ fetches: [Output], feeds all: [Output: Tensor], given: [Output: Tensor],
                               targets: [KilnFrontend.Operation], ranOnHost: Set<KilnFrontend.Operation>) throws -> [Output: Tensor] {
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
        return all.filter { consumed.contains($0.key) || (given[$0.key] != nil && $0.value.dtype != .string) }
    }

    private func execute(_ step: Step, feeds: [Tensor]) throws -> [Tensor] {
        let exe = step.executable
        let n = step.lowered.feeds.count + step.lowered.variables.count
        return try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(n, 1)) { inputs in
            for (k, t) in feeds.enumerated() { inputs[k] = t.buffer.pointer }
            var created: [KilnFrontend.Operation] = []
            for (k, v) in step.lowered.variables.enumerated() {
                if variables[v] == nil {
                    created.append(v)
                    if step.lowered.readBeforeWrite.contains(v) && !step.lowered.autoInitialized.contains(v) {
                        throw KilnError.failedPrecondition("Attempting to use uninitialized value \(v.name)")
                    }
                    let t = exe.function.params[feeds.count + k].type
                    variables[v] = try Tensor(zeros: t.dtype, shape: t.shape)
                }
                inputs[feeds.count + k] = try variables[v]!.withUnsafeMutableBytes { $0.baseAddress }
            }
            let pool = step.results
            if pool.buffers.count != exe.resultTypes.count { pool.buffers = Array(repeating: nil, count: exe.resultTypes.count) }
            var results: [Tensor] = []
            results.reserveCapacity(exe.resultTypes.count)
            for (k, t) in exe.resultTypes.enumerated() {
                // Reuse last run's buffer when nobody else holds it (and it is not also result j < k).
                if !isKnownUniquelyReferenced(&pool.buffers[k]) { pool.buffers[k] = try TensorBuffer(byteCount: t.byteCount) }
                results.append(try Tensor(dtype: t.dtype, shape: t.shape, buffer: pool.buffers[k]!))
            }
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(results.count, 1)) { outputs in
                for (k, r) in results.enumerated() { outputs[k] = r.buffer.pointer }
                do {
                    try withExtendedLifetime(feeds) { try exe.run(inputs: inputs.baseAddress, outputs: outputs.baseAddress) }
                } catch {
                    // A failed check stops the run before any later kernel: a variable this run
                    // would have initialised is still uninitialised, as in TensorFlow.
                    for v in created { variables[v] = nil }
                    throw error
                }
            }
            return results
        }
    }

    // MARK: compile

    private func compile(fetches: [Output], feeds: [(Output, TensorType)], targets: [KilnFrontend.Operation]) throws -> Step {
        let start = DispatchTime.now()
        for f in fetches where f.graph !== graph { throw KilnError.invalidArgument("Fetch '\(f.name)' belongs to another graph") }
        for t in targets where t.graph !== graph { throw KilnError.invalidArgument("Target '\(t.name)' belongs to another graph") }
        let ops = Lowering.prune(fetches: fetches, feeds: Set(feeds.map(\.0)), targets: targets)
        try Placement.check(ops, config: config)
        let name = "step\(compileCount + 1)"
        var lowered = try Lowering.lower(fetches: fetches, feeds: feeds, targets: targets, name: name, sessionSeed: sessionSeed,
                                         evaluator: { op, operands in try ReferenceEvaluator.evaluate(op, operands) },
                                         memoryLimit: config.memoryLimit)
        let level = debugLevel
        var pm = PassManager.standard(afterEach: level >= 3 ? { pass, f in Debug.log("IR after \(pass):\n\(Printer.print(f))") } : nil)
        if level >= 3 { Debug.log("IR after lowering:\n\(Printer.print(lowered.function))") }
        let t0 = DispatchTime.now()
        try pm.run(&lowered.function)
        pm.afterEach = nil
        let t1 = DispatchTime.now()
        let exe = try backend.compile(lowered.function, options: CompileOptions(keepSource: level >= 4, keepAssembly: level >= 5, profile: level >= 2,
                                                                                fuse: config.fusion, memoryLimit: config.memoryLimit))
        compileCount += 1
        if level >= 1 {
            let plan = exe.plan
            let inline = lowered.function.body.filter { inst in
                guard plan.storage[inst.id] == .inline, inst.op != .varRead else { return false }
                if case .constant = inst.op { return false }
                return true
            }.count
            let ms = { (a: DispatchTime, b: DispatchTime) in String(format: "%.2f", Double(b.uptimeNanoseconds - a.uptimeNanoseconds) / 1e6) }
            Debug.log("compiled \(name): fetches [\(fetches.map(\.name).joined(separator: ", "))] feeds [\(feeds.map(\.0.name).joined(separator: ", "))] targets [\(targets.map(\.name).joined(separator: ", "))]")
            Debug.log("  \(ops.count) graph ops -> \(lowered.function.body.count) IR instructions -> \(plan.kernels.count) kernel(s), \(inline) value(s) fused into consumers, arena \(plan.arenaBytes) B")
            Debug.log("  compile \(ms(start, DispatchTime.now())) ms: lower \(ms(start, t0)), passes \(ms(t0, t1)), \(exe.backendName) emit \(String(format: "%.2f", exe.stats.emitMs)), optimize \(String(format: "%.2f", exe.stats.optimizeMs)), load \(String(format: "%.2f", exe.stats.loadMs))\(exe.stats.shards > 1 ? " (\(exe.stats.shards) modules in parallel)" : "")")
            for line in CompileReport.describe(exe, level: level) { Debug.log(line) }
        }
        if let source = exe.stats.source { Debug.log("kernels of \(name) as rendered by \(exe.backendName):\n\(source)") }
        if let asm = exe.stats.assembly { Debug.log("assembly of \(name):\n\(asm)") }
        return Step(lowered: lowered, executable: exe)
    }
}

/// The signature an executable is specialised on.
struct StepKey: Hashable {
    struct Feed: Hashable {
        var op: Int, index: Int
        var dtype: DType
        var shape: [Int]
    }
    var fetches: [[Int]]
    var targets: [Int]
    var feeds: [Feed]
}

struct Step {
    var lowered: LoweredGraph
    var executable: any Executable
    /// The last results handed out; reused when the caller has let go of them, so steady-state
    /// runs do not fault in fresh pages for every result.
    let results = ResultBuffers()
}

final class ResultBuffers {
    var buffers: [TensorBuffer?] = []
}

/// A run's signature before host ops are considered (feeds by identity only).
struct RunShape: Hashable {
    var fetches: [[Int]]
    var targets: [Int]
    var feeds: [[Int]]
}
