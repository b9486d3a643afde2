/// Options of a session (TensorFlow's ConfigProto, the parts Kiln honours).
public struct SessionConfig: Sendable {
    /// Place ops whose device is unavailable on the CPU instead of failing.
    public var allowSoftPlacement = false
    /// Log each op's device when an executable is compiled.
    public var logDevicePlacement = false
    /// Overrides KILN_DEBUG for this session.
    public var debugLevel: Int?
    /// Fuse elementwise work into consumers' loops; off only to measure what fusion buys.
    public var fusion = true
    /// How many compiled executables (one per run signature: fetches, feeds, targets and feed
    /// shapes) a session keeps; past that the least recently used is dropped and compiled again
    /// if its signature comes back. Bounds memory when a session is fed many shapes.
    public var executableCacheCapacity = SessionConfig.defaultExecutableCacheCapacity
    public static let defaultExecutableCacheCapacity = 64

    public init(allowSoftPlacement: Bool = false, logDevicePlacement: Bool = false, debugLevel: Int? = nil, fusion: Bool = true,
                executableCacheCapacity: Int = SessionConfig.defaultExecutableCacheCapacity) {
        self.allowSoftPlacement = allowSoftPlacement
        self.logDevicePlacement = logDevicePlacement
        self.debugLevel = debugLevel
        self.fusion = fusion
        self.executableCacheCapacity = executableCacheCapacity
    }
}
