import KilnIR

/// Replaces an instruction by an earlier identical one (same op, attributes and operands).
/// Reads of a variable are shared only while no write of it intervenes; writes and random draws
/// are never merged.
public struct CommonSubexpressionEliminationPass: Pass {
    public init() {}
    public var name: String { "cse" }

    struct Key: Hashable {
        var op: Op
        var operands: [Int]
    }

    public func run(_ f: inout Function) throws {
        var seen: [Key: Int] = [:]
        var replace: [Int: Int] = [:]
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count)
        for var inst in f.body {
            inst.operands = inst.operands.map { replace[$0] ?? $0 }
            if inst.op == .varWrite {
                // Later reads of this variable must read again (its one read key, not a scan of
                // all keys: that would be quadratic in a graph of many writes).
                seen[Key(op: .varRead, operands: [inst.operands[0]])] = nil
                body.append(inst)
                continue
            }
            if case .random = inst.op { body.append(inst); continue }
            let key = Key(op: inst.op, operands: inst.operands)
            if let earlier = seen[key] {
                replace[inst.id] = earlier
                continue
            }
            seen[key] = inst.id
            body.append(inst)
        }
        f.body = body
        f.results = f.results.map { replace[$0] ?? $0 }
    }
}
