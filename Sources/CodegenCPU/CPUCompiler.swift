import CLLVM
import CKilnRT
import KilnIR
import KilnPasses
import Foundation

/// What to keep from compilation for `KILN_DEBUG` levels 4 and 5.
public struct CPUCompileOptions: Sendable {
    public var keepLLVMIR = false
    public var keepAssembly = false
    /// Time every kernel of every run (KILN_DEBUG=2); costs two clock reads per kernel.
    public var profile = false
    /// Fuse elementwise producers into their consumers (off only to measure what fusion buys).
    public var fuse = true
    /// Modules compiled in parallel; nil: one per core when there are kernels enough.
    public var shards: Int?
    /// The largest arena the executable may have, in bytes (the session's memory limit).
    public var memoryLimit = Int.max
    public init(keepLLVMIR: Bool = false, keepAssembly: Bool = false, profile: Bool = false, fuse: Bool = true, shards: Int? = nil,
                memoryLimit: Int = .max) {
        self.memoryLimit = memoryLimit
        self.keepLLVMIR = keepLLVMIR
        self.keepAssembly = keepAssembly
        self.profile = profile
        self.fuse = fuse
        self.shards = shards
    }
}

public struct CPUCompileStats: Sendable {
    public var emitMs = 0.0
    public var optimizeMs = 0.0
    public var jitMs = 0.0
    /// Modules the executable was compiled as, in parallel (the phase times are the slowest's).
    public var shards = 1
    public var totalMs: Double { emitMs + optimizeMs + jitMs }
    public var llvmIR: String?
    public var assembly: String?
}

