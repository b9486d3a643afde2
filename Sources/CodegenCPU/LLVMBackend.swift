import CLLVM
import KilnIR
import KilnKernels
import KilnPasses
import Foundation

/// Compiles IR functions (already through the pass pipeline) to native code for a CPU with LLVM:
/// KernelWriter renders the plan through LLVMRenderer, LLVM optimises and generates code, and the
/// process-wide JIT loads it.
public struct LLVMBackend: Backend {
    public let cpu: CPUTarget
    public let target: TargetDescription
    public var name: String { "llvm" }

    /// The JIT runs code in this process, so the CPU must be one this machine can execute (the
    /// host by default; another CPU name or fewer features of the same triple is fine).
    public init(cpu: CPUTarget = .host) {
        self.cpu = cpu
        target = cpu.description
    }

    public func compile(_ f: Function, options: CompileOptions = CompileOptions()) throws -> any Executable {
        guard cpu.triple == CPUTarget.host.triple else {
            throw KilnError(.unavailable, "the LLVM backend runs code in this process, which is \(CPUTarget.host.triple), not \(cpu.triple)")
        }
        var planned = KernelPlan(f, fuse: options.fuse, target: target)
        var stats = CompileStats()
        let batchRows = BatchRows.plan(options.batch, &planned, stats: &stats)
        let plan = planned
        // Each value fits the limit (lowering checks), but the values live at once may not.
        if plan.arenaBytes > options.memoryLimit {
            throw KilnError.resourceExhausted("OOM when allocating the arena of '\(f.name)': \(plan.arenaBytes) bytes for the values live at once, above the memory limit of \(options.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
        }
        let jit = JIT.shared
        let layout = Self.layout(plan, f, options)
        let shards = layout.count
        // KILN_DEBUG=4 and 5 show the code as compiled now, so they compile.
        let cache = options.keepSource || options.keepAssembly ? nil : CodeCache.shared(kind: "llvm", root: options.codeCacheRoot)
        // Each shard has its own LLVM context, module and target machine, so shards render,
        // optimise and generate code on separate threads; the JIT links their objects. The
        // shards are rendered under a placeholder name first: with the disk cache on, the
        // executable's symbols are then named by a hash of all the shards' code, so the same
        // code has the same names in every process (a cached object can be linked as it is)
        // and is linked once per process however many executables use it.
        let rendered = ParallelResults<RenderedShard>(count: shards)
        DispatchQueue.concurrentPerform(iterations: shards) { s in
            rendered.set(s, Result { try renderShard(f, plan: plan, batchRows: batchRows, shard: s, of: layout, options: options, keyed: cache != nil) })
        }
        let modules: [RenderedShard]
        do { modules = try rendered.values() } catch {
            for case .success(let m)? in rendered.results { m.dispose() }
            throw error
        }
        defer { modules.forEach { $0.dispose() } }
        let baseName = "kiln_" + f.name.filter { $0.isLetter || $0.isNumber || $0 == "_" }
        let name: String, keys: [String]?
        if cache != nil {
            let whole = CodeCache.key(modules.map { $0.key ?? "" })
            name = "kiln_" + whole.prefix(24)
            keys = (0..<shards).map { CodeCache.key([whole, "shard \($0) of \(shards)"]) }
        } else {
            name = jit.uniqueName(baseName)
            keys = nil
        }
        stats.shards = shards
        stats.optimisedForOneRun = options.runsOnce
        stats.emitMs = modules.map(\.emitMs).max() ?? 0
        let entry: UInt64
        if let shared = jit.acquire(name) {
            // This process linked the same code already (another session, an earlier signature).
            entry = shared
            stats.objectsShared = shards
        } else {
            func build(reading: Bool) throws -> [Shard] {
                let outputs = ParallelResults<Shard>(count: shards)
                DispatchQueue.concurrentPerform(iterations: shards) { s in
                    outputs.set(s, Result { try compileShard(modules[s], name: name, cache: cache, key: keys?[s], reading: reading, options: options, cold: layout.isCold(s)) })
                }
                do { return try outputs.values() } catch {
                    for case .success(let shard)? in outputs.results { LLVMDisposeMemoryBuffer(shard.object) }
                    throw error
                }
            }
            var built = try build(reading: true)
            let t0 = DispatchTime.now()
            do {
                entry = try jit.add(objects: built.map(\.object), symbol: name)
            } catch where built.contains(where: \.fromDisk) {
                // An intact cache file the JIT still refuses (written by a build of Kiln that
                // disagrees about its runtime): compile afresh, and overwrite it.
                built = try build(reading: false)
                entry = try jit.add(objects: built.map(\.object), symbol: name)
            }
            stats.loadMs = (built.map(\.codegenMs).max() ?? 0) + Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
            stats.optimizeMs = built.map(\.optimizeMs).max() ?? 0
            stats.moduleMs = built.filter { !$0.fromDisk }.map { $0.optimizeMs + $0.codegenMs }
            stats.objectsFromDisk = built.filter(\.fromDisk).count
            stats.objectsCompiled = shards - stats.objectsFromDisk
            if options.keepSource { stats.source = built.compactMap(\.llvmIR).joined(separator: "\n") }
            if options.keepAssembly { stats.assembly = built.compactMap(\.assembly).joined(separator: "\n") }
        }
        return try NativeExecutable(entry: unsafeBitCast(UInt(entry), to: NativeExecutable.Entry.self), function: f, plan: plan, stats: stats,
                                    backendName: self.name, profile: options.profile, countNonFinite: options.countNonFinite,
                                    batchRows: batchRows, release: { jit.release(name) })
    }

    /// The executable's modules: its cold kernels in one of their own where there are enough of
    /// them to pay for a module (in code that runs once too: the cold module vectorises only the
    /// loops that ask, which took the digits initialiser's modules from 15 to 11 ms of LLVM's
    /// time), and the rest shared among `options.shards` or as many modules as `shardCount` gives
    /// for all the kernels (the cold module's thread helps with the hot ones).
    static func layout(_ plan: KernelPlan, _ f: Function, _ options: CompileOptions) -> ShardLayout {
        let cold = plan.coldKernels(f).filter { $0 }.count
        let split = cold >= minimumColdKernels && cold < plan.kernels.count
        let hot = plan.kernels.count - (split ? cold : 0)
        return ShardLayout(hot: min(options.shards ?? shardCount(kernels: plan.kernels.count), max(hot, 1)), cold: split)
    }

    /// Fewer cold kernels than this stay among the others (a module costs a context and a target
    /// machine, about a millisecond).
    static let minimumColdKernels = 4

    /// One shard per core for executables with enough kernels to share out (a shard costs a
    /// context and a target machine, about a millisecond); KILN_COMPILE_THREADS overrides.
    static func shardCount(kernels: Int) -> Int {
        let cores = Int(ProcessInfo.processInfo.environment["KILN_COMPILE_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        return max(1, min(cores, kernels / 4, 8))
    }

    /// Results written from the compile threads.
    final class ParallelResults<T>: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var results: [Result<T, Error>?]
        init(count: Int) { results = Array(repeating: nil, count: count) }
        func set(_ k: Int, _ r: Result<T, Error>) { lock.lock(); results[k] = r; lock.unlock() }
        /// Every value, or the first error.
        func values() throws -> [T] { try results.map { try $0!.get() } }
    }

    /// One shard's module as rendered, under `placeholder`, before optimisation.
    final class RenderedShard: @unchecked Sendable {
        let context: LLVMContextRef
        let module: LLVMModuleRef
        /// The hash of the module's text and everything else that determines its object (nil:
        /// no disk cache, nothing hashed).
        let key: String?
        let emitMs: Double
        init(context: LLVMContextRef, module: LLVMModuleRef, key: String?, emitMs: Double) {
            self.context = context
            self.module = module
            self.key = key
            self.emitMs = emitMs
        }
        func dispose() {
            LLVMDisposeModule(module)
            LLVMContextDispose(context)
        }
    }

    struct Shard {
        var object: LLVMMemoryBufferRef
        var llvmIR: String?
        var assembly: String?
        var fromDisk = false
        var optimizeMs = 0.0, codegenMs = 0.0
    }

    /// The name shards are rendered under, replaced by the executable's before optimisation
    /// (no runtime function starts with it).
    static let placeholder = "kiln__code"

    /// The optimisation pipeline for Kiln's kernels: the function passes of LLVM's O3 that act on
    /// rendered loops (scalar clean-up, rotation, vectorisation, clean-up again). Left out, each
    /// measured: O3's module and call-graph passes (a kernel calls only the runtime, so the inliner
    /// and interprocedural passes found nothing and cost a fifth of the MLP step's compile);
    /// induction-variable simplification and loop load elimination (rendered loops already count
    /// one i64 up to a constant, all the vectoriser needs; the two were a third of the optimiser's
    /// time on the digits step, run time the same); loop deletion, alignment from assumptions and
    /// the clean-up before vectorising (the digits step's optimised modules are identical without
    /// them). The digits step's 94 kernels optimise in 63 ms with this, 123 with those five.
    /// GVN and the instcombine after it are left out too: without them the optimised code of the
    /// digits and MLP steps, the reductions and the elementwise chains differs by one duplicate
    /// loop increment per function, and the digits step compiles 4-8 ms sooner (of ~100).
    /// The unroller after the vectoriser unrolls only the loops the writer asks to
    /// (`LoopHints.unrollFully`; full-unroll-max=0 turns its own choices off: unrolling every
    /// loop of up to 4 iterations cost the digits step 14 ms of compile), so the LICM after it
    /// keeps their accumulators in registers. No SLP vectoriser: the writer's loops are
    /// vectorised by the loop vectoriser, and without it the digits step compiles ~2 ms sooner
    /// (of ~78) and runs in the same time.
    static let kernelPasses = functionPasses([
        "sroa", "early-cse<memssa>", "simplifycfg", "instcombine",
        "loop-mssa(licm)", "loop-rotate",
        "loop-vectorize", "loop-unroll<O2;no-partial;no-runtime;no-upperbound;no-peeling;full-unroll-max=0>",
        "instcombine", "simplifycfg",
        "loop-mssa(licm)", "instsimplify", "simplifycfg",
    ])

    /// For code that runs once (variable initialisers): scalar clean-up and the loop vectoriser
    /// only, so fills still run in vector registers; LLVM's O1 took twice as long (the digits
    /// initialiser's 51 kernels: 35 -> 23 ms).
    static let oneRunPasses = functionPasses(["sroa", "early-cse<memssa>", "instcombine", "loop-vectorize", "simplifycfg"])

    /// For cold kernels (`KernelPlan.coldKernels`: runtime calls, scalars and loops over at most
    /// 1,024 elements): scalar clean-up, and the loop vectoriser only for the loops that ask
    /// (`LoopHints.vectorize`: reassociating sums, and the costly element functions the writer
    /// marks, `KernelWriter.vectorizeLoops`). Vectorising every cold loop was half of their
    /// optimising: the digits step's cold module takes 21 ms this way and 11 with no loop
    /// vectorised, but then its exp, square roots and sums ran 7 us a step slower in all.
    static let coldPasses = functionPasses(["sroa", "early-cse<memssa>", "instcombine", "loop-vectorize<vectorize-forced-only>", "simplifycfg"])

    /// A pipeline of function passes in LLVM's textual form.
    private static func functionPasses(_ names: [String]) -> String { "function(" + names.joined(separator: ",") + ")" }

    /// The pipeline: the cold kernels', the one for code that runs once, or the kernels'.
    static func passes(_ options: CompileOptions, cold: Bool) -> String { cold ? coldPasses : options.runsOnce ? oneRunPasses : kernelPasses }

    /// Optimises `module` for `tm` through `passes`, loops vectorised and interleaved, not
    /// unrolled: the JIT's shards and an artifact's module alike, so an artifact runs the JIT's code.
    static func optimise(_ module: LLVMModuleRef, for tm: LLVMTargetMachineRef, passes: String) throws {
        let opts = LLVMCreatePassBuilderOptions()!
        defer { LLVMDisposePassBuilderOptions(opts) }
        LLVMPassBuilderOptionsSetLoopVectorization(opts, 1)
        LLVMPassBuilderOptionsSetLoopInterleaving(opts, 1)
        // Unrolling quadrupled code size and compile time for no measurable gain: vectorised
        // loops with interleaving already keep the units busy.
        LLVMPassBuilderOptionsSetLoopUnrolling(opts, 0)
        try check(LLVMRunPasses(module, passes, tm, opts))
    }

    /// How much code generation works on the optimised module: code that runs once (variable
    /// initialisers) gets the fast instruction selector and register allocator, which took
    /// LLVM's code generation for the MLP's initialiser from 13 ms to 2.5 ms; what the slower
    /// code costs its one run is far less.
    static func codeGenLevel(_ options: CompileOptions, cold: Bool) -> LLVMCodeGenOptLevel {
        options.runsOnce || cold ? LLVMCodeGenLevelNone : LLVMCodeGenLevelAggressive
    }

    /// How the module is optimised, for the cache key: a change here must change the key.
    static func pipeline(_ options: CompileOptions, cold: Bool) -> String {
        passes(options, cold: cold) + " loop-vectorize interleave no-unroll codegen-level-\(codeGenLevel(options, cold: cold).rawValue) "
            + llvmOptions.joined(separator: " ")
    }

    func renderShard(_ f: Function, plan: KernelPlan, batchRows: BatchRows?, shard: Int, of layout: ShardLayout, options: CompileOptions, keyed: Bool) throws -> RenderedShard {
        let t0 = DispatchTime.now()
        let ctx = LLVMContextCreate()!
        // Optimisation remarks (e.g. a hinted loop LLVM chose not to vectorise) are not errors;
        // without a handler LLVM prints them to stderr on every compile.
        LLVMContextSetDiagnosticHandler(ctx, { info, _ in
            guard let info, LLVMGetDiagInfoSeverity(info) == LLVMDSError, let d = LLVMGetDiagInfoDescription(info) else { return }
            FileHandle.standardError.write(Data("kiln: LLVM error: \(String(cString: d))\n".utf8))
            LLVMDisposeMessage(d)
        }, nil)
        let module: LLVMModuleRef
        do {
            let renderer = LLVMRenderer(context: ctx, moduleName: Self.placeholder, cpu: cpu)
            let writer = KernelWriter(renderer: renderer, function: f, plan: plan, target: target, profile: options.profile)
            writer.countNonFinite = options.countNonFinite
            writer.batch = batchRows
            writer.write(entryName: Self.placeholder, shard: shard, of: layout)
            module = try renderer.finish()
        } catch {
            LLVMContextDispose(ctx)
            throw error
        }
        var key: String?
        if keyed {
            // The module's bitcode names its code: writing it takes a fraction of printing the text.
            let bitcode = LLVMWriteBitcodeToMemoryBuffer(module)!
            defer { LLVMDisposeMemoryBuffer(bitcode) }
            key = CodeCache.key([CodeCache.formatVersion, "llvm " + String(cString: kiln_llvm_version()), cpu.triple, cpu.name, cpu.features,
                                 cpu.codeModel.rawValue, Self.pipeline(options, cold: layout.isCold(shard))],
                                code: UnsafeRawBufferPointer(start: UnsafeRawPointer(LLVMGetBufferStart(bitcode)), count: LLVMGetBufferSize(bitcode)))
        }
        return RenderedShard(context: ctx, module: module, key: key, emitMs: Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6)
    }

    /// Renames the placeholder's symbols to `name`'s, in definitions and declarations alike.
    static func rename(_ module: LLVMModuleRef, to name: String) {
        func renamed(_ v: LLVMValueRef) {
            var n = 0
            guard let p = LLVMGetValueName2(v, &n) else { return }
            let old = String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
            guard old.hasPrefix(placeholder) else { return }
            let new = name + old.dropFirst(placeholder.count)
            LLVMSetValueName2(v, new, new.utf8.count)
        }
        var f = LLVMGetFirstFunction(module)
        while let fn = f { renamed(fn); f = LLVMGetNextFunction(fn) }
        var g = LLVMGetFirstGlobal(module)
        while let global = g { renamed(global); g = LLVMGetNextGlobal(global) }
        LLVMSetModuleIdentifier(module, name, name.utf8.count)
        LLVMSetSourceFileName(module, name, name.utf8.count)
    }

    /// The shard's object: from the disk cache under `key` when it is there (and `reading`), else
    /// optimised and generated from the rendered module (and stored under `key`).
    func compileShard(_ rendered: RenderedShard, name: String, cache: CodeCache?, key: String?, reading: Bool, options: CompileOptions, cold: Bool) throws -> Shard {
        if reading, let cache, let key, let bytes = cache.load(key) {
            let t0 = DispatchTime.now()
            let buffer = bytes.withUnsafeBufferPointer { b in
                b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { LLVMCreateMemoryBufferWithMemoryRangeCopy($0, b.count, name)! }
            }
            var out = Shard(object: buffer, fromDisk: true)
            out.codegenMs = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
            return out
        }
        let module = rendered.module
        Self.rename(module, to: name)
        let t1 = DispatchTime.now()

        let level = Self.codeGenLevel(options, cold: cold)
        let tm = try TargetMachines.shared.take(cpu, level: level)
        defer { TargetMachines.shared.give(tm, cpu, level: level) }
        LLVMSetTarget(module, cpu.triple)
        let layout = LLVMCreateTargetDataLayout(tm)!
        let layoutString = LLVMCopyStringRepOfTargetData(layout)!
        LLVMSetDataLayout(module, layoutString)
        LLVMDisposeMessage(layoutString)
        LLVMDisposeTargetData(layout)
        try Self.optimise(module, for: tm, passes: Self.passes(options, cold: cold))
        var llvmIR: String?, assembly: String?
        if options.keepSource {
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
        if let cache, let key {
            cache.store(key, Array(UnsafeRawBufferPointer(start: LLVMGetBufferStart(obj), count: LLVMGetBufferSize(obj))))
        }
        var out = Shard(object: obj, llvmIR: llvmIR, assembly: assembly)
        out.optimizeMs = Double(t2.uptimeNanoseconds - t1.uptimeNanoseconds) / 1e6
        out.codegenMs = Double(t3.uptimeNanoseconds - t2.uptimeNanoseconds) / 1e6
        return out
    }
}

/// Idle target machines by CPU and code generation level, reused by later compiles: making one
/// costs about a millisecond, a noticeable part of compiling a small executable. A machine serves
/// one thread at a time.
final class TargetMachines: @unchecked Sendable {
    static let shared = TargetMachines()
    private struct Kind: Hashable {
        let cpu: CPUTarget
        let level: UInt32
    }
    private let lock = NSLock()
    private var idle: [Kind: [LLVMTargetMachineRef]] = [:]
    /// Idle machines kept per kind (one per compile thread covers the shards of one compile).
    static let keep = 8

    func take(_ cpu: CPUTarget, level: LLVMCodeGenOptLevel) throws -> LLVMTargetMachineRef {
        lock.lock()
        if let tm = idle[Kind(cpu: cpu, level: level.rawValue)]?.popLast() {
            lock.unlock()
            return tm
        }
        lock.unlock()
        return try cpu.targetMachine(level: level)
    }

    func give(_ tm: LLVMTargetMachineRef, _ cpu: CPUTarget, level: LLVMCodeGenOptLevel) {
        let kind = Kind(cpu: cpu, level: level.rawValue)
        lock.lock()
        if idle[kind, default: []].count < Self.keep {
            idle[kind, default: []].append(tm)
            lock.unlock()
        } else {
            lock.unlock()
            LLVMDisposeTargetMachine(tm)
        }
    }
}
