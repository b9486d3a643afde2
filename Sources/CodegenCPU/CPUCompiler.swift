import CLLVM
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
    public init(keepLLVMIR: Bool = false, keepAssembly: Bool = false, profile: Bool = false, fuse: Bool = true) {
        self.keepLLVMIR = keepLLVMIR
        self.keepAssembly = keepAssembly
        self.profile = profile
        self.fuse = fuse
    }
}

public struct CPUCompileStats: Sendable {
    public var emitMs = 0.0
    public var optimizeMs = 0.0
    public var jitMs = 0.0
    public var totalMs: Double { emitMs + optimizeMs + jitMs }
    public var llvmIR: String?
    public var assembly: String?
}

/// Compiles one IR function (already through the pass pipeline) to native code for this CPU.
public enum CPUCompiler {
    public static func compile(_ f: Function, options: CPUCompileOptions = CPUCompileOptions()) throws -> CPUExecutable {
        let plan = KernelPlan(f, fuse: options.fuse)
        var stats = CPUCompileStats()
        let jit = JIT.shared
        let t0 = DispatchTime.now()
        let tsc = LLVMOrcCreateNewThreadSafeContext()!
        defer { LLVMOrcDisposeThreadSafeContext(tsc) }
        let ctx = LLVMOrcThreadSafeContextGetContext(tsc)!
        // Optimisation remarks (e.g. a hinted loop LLVM chose not to vectorise) are not errors;
        // without a handler LLVM prints them to stderr on every compile.
        LLVMContextSetDiagnosticHandler(ctx, { info, _ in
            guard let info, LLVMGetDiagInfoSeverity(info) == LLVMDSError, let d = LLVMGetDiagInfoDescription(info) else { return }
            FileHandle.standardError.write(Data("kiln: LLVM error: \(String(cString: d))\n".utf8))
            LLVMDisposeMessage(d)
        }, nil)
        let name = jit.uniqueName("kiln_" + f.name.filter { $0.isLetter || $0.isNumber || $0 == "_" })
        let emitter = Emitter(context: ctx, moduleName: name, function: f, plan: plan)
        let profileSlots: UnsafeMutablePointer<UInt64>? = options.profile ? .allocate(capacity: plan.kernels.count + 2) : nil
        emitter.profileSlots = profileSlots
        let module = try emitter.emit(entryName: name)
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
        if options.keepLLVMIR {
            let s = LLVMPrintModuleToString(module)!
            stats.llvmIR = String(cString: s)
            LLVMDisposeMessage(s)
        }
        if options.keepAssembly {
            // Emitting code mutates the module, so emit from a clone.
            let clone = LLVMCloneModule(module)
            var buf: LLVMMemoryBufferRef?
            var err: UnsafeMutablePointer<CChar>?
            if LLVMTargetMachineEmitToMemoryBuffer(tm, clone, LLVMAssemblyFile, &err, &buf) == 0, let buf {
                stats.assembly = String(decoding: UnsafeRawBufferPointer(start: LLVMGetBufferStart(buf), count: LLVMGetBufferSize(buf)), as: UTF8.self)
                LLVMDisposeMemoryBuffer(buf)
            } else { LLVMDisposeMessage(err) }
            LLVMDisposeModule(clone)
        }
        let t2 = DispatchTime.now()

        let (addr, tracker) = try jit.add(module: module, context: tsc, symbol: name)
        let t3 = DispatchTime.now()
        stats.emitMs = Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        stats.optimizeMs = Double(t2.uptimeNanoseconds - t1.uptimeNanoseconds) / 1e6
        stats.jitMs = Double(t3.uptimeNanoseconds - t2.uptimeNanoseconds) / 1e6
        return CPUExecutable(function: f, plan: plan, address: addr, tracker: tracker, stats: stats, profileSlots: profileSlots)
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
         profileSlots: UnsafeMutablePointer<UInt64>?) {
        self.profileSlots = profileSlots
        self.function = function
        self.plan = plan
        self.stats = stats
        self.tracker = tracker
        let types = function.typeTable()
        resultTypes = function.results.map { types[$0]! }
        entry = unsafeBitCast(UInt(address), to: Entry.self)
        arena = TensorBuffer(byteCount: plan.arenaBytes)
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
    /// `outputs` one per result, each to a buffer of the result's type.
    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) {
        pthread_mutex_lock(&lock)
        entry(inputs, outputs, arena.pointer, constantTable)
        if let slots = profileSlots {
            let n = plan.kernels.count + (plan.resultCopies.isEmpty ? 0 : 1)
            if kernelNanoseconds.isEmpty { kernelNanoseconds = Array(repeating: 0, count: n) }
            for k in 0..<n { kernelNanoseconds[k] += slots[k + 1] &- slots[k] }
            profiledRuns += 1
        }
        pthread_mutex_unlock(&lock)
    }

    /// Convenience for tests and tools: runs with host tensors and returns new result tensors;
    /// variable parameters are updated in place in `parameters`.
    public func run(_ parameters: inout [Tensor]) -> [Tensor] {
        precondition(parameters.count == function.params.count)
        var inPtrs: [UnsafeMutableRawPointer?] = []
        for k in parameters.indices {
            if function.params[k].kind == .variable {
                parameters[k].withUnsafeMutableBytes { inPtrs.append($0.baseAddress) }
            } else {
                inPtrs.append(parameters[k].buffer.pointer)
            }
        }
        let results = resultTypes.map { Tensor(dtype: $0.dtype, shape: $0.shape, buffer: TensorBuffer(byteCount: $0.byteCount)) }
        var outPtrs: [UnsafeMutableRawPointer?] = results.map { $0.buffer.pointer }
        withExtendedLifetime(parameters) {
            run(inputs: &inPtrs, outputs: &outPtrs)
        }
        return results
    }
}
