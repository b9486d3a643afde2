import KilnIR

/// A transformation of one IR function.
public protocol Pass {
    var name: String { get }
    func run(_ f: inout Function) throws
}

/// Runs passes in order, optionally reporting the IR after each one (KILN_DEBUG=3).
public struct PassManager {
    public var passes: [any Pass]
    public var afterEach: ((String, Function) -> Void)?

    public init(_ passes: [any Pass], afterEach: ((String, Function) -> Void)? = nil) {
        self.passes = passes
        self.afterEach = afterEach
    }

    /// The pipeline every executable goes through, in this order and for these reasons.
    public static func standard(afterEach: ((String, Function) -> Void)? = nil) -> PassManager {
        PassManager([
            ShapeInferencePass(),    // first: fills types parsed IR may omit, rejects wrong ones
            VerifyPass(),            // lowering bugs must surface before any pass trusts the IR
            HalfPrecisionPass(),     // before folding, so folded and compiled half ops round alike
            ConstantFoldingPass(),   // needs types; evaluates constant-only subgraphs once, at compile time
            BatchNormFoldingPass(),  // after folding, which makes a frozen batch norm's scale a constant
            AlgebraicSimplificationPass(), // needs types; drops ops that return their operand, so CSE sees through them
            BroadcastSinkingPass(),  // after simplification, so identity broadcasts are gone; before CSE, which merges what it repeats
            CommonSubexpressionEliminationPass(), // after folding, so equal constants and their users merge
            DeadCodeEliminationPass(), // after folding, whose inputs are now dead
            VerifyPass(),            // every pass must leave valid IR for codegen
        ], afterEach: afterEach)
    }

    public func run(_ f: inout Function) throws {
        for p in passes {
            try p.run(&f)
            afterEach?(p.name, f)
        }
    }
}

public struct VerifyPass: Pass {
    public init() {}
    public var name: String { "verify" }
    public func run(_ f: inout Function) throws { try Verifier.verify(f) }
}
