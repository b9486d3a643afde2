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
        let plan = KernelPlan(f, fuse: options.fuse, target: target)
        // Each value fits the limit (lowering checks), but the values live at once may not.
        if plan.arenaBytes > options.memoryLimit {
            throw KilnError.resourceExhausted("OOM when allocating the arena of '\(f.name)': \(plan.arenaBytes) bytes for the values live at once, above the memory limit of \(options.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
        }
        let jit = JIT.shared
        let name = jit.uniqueName("kiln_" + f.name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        let functions = plan.kernels.count
        let shards = max(1, min(options.shards ?? Self.shardCount(kernels: functions), max(functions, 1)))
        // Each shard has its own LLVM context, module and target machine, so shards optimise
        // and generate code on separate threads; the JIT links their objects.
        let outputs = ShardOutputs(count: shards)
        DispatchQueue.concurrentPerform(iterations: shards) { s in
            outputs.set(s, Result { try compileShard(f, plan: plan, name: name, shard: s, of: shards, options: options) })
        }
        let built: [Shard]
        do { built = try outputs.results.map { try $0!.get() } } catch {
            for case .success(let shard)? in outputs.results { LLVMDisposeMemoryBuffer(shard.object) }
            throw error
        }
        var stats = CompileStats()
        stats.shards = shards
        stats.emitMs = built.map(\.emitMs).max() ?? 0
        stats.optimizeMs = built.map(\.optimizeMs).max() ?? 0
        if options.keepSource { stats.source = built.compactMap(\.llvmIR).joined(separator: "\n") }
        if options.keepAssembly { stats.assembly = built.compactMap(\.assembly).joined(separator: "\n") }
        let t0 = DispatchTime.now()
        let (addr, tracker) = try jit.add(objects: built.map(\.object), symbol: name)
        stats.loadMs = (built.map(\.codegenMs).max() ?? 0) + Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        return try NativeExecutable(entry: unsafeBitCast(UInt(addr), to: NativeExecutable.Entry.self), function: f, plan: plan, stats: stats,
                                    backendName: self.name, profile: options.profile, countNonFinite: options.countNonFinite,
                                    release: { jit.remove(tracker) })
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

    struct Shard {
        var object: LLVMMemoryBufferRef
        var llvmIR: String?
        var assembly: String?
        var emitMs = 0.0, optimizeMs = 0.0, codegenMs = 0.0
    }

    func compileShard(_ f: Function, plan: KernelPlan, name: String, shard: Int, of shards: Int, options: CompileOptions) throws -> Shard {
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
        let renderer = LLVMRenderer(context: ctx, moduleName: shards > 1 ? "\(name)_\(shard)" : name, cpu: cpu)
        let writer = KernelWriter(renderer: renderer, function: f, plan: plan, target: target, profile: options.profile)
        writer.countNonFinite = options.countNonFinite
        writer.write(entryName: name, shard: shard, of: shards)
        let module = try renderer.finish()
        defer { LLVMDisposeModule(module) }
        let t1 = DispatchTime.now()

        let tm = try cpu.targetMachine()
        defer { LLVMDisposeTargetMachine(tm) }
        LLVMSetTarget(module, cpu.triple)
        let layout = LLVMCreateTargetDataLayout(tm)!
        let layoutString = LLVMCopyStringRepOfTargetData(layout)!
        LLVMSetDataLayout(module, layoutString)
        LLVMDisposeMessage(layoutString)
        LLVMDisposeTargetData(layout)
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
        var out = Shard(object: obj, llvmIR: llvmIR, assembly: assembly)
        out.emitMs = Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        out.optimizeMs = Double(t2.uptimeNanoseconds - t1.uptimeNanoseconds) / 1e6
        out.codegenMs = Double(t3.uptimeNanoseconds - t2.uptimeNanoseconds) / 1e6
        return out
    }
}
