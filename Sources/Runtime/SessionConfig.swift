import Foundation
import KilnKernels

/// Options of a session (TensorFlow's ConfigProto, the parts Kiln honours).
public struct SessionConfig: Sendable {
    /// Place an op whose requested device is absent, or cannot run it, where it would go
    /// without the request (a GPU when one is present and runs the op, else the CPU) instead of
    /// failing (TensorFlow's allow_soft_placement).
    public var allowSoftPlacement = false
    /// Print TensorFlow's line per node with the device it got (`name: (Type): /job:localhost/
    /// replica:0/task:0/device:GPU:0`, to standard error), once per node, when it first runs.
    public var logDevicePlacement = false
    /// TensorFlow's gpu_options: how the GPU backends' device memory pools behave. The first
    /// session of a process to use a GPU sets its pool (as TensorFlow's process state does).
    public var gpuOptions = GPUOptions()
    /// Whether OpenCL CPU devices (PoCL) count as GPUs, after the real ones; nil:
    /// `KILN_OPENCL_ALLOW_CPU=1`. How tests and CI get a `/gpu:0` without a GPU.
    public var openCLAllowCPU: Bool?
    /// Test hook: GPUs that compile with a native backend instead of OpenCL, so that placement
    /// and device segments can be tested without a driver. Internal: no user can set it.
    var gpuStandIns: [BackendKind]?
    /// Overrides KILN_DEBUG for this session.
    public var debugLevel: Int?
    /// The code generator (LLVM or C99); nil: `KILN_BACKEND`, LLVM when that is unset.
    public var backend: BackendKind?
    /// Fuse elementwise work into consumers' loops; off only to measure what fusion buys.
    public var fusion = true
    /// The most bytes one tensor may have: every value an executable computes (fused or not),
    /// every variable, feed and result, and the executable's arena. Larger is a resourceExhausted
    /// error naming the node and size when the run is compiled, never an allocation that the
    /// system refuses or a computation that runs for minutes. Default: `KILN_MEMORY_LIMIT`
    /// (bytes, or with a K/M/G/T suffix, powers of 1024) or else 3/4 of physical memory.
    public var memoryLimit: Int = SessionConfig.defaultMemoryLimit
    /// How many compiled executables (one per run signature: fetches, feeds, targets and feed
    /// shapes) a session keeps; past that the least recently used is dropped and compiled again
    /// if its signature comes back. Bounds memory when a session is fed many shapes.
    public var executableCacheCapacity = SessionConfig.defaultExecutableCacheCapacity
    public static let defaultExecutableCacheCapacity = 64
    /// Where compiled machine code is kept between processes, so a second run of the same
    /// program compiles nothing (`CodeCache`): nil takes `KILN_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`; "" or "off" compiles everything.
    public var codeCacheDirectory: String?
    /// Compile a run whose feeds leave their batch dimension open (`[None, ...]`) once for every
    /// batch up to the first one fed, where the graph allows it (`BatchTemplate`): a smaller
    /// batch (a training loop's short last batch) then runs on that executable instead of
    /// compiling its own. Default: on, unless `KILN_BATCH_TEMPLATES` is `0` or `off`.
    public var batchTemplates = SessionConfig.defaultBatchTemplates
    public static var defaultBatchTemplates: Bool {
        let v = ProcessInfo.processInfo.environment["KILN_BATCH_TEMPLATES"]?.lowercased()
        return v != "0" && v != "off"
    }

    /// The cache root `codeCacheDirectory` names.
    var codeCacheRoot: URL? { codeCacheDirectory.map { DiskCacheFiles.root(["KILN_CACHE_DIR": $0]) } ?? CodeCache.defaultRoot }

    public init(allowSoftPlacement: Bool = false, logDevicePlacement: Bool = false, debugLevel: Int? = nil, fusion: Bool = true,
                executableCacheCapacity: Int = SessionConfig.defaultExecutableCacheCapacity,
                memoryLimit: Int = SessionConfig.defaultMemoryLimit, backend: BackendKind? = nil,
                gpuOptions: GPUOptions = GPUOptions(), openCLAllowCPU: Bool? = nil) {
        self.backend = backend
        self.gpuOptions = gpuOptions
        self.openCLAllowCPU = openCLAllowCPU
        self.allowSoftPlacement = allowSoftPlacement
        self.logDevicePlacement = logDevicePlacement
        self.debugLevel = debugLevel
        self.fusion = fusion
        self.executableCacheCapacity = executableCacheCapacity
        self.memoryLimit = memoryLimit
    }

    /// `KILN_MEMORY_LIMIT` when set and valid, else 3/4 of physical memory.
    public static var defaultMemoryLimit: Int {
        if let s = ProcessInfo.processInfo.environment["KILN_MEMORY_LIMIT"], let n = parseByteCount(s) { return n }
        let physical = ProcessInfo.processInfo.physicalMemory
        return Int(clamping: physical / 4 * 3)
    }

    /// "1048576", "512M", "8G", "1T" (powers of 1024); nil for anything else or an overflow.
    public static func parseByteCount(_ text: String) -> Int? {
        var s = text.trimmingCharacters(in: .whitespaces).uppercased()
        if s.hasSuffix("B") { s.removeLast() }
        let scale: Int
        switch s.last {
        case "K": scale = 1 << 10
        case "M": scale = 1 << 20
        case "G": scale = 1 << 30
        case "T": scale = 1 << 40
        default: scale = 1
        }
        if scale > 1 { s.removeLast() }
        guard let n = Int(s), n > 0 else { return nil }
        let (v, o) = n.multipliedReportingOverflow(by: scale)
        return o ? nil : v
    }
}

/// TensorFlow's `GPUOptions`, the parts Kiln honours.
public struct GPUOptions: Sendable, Equatable {
    /// Grow the device pool as tensors need memory instead of reserving it up front
    /// (gpu_options.allow_growth).
    public var allowGrowth = false
    /// The fraction of each GPU's memory the pool reserves up front
    /// (gpu_options.per_process_gpu_memory_fraction); nil: TensorFlow's default (nearly all of it).
    /// Above 1 is allowed, as in TensorFlow; zero or less is an error when a GPU is first used.
    public var perProcessGpuMemoryFraction: Double?

    public init(allowGrowth: Bool = false, perProcessGpuMemoryFraction: Double? = nil) {
        self.allowGrowth = allowGrowth
        self.perProcessGpuMemoryFraction = perProcessGpuMemoryFraction
    }
}
