/// What a session's executable cache holds and has done (`Session.executableCache`).
public struct ExecutableCacheStatistics: Sendable, Equatable {
    /// Executables held now, at most `capacity`.
    public var cached: Int
    public var capacity: Int
    /// Executables compiled so far (a signature compiles again after it was evicted).
    public var compiles: Int
    /// Runs that found their executable in the cache.
    public var hits: Int
    /// Executables dropped to make room, least recently used first.
    public var evictions: Int
    /// Of `compiles`, the executables whose machine code all came from the compiled-code cache
    /// (on disk, or linked already by this process): nothing went through LLVM or the C compiler.
    public var codeCacheHits: Int
    /// New batch sizes run by an executable compiled for a larger batch of the same run
    /// (a batch template), with no compile.
    public var batchReuses: Int

    public init(cached: Int, capacity: Int, compiles: Int, hits: Int, evictions: Int, codeCacheHits: Int = 0, batchReuses: Int = 0) {
        self.cached = cached
        self.capacity = capacity
        self.compiles = compiles
        self.hits = hits
        self.evictions = evictions
        self.codeCacheHits = codeCacheHits
        self.batchReuses = batchReuses
    }
}

/// A session's executables by run signature. Past `capacity` the least recently used one is
/// dropped (freeing its machine code and arena), so a session fed ever new shapes stays bounded.
struct ExecutableCache {
    let capacity: Int
    /// A class, so a hit marks its entry used without hashing the key a second time (the key
    /// holds every fetch, target and feed shape: hashing it is most of a small run's overhead).
    private final class Entry {
        let step: CompiledRun
        var lastUse: UInt64
        init(_ step: CompiledRun, _ lastUse: UInt64) { self.step = step; self.lastUse = lastUse }
    }
    private var entries: [StepKey: Entry] = [:]
    private var clock: UInt64 = 0
    private(set) var hits = 0
    private(set) var evictions = 0
    /// Signatures of executables that take the batch at run time, by the signature with the
    /// batch left open (`StepKey.openBatch`).
    private var templates: [StepKey: [StepKey]] = [:]
    private(set) var batchReuses = 0

    init(capacity: Int) { self.capacity = capacity }

    var count: Int { entries.count }
    /// Every cached step once (an executable for every batch serves several signatures).
    var steps: [Step] {
        var seen = Set<ObjectIdentifier>()
        return entries.values.flatMap(\.step.steps).filter { seen.insert(ObjectIdentifier($0.executable)).inserted }
    }

    /// The executable for `key`, marked as used now.
    mutating func lookup(_ key: StepKey) -> CompiledRun? {
        guard let e = entries[key] else { return nil }
        clock += 1
        e.lastUse = clock
        hits += 1
        return e.step
    }

    /// Adds a newly compiled executable; returns the one evicted to make room, if any.
    mutating func insert(_ step: CompiledRun, for key: StepKey) -> CompiledRun? {
        clock += 1
        entries[key] = Entry(step, clock)
        // A linear scan: it runs only after a compile, which costs far more, over at most capacity + 1 entries.
        guard entries.count > capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) else { return nil }
        entries[oldest.key] = nil
        evictions += 1
        return oldest.value.step
    }

    /// Records that `key`'s executable takes any batch up to its own for the runs `open` stands for.
    mutating func addTemplate(_ key: StepKey, open: StepKey) { templates[open, default: []].append(key) }

    /// The cached executables that take the batch at run time for the runs `open` stands for,
    /// smallest batch first (evicted ones are forgotten).
    mutating func templates(open: StepKey) -> [CompiledRun] {
        guard let keys = templates[open] else { return [] }
        let live = keys.filter { entries[$0] != nil }
        templates[open] = live.isEmpty ? nil : live
        return live.compactMap { entries[$0]?.step }.sorted { ($0.batch?.n ?? 0) < ($1.batch?.n ?? 0) }
    }

    /// Adds the run of a template at a batch it was not compiled for (`CompiledRun.at(batch:)`).
    mutating func insertReuse(_ step: CompiledRun, for key: StepKey) -> CompiledRun? {
        batchReuses += 1
        return insert(step, for: key)
    }

    mutating func removeAll() {
        entries.removeAll()
        templates.removeAll()
    }
}
