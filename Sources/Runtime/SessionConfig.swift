import Foundation

/// Options of a session (TensorFlow's ConfigProto, the parts Kiln honours).
public struct SessionConfig: Sendable {
    /// Place ops whose device is unavailable on the CPU instead of failing.
    public var allowSoftPlacement = false
    /// Log each op's device when an executable is compiled.
    public var logDevicePlacement = false
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

    public init(allowSoftPlacement: Bool = false, logDevicePlacement: Bool = false, debugLevel: Int? = nil, fusion: Bool = true,
                executableCacheCapacity: Int = SessionConfig.defaultExecutableCacheCapacity,
                memoryLimit: Int = SessionConfig.defaultMemoryLimit, backend: BackendKind? = nil) {
        self.backend = backend
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
