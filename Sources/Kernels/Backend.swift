import Foundation
import KilnIR
import KilnPasses

/// Compiles IR functions (already through the pass pipeline) for one target. Every backend
/// renders the same plan with the same `KernelWriter`; they differ in the renderer and in how
/// rendered code becomes callable (LLVM's JIT, the system C compiler and `dlopen`, OpenCL).
public protocol Backend: Sendable {
    /// `llvm` or `c`, as `KILN_BACKEND` spells it.
    var name: String { get }
    /// What the scheduler may assume about the target (vector width, cache blocks, pool).
    var target: TargetDescription { get }
    /// The most bytes one tensor may take on the target, and what sets it (an OpenCL device's
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE), so lowering names the node whose value is too large;
    /// nil where only memory limits it.
    var bufferLimit: (bytes: Int, reason: String)? { get }
    func compile(_ f: Function, options: CompileOptions) throws -> any Executable
}

extension Backend {
    public var bufferLimit: (bytes: Int, reason: String)? { nil }
}

/// What to keep and do while compiling (`KILN_DEBUG` levels, limits).
public struct CompileOptions: Sendable {
    /// Keep each kernel as rendered for its target (KILN_DEBUG=4): LLVM IR after optimisation, C source.
    public var keepSource = false
    /// Keep the assembly (KILN_DEBUG=5), where the backend has it.
    public var keepAssembly = false
    /// Time every kernel of every run (KILN_DEBUG=2); costs two clock reads per kernel.
    public var profile = false
    /// Fuse elementwise producers into their consumers (off only to measure what fusion buys).
    public var fuse = true
    /// Count each kernel's non-finite outputs into `NativeExecutable.nonFiniteCounts` (the
    /// debugger's build; native backends).
    public var countNonFinite = false
    /// Modules compiled in parallel; nil: the backend decides.
    public var shards: Int?
    /// The largest arena the executable may have, in bytes (the session's memory limit).
    public var memoryLimit = Int.max
    /// The code initialises state and is expected to run once (a run with no feeds and no
    /// fetches that reads no variable before writing it: `globalVariablesInitializer()`): the backend may
    /// optimise it less, as full strength costs more to compile than it saves in one run.
    public var runsOnce = false
    /// Where compiled machine code is kept between processes (`CodeCache`, one directory per
    /// backend under it); nil compiles everything. Default: `KILN_CACHE_DIR`, else the user's
    /// cache directory (`DiskCacheFiles.root`).
    public var codeCacheRoot: URL? = CodeCache.defaultRoot
    /// The function stands for every batch up to the template's (`BatchTemplate`): a native
    /// backend compiles it to take the batch at run time when its kernels can
    /// (`Executable.batchRows`), else for the template's batch alone (`CompileStats.batchRefusal`).
    public var batch: BatchTemplate?

    public init(keepSource: Bool = false, keepAssembly: Bool = false, profile: Bool = false, fuse: Bool = true, shards: Int? = nil,
                memoryLimit: Int = .max) {
        self.keepSource = keepSource
        self.keepAssembly = keepAssembly
        self.profile = profile
        self.fuse = fuse
        self.shards = shards
        self.memoryLimit = memoryLimit
    }
}

/// How long compiling took, by phase, and what was kept.
public struct CompileStats: Sendable {
    /// Planning and rendering (KernelWriter through the renderer).
    public var emitMs = 0.0
    /// The target compiler's optimisation (LLVM's pipeline; for C, the C compiler as a whole).
    public var optimizeMs = 0.0
    /// Machine code and loading it (LLVM code generation and JIT linking; dlopen).
    public var loadMs = 0.0
    /// Modules compiled in parallel (the phase times are the slowest's).
    public var shards = 1
    /// Each module's optimisation and code generation, in milliseconds (how evenly the kernels
    /// were shared out); empty when nothing was compiled.
    public var moduleMs: [Double] = []
    /// Of those modules (or the one C file): how many went through the compiler, how many came
    /// from the disk cache (`CodeCache`), and how many were linked in this process already by
    /// another executable of the same code.
    public var objectsCompiled = 0, objectsFromDisk = 0, objectsShared = 0
    /// Compiled with the lighter pipeline for code that runs once (`CompileOptions.runsOnce`).
    public var optimisedForOneRun = false
    /// Why a batch template (`CompileOptions.batch`) was compiled for its batch alone.
    public var batchRefusal: String?
    /// Nothing was compiled: every object came from a cache.
    public var compiledNothing: Bool { objectsCompiled == 0 && objectsFromDisk + objectsShared > 0 }
    public var totalMs: Double { emitMs + optimizeMs + loadMs }
    /// Each kernel as rendered for its target (KILN_DEBUG=4).
    public var source: String?
    public var assembly: String?
    public init() {}
}

/// Compiled code for one IR function and everything it needs to run. Runs are serialised per
/// executable (they share its arena).
public protocol Executable: AnyObject, Sendable {
    /// The backend that compiled it (`llvm`, `c`).
    var backendName: String { get }
    var function: Function { get }
    var plan: KernelPlan { get }
    var stats: CompileStats { get }
    var resultTypes: [TensorType] { get }
    var arenaBytes: Int { get }
    /// Total nanoseconds per kernel (and result copies last) over all profiled runs.
    var kernelNanoseconds: [UInt64] { get }
    var profiledRuns: Int { get }
    /// Runs once. `inputs` holds one pointer per parameter (feeds and variables, in order),
    /// `outputs` one per result, each to a buffer of the result's type. Throws the error of the
    /// first check that failed; later kernels then did not run and the outputs are undefined.
    func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws
    /// Compiled from a batch template to take the batch at run time: every batch up to the
    /// template's runs through `run(inputs:outputs:batch:)`.
    var batchRows: BatchRows? { get }
    /// Runs at batch `n` (at most `batchRows.template.batch`); the outputs are buffers of
    /// `resultTypes(batch: n)`.
    func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, batch n: Int) throws
}

extension Executable {
    public var batchRows: BatchRows? { nil }

    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, batch n: Int) throws {
        precondition(batchRows == nil, "\(backendName) executable with batch rows runs through its own run(inputs:outputs:batch:)")
        try run(inputs: inputs, outputs: outputs)
    }

    /// The results' types at batch `n` (nil: as compiled).
    public func resultTypes(batch n: Int?) -> [TensorType] {
        guard let n, let t = batchRows?.template, n != t.batch else { return resultTypes }
        return zip(function.results, resultTypes).map { t.type($1, of: $0, batch: n) }
    }
}
