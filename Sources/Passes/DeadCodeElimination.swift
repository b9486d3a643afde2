import KilnIR

/// Removes instructions whose values are never used, keeping everything with side effects.
public struct DeadCodeEliminationPass: Pass {
    public init() {}
    public var name: String { "dce" }

    public func run(_ f: inout Function) throws {
        var live = Set(f.results)
        for inst in f.body.reversed() where inst.op.hasSideEffects || live.contains(inst.id) {
            live.insert(inst.id)
            live.formUnion(inst.operands)
        }
        f.body.removeAll { !live.contains($0.id) }
    }
}
