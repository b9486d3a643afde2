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

    public init(allowSoftPlacement: Bool = false, logDevicePlacement: Bool = false, debugLevel: Int? = nil, fusion: Bool = true) {
        self.allowSoftPlacement = allowSoftPlacement
        self.logDevicePlacement = logDevicePlacement
        self.debugLevel = debugLevel
        self.fusion = fusion
    }
}