/// Compiles one IR function (already through the pass pipeline) to native code for this CPU.
public enum CPUCompiler {
    public static func compile(_ f: Function, options: CPUCompileOptions = CPUCompileOptions()) throws -> CPUExecutable {
        let plan = KernelPlan(f, fuse: options.fuse, target: MatrixProducts.target)
        // Each value fits the limit (lowering checks), but the values live at once may not.
        if plan.arenaBytes > options.memoryLimit {
            throw KilnError.resourceExhausted("OOM when allocating the arena of '\(f.name)': \(plan.arenaBytes) bytes for the values live at once, above the memory limit of \(options.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
        }
        let jit = JIT.shared
        let name = jit.uniqueName("kiln_" + f.name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        let profileSlots: UnsafeMutablePointer<UInt64>? = options.profile ? .allocate(capacity: plan.kernels.count + 2) : nil
        let functions = plan.kernels.count
        let shards = max(1, min(options.shards ?? shardCount(kernels: functions), max(functions, 1)))
        // Each shard has its own LLVM context, module and target machine, so shards optimise
        // and generate code on separate threads; the JIT links their objects.
        let outputs = ShardOutputs(count: shards)
        let slots = SlotsPointer(value: profileSlots)
        DispatchQueue.concurrentPerform(iterations: shards) { s in
            outputs.set(s, Result { try compileShard(f, plan: plan, name: name, shard: s, of: shards, options: options, profileSlots: slots.value) })
        }
        let built: [Shard]
        do { built = try outputs.results.map { try $0!.get() } } catch {
            for case .success(let shard)? in outputs.results { LLVMDisposeMemoryBuffer(shard.object) }
            throw error
        }
        var stats = CPUCompileStats()
        stats.shards = shards
        stats.emitMs = built.map(\.emitMs).max() ?? 0
        stats.optimizeMs = built.map(\.optimizeMs).max() ?? 0
        if options.keepLLVMIR { stats.llvmIR = built.compactMap(\.llvmIR).joined(separator: "\n") }
        if options.keepAssembly { stats.assembly = built.compactMap(\.assembly).joined(separator: "\n") }
        let t0 = DispatchTime.now()
        let (addr, tracker) = try jit.add(objects: built.map(\.object), symbol: name)
        stats.jitMs = (built.map(\.codegenMs).max() ?? 0) + Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        return try CPUExecutable(function: f, plan: plan, address: addr, tracker: tracker, stats: stats, profileSlots: profileSlots)
    }

    /// One shard per core for executables with enough kernels to share out (a shard costs a
    /// context and a target machine, about a millisecond); KILN_COMPILE_THREADS overrides.
    static func shardCount(kernels: Int) -> Int {
        let cores = Int(ProcessInfo.processInfo.environment["KILN_COMPILE_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        return max(1, min(cores, kernels / 4, 8))
    }

    /// Shard results written from the compile threads.
    final class ShardOutputs: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var results: [Result<Shard, Error>?]
        init(count: Int) { results = Array(repeating: nil, count: count) }
        func set(_ k: Int, _ r: Result<Shard, Error>) { lock.lock(); results[k] = r; lock.unlock() }
    }

    /// The profile slots every shard's entry writes to (only shard 0 emits the entry).
    struct SlotsPointer: @unchecked Sendable { let value: UnsafeMutablePointer<UInt64>? }

    struct Shard {
        var object: LLVMMemoryBufferRef
        var llvmIR: String?
        var assembly: String?
        var emitMs = 0.0, optimizeMs = 0.0, codegenMs = 0.0
    }

    static func compileShard(_ f: Function, plan: KernelPlan, name: String, shard: Int, of shards: Int,
                             options: CPUCompileOptions, profileSlots: UnsafeMutablePointer<UInt64>?) throws -> Shard {
        let jit = JIT.shared
        let t0 = DispatchTime.now()
        let ctx = LLVMContextCreate()!
        defer { LLVMContextDispose(ctx) }
        // Optimisation remarks (e.g. a hinted loop LLVM chose not to vectorise) are not errors;
        // without a handler LLVM prints them to stderr on every compile.
        LLVMContextSetDiagnosticHandler(ctx, { info, _ in
            guard let info, LLVMGetDiagInfoSeverity(info) == LLVMDSError, let d = LLVMGetDiagInfoDescription(info) else { return }
            FileHandle.standardError.write(Data("kiln: LLVM error: \(String(cString: d))\n".utf8))
            LLVMDisposeMessage(d)
        }, nil)
        let emitter = Emitter(context: ctx, moduleName: shards > 1 ? "\(name)_\(shard)" : name, function: f, plan: plan)
        emitter.profileSlots = profileSlots
        let module = try emitter.emit(entryName: name, shard: shard, of: shards)
        defer { LLVMDisposeModule(module) }
        LLVMSetTarget(module, jit.triple)
        LLVMSetDataLayout(module, jit.dataLayout)
        let t1 = DispatchTime.now()

        let tm = try TargetMachine.create()
        defer { LLVMDisposeTargetMachine(tm) }
        let opts = LLVMCreatePassBuilderOptions()!
        defer { LLVMDisposePassBuilderOptions(opts) }
        LLVMPassBuilderOptionsSetLoopVectorization(opts, 1)
        LLVMPassBuilderOptionsSetSLPVectorization(opts, 1)   // off by default in the C API
        LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1)
        // Unrolling quadrupled code size and compile time for no measurable gain: vectorised
        // loops with interleaving already keep the units busy.
        LLVMPassBuilderOptionsSetLoopUnrolling(opts, 0)
        try check(LLVMRunPasses(module, "default<O3>", tm, opts))
        var llvmIR: String?, assembly: String?
        if options.keepLLVMIR {
            let s = LLVMPrintModuleToString(module)!
            llvmIR = String(cString: s)
            LLVMDisposeMessage(s)
        }
        let t2 = DispatchTime.now()
        if options.keepAssembly {
            // Emitting code mutates the module, so emit from a clone.
            let clone = LLVMCloneModule(module)
            var buf: LLVMMemoryBufferRef?
            var err: UnsafeMutablePointer<CChar>?
            if LLVMTargetMachineEmitToMemoryBuffer(tm, clone, LLVMAssemblyFile, &err, &buf) == 0, let buf {
                assembly = String(decoding: UnsafeRawBufferPointer(start: LLVMGetBufferStart(buf), count: LLVMGetBufferSize(buf)), as: UTF8.self)
                LLVMDisposeMemoryBuffer(buf)
            } else { LLVMDisposeMessage(err) }
            LLVMDisposeModule(clone)
        }
        var obj: LLVMMemoryBufferRef?
        var err: UnsafeMutablePointer<CChar>?
        guard LLVMTargetMachineEmitToMemoryBuffer(tm, module, LLVMObjectFile, &err, &obj) == 0, let obj else {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("LLVM code generation failed: \(err.map { String(cString: $0) } ?? "unknown error")")
        }
        let t3 = DispatchTime.now()
        var out = Shard(object: obj, llvmIR: llvmIR, assembly: assembly)
        out.emitMs = Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        out.optimizeMs = Double(t2.uptimeNanoseconds - t1.uptimeNanoseconds) / 1e6
        out.codegenMs = Double(t3.uptimeNanoseconds - t2.uptimeNanoseconds) / 1e6
        return out
    }
}

/// Native code for one function plus everything it needs to run: its arena and constant table.
/// Runs are serialised per executable because they share the arena.
public final class CPUExecutable: @unchecked Sendable {
    public typealias Entry = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                             UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Void
    public let function: Function
    public let plan: KernelPlan
    public let stats: CPUCompileStats
    public let resultTypes: [TensorType]
    private let entry: Entry
    private let tracker: LLVMOrcResourceTrackerRef
    private let arena: TensorBuffer
    private let constantTable: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private var lock = pthread_mutex_t()
    private let profileSlots: UnsafeMutablePointer<UInt64>?
    /// Total nanoseconds per kernel (and result copies last) over all profiled runs.
    public private(set) var kernelNanoseconds: [UInt64] = []
    public private(set) var profiledRuns = 0

    init(function: Function, plan: KernelPlan, address: UInt64, tracker: LLVMOrcResourceTrackerRef, stats: CPUCompileStats,
         profileSlots: UnsafeMutablePointer<UInt64>?) throws {
        self.profileSlots = profileSlots
        self.function = function
        self.plan = plan
        self.stats = stats
        self.tracker = tracker
        let types = function.typeTable()
        resultTypes = function.results.map { types[$0]! }
        entry = unsafeBitCast(UInt(address), to: Entry.self)
        arena = try TensorBuffer(byteCount: plan.arenaBytes)
        constantTable = .allocate(capacity: max(plan.constants.count, 1))
        for (k, c) in plan.constants.enumerated() { constantTable[k] = c.buffer.pointer }
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        JIT.shared.remove(tracker)
        constantTable.deallocate()
        profileSlots?.deallocate()
        pthread_mutex_destroy(&lock)
    }

    public var arenaBytes: Int { plan.arenaBytes }

    /// Calls the entry. `inputs` holds one pointer per parameter (feeds and variables, in order),
    /// `outputs` one per result, each to a buffer of the result's type. Throws the error of the
    /// first check that failed (an index out of range, an integer division by zero); the run
    /// then stopped after the kernel that found it, so later kernels (and variable writes) did
    /// not run and the outputs are undefined.
    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let record = plan.faultRecord.map { (arena.pointer + $0).assumingMemoryBound(to: kiln_fault.self) }
        record?.pointee = kiln_fault(site: 0, position: 0, value: 0, lock: 0)
        entry(inputs, outputs, arena.pointer, constantTable)
        if let r = record?.pointee, r.site != 0 {
            let check = plan.checks[Int(r.site) - 1]
            guard let i = function.body.first(where: { $0.id == check }), case .check(let c) = i.op, let t = i.type else {
                throw KilnError.internalError("fault record names check \(r.site), which \(function.name) does not have")
            }
            throw c.error(position: Int(r.position), value: r.value, shape: t.shape)
        }
        if let slots = profileSlots {
            let n = plan.kernels.count
            if kernelNanoseconds.isEmpty { kernelNanoseconds = Array(repeating: 0, count: n) }
            for k in 0..<n { kernelNanoseconds[k] += slots[k + 1] &- slots[k] }
            profiledRuns += 1
        }
    }

    /// Convenience for tests and tools: runs with host tensors and returns new result tensors;
    /// variable parameters are updated in place in `parameters`.
    public func run(_ parameters: inout [Tensor]) throws -> [Tensor] {
        guard parameters.count == function.params.count else {
            throw KilnError.invalidArgument("'\(function.name)' takes \(function.params.count) parameter(s), got \(parameters.count)")
        }
        var inPtrs: [UnsafeMutableRawPointer?] = []
        for k in parameters.indices {
            if function.params[k].kind == .variable {
                try parameters[k].withUnsafeMutableBytes { inPtrs.append($0.baseAddress) }
            } else {
                inPtrs.append(parameters[k].buffer.pointer)
            }
        }
        let results = try resultTypes.map { try Tensor(dtype: $0.dtype, shape: $0.shape, buffer: TensorBuffer(byteCount: $0.byteCount)) }
        var outPtrs: [UnsafeMutableRawPointer?] = results.map { $0.buffer.pointer }
        try withExtendedLifetime(parameters) {
            try run(inputs: &inPtrs, outputs: &outPtrs)
        }
        return results
    }
}
