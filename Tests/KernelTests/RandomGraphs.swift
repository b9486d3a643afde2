import KilnIR
import KilnPasses

/// Seeded random functions for checking fusion against the reference evaluator: elementwise
/// ops, broadcasts, reductions, pads, concats, slices, transposes and reshapes, gathers (fed
/// indices, some out of range, and checked ones), matrix products, selects, casts through other
/// dtypes, counter-based random draws, and reads and writes of a variable (reads used after a
/// later write, writes of values that read the variable). Values stay in a small range, so a
/// relative tolerance means the same thing everywhere; random draws are also fetched and
/// compared bit for bit.
struct RandomGraph {
    var function: Function
    var inputs: [Tensor]
    /// Results that are random draws (compared exactly).
    var exactResults: Set<Int>
    /// The kinds of op the function still has after the standard passes (`dot`, `gather`, ...).
    var kinds: Set<String>

    struct RNG {
        var source: SplitMix64
        mutating func next() -> UInt64 { source.next() }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
        mutating func chance(_ percent: Int) -> Bool { int(100) < percent }
    }

    /// The kinds every run of the generator must cover (see `kinds`).
    static let coveredKinds: Set<String> = ["gather", "check", "dot", "select", "cast", "random", "var.write", "var.read", "reduce",
                                            "pad", "concat", "slice", "transpose", "reshape", "broadcast"]

    static func kind(_ op: Op) -> String {
        switch op {
        case .reduce: return "reduce"
        case .pad: return "pad"
        case .random: return "random"
        case .check: return "check"
        default: return op.mnemonic
        }
    }

    init(seed: UInt64) throws {
        var r = RNG(source: SplitMix64(seed: seed))
        var b = FunctionBuilder(name: "g\(seed)")
        let shapes = [[r.int(4) + 2, r.int(5) + 2], [r.int(3) + 2, r.int(4) + 3]]
        let indexType: DType = r.pick([.int32, .int64])
        let indexCount = r.int(4) + 2
        var pool = [b.addParam("a", kind: .feed, type: TensorType(.float32, shapes[0])),
                    b.addParam("b", kind: .feed, type: TensorType(.float32, shapes[1]))]
        // Gather indices: any value in [-1, 7) (beyond a dimension: the gather gives 0), and
        // ones in [0, 2) behind a check (used on dimensions of at least 2, so the check passes).
        let wild = b.addParam("i", kind: .feed, type: TensorType(indexType, [indexCount]))
        let tame = b.addParam("j", kind: .feed, type: TensorType(indexType, [indexCount]))
        let counter = b.addParam("counter", kind: .feed, type: TensorType(.int64, []))
        let variableType = TensorType(.float32, shapes[r.int(2)])
        let variable = b.addParam("v", kind: .variable, type: variableType)
        pool.append(try b.emit(.varRead, [variable]))

        let inputs = [
            try Self.values(shapes[0], seed), try Self.values(shapes[1], seed &+ 1),
            try Tensor(literal: (0..<indexCount).map { _ in Int64(r.int(8)) - 1 }, dtype: indexType),
            try Tensor(literal: (0..<indexCount).map { _ in Int64(r.int(2)) }, dtype: indexType),
            Tensor(Int64(r.int(5))),
            try Self.values(variableType.shape, seed &+ 2),
        ]
        var draws: [Int] = []
        var writes = 0

        /// `value` broadcast to `t`'s shape.
        func fill(_ value: Double, _ t: TensorType) throws -> Int { try b.broadcast(b.scalar(value, .float32), to: t.shape) }

        for _ in 0..<(r.int(12) + 6) {
            let x = r.pick(pool)
            let t = b.type(of: x)
            let sameType = pool.filter { b.type(of: $0) == t }
            var v: Int
            switch r.int(17) {
            case 0:
                v = try b.emit(.unary(r.pick([.tanh, .sigmoid, .abs, .neg, .exp])), [x])
                if case .unary(.exp) = b.function.body.last!.op { v = try b.emit(.unary(.tanh), [v]) }
            case 1:
                v = try b.emit(.binary(r.pick([.add, .sub, .mul, .max, .min])), [x, r.pick(sameType)])
            case 2:
                v = try b.emit(.binary(r.pick([.add, .mul, .max])), [x, try fill(Double(r.int(5)) * 0.25 - 0.5, t)])
            case 3 where t.rank == 2:
                v = try b.emit(.transpose(perm: [1, 0]), [x])
            case 4:
                let lo = t.shape.map { _ in r.int(2) }, hi = t.shape.map { _ in r.int(2) }
                let mode: PadMode = t.shape.allSatisfy({ $0 >= 3 }) ? r.pick(PadMode.allCases) : .constant
                v = try b.emit(.pad(low: lo, high: hi, mode: mode), [x, b.scalar(0.5, .float32)])
            case 5 where t.shape.allSatisfy({ $0 >= 2 }):
                v = try b.emit(.slice(start: t.shape.map { _ in r.int(2) }, strides: t.shape.map { _ in 1 }, shape: t.shape.map { $0 - 1 }), [x])
            case 6 where t.rank == 2:
                v = try b.emit(.concat(axis: r.int(2)), [x, r.pick(sameType)])
            case 7 where t.rank == 2:
                let axis = r.int(2)
                let red = try b.emit(.reduce(r.pick([.sum, .max, .min]), axes: [axis]), [x])
                // Broadcast back so later ops keep a matrix to work on.
                v = try b.emit(.broadcast(shape: t.shape, dims: [1 - axis]), [red])
            case 8 where t.rank == 2:
                v = try b.emit(.reshape(shape: [t.shape[1], t.shape[0]]), [x])
            case 9 where t.rank == 2:
                // Rows or columns picked by fed indices; a checked gather reads its rows through the check.
                let axis = r.int(2)
                let indices = r.chance(50) || t.shape[axis] < 2 ? wild : try b.emit(.check(Check(.index(bounds: [t.shape[axis]]), node: "g\(seed)/gather",
                                                                              opType: "GatherV2", message: "indices{index} = {value} is not in [0, \(t.shape[axis]))")), [tame])
                v = try b.emit(.gather(axis: axis, batchDims: 0), [x, indices])
            case 10 where t.rank == 2:
                // A product with any value whose shape fits (x itself always does, transposed),
                // scaled by 1/k so values stay small.
                var fits: [(Int, Bool, Bool)] = []
                for y in pool where b.type(of: y).rank == 2 {
                    let s = b.type(of: y).shape
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        let k = ta ? t.shape[0] : t.shape[1]
                        if (tb ? s[1] : s[0]) == k { fits.append((y, ta, tb)) }
                    }
                }
                let (y, ta, tb) = r.pick(fits)
                let d = try b.emit(.dot(transposeA: ta, transposeB: tb), [x, y])
                let k = ta ? t.shape[0] : t.shape[1]
                v = try b.emit(.binary(.mul), [d, try fill(1 / Double(k), b.type(of: d))])
            case 11:
                let other = r.pick(sameType)
                let threshold = try fill(r.pick([-0.3, 0.1, 0.35]), t)
                let cond = try b.emit(.compare(r.pick(CompareOp.allCases)), r.chance(50) ? [x, threshold] : [x, other])
                v = try b.emit(.select, r.chance(50) ? [cond, x, other] : [cond, other, try b.emit(.unary(.neg), [x])])
            case 12:
                // Through another dtype and back: truncation to integers (of 4x, so values vary),
                // saturation to uint8, a float64 computation, a bool.
                switch r.int(4) {
                case 0:
                    let scaled = try b.emit(.binary(.mul), [x, try fill(4, t)])
                    v = try b.emit(.cast(.float32), [try b.emit(.cast(r.pick([.int32, .int64])), [scaled])])
                case 1:
                    let scaled = try b.emit(.binary(.mul), [x, try fill(100, t)])
                    v = try b.emit(.cast(.float32), [try b.emit(.cast(.uint8), [scaled])])
                case 2:
                    let wide = try b.emit(.unary(r.pick([.tanh, .sigmoid, .neg])), [try b.emit(.cast(.float64), [x])])
                    v = try b.emit(.cast(.float32), [wide])
                default:
                    v = try b.emit(.cast(.float32), [try b.emit(.cast(.bool), [x])])
                }
            case 13:
                let kind = r.pick([RandomKind.uniform, .normal, .truncatedNormal])
                let draw = try b.emit(.random(kind, dtype: .float32, shape: t.shape, seed: r.next() >> 1), [counter])
                if r.chance(50) { draws.append(draw) }
                v = try b.emit(.binary(r.pick([.add, .mul])), [x, draw])
            case 14 where r.chance(30):
                // 64 random bits, fetched and compared exactly.
                draws.append(try b.emit(.random(.bits, dtype: .int64, shape: t.shape, seed: r.next() >> 1), [counter]))
                v = try b.emit(.unary(.tanh), [x])
            case 15:
                v = try b.emit(.varRead, [variable])
            case 16 where writes < 2:
                // Later reads see the new value; earlier ones still hold the old.
                let values = pool.filter { b.type(of: $0) == variableType }
                if values.isEmpty { continue }
                try b.emit(.varWrite, [variable, r.pick(values)])
                writes += 1
                if r.chance(50) { continue }
                v = try b.emit(.varRead, [variable])
            default:
                v = try b.emit(.unary(.tanh), [x])
            }
            pool.append(v)
        }
        // Fetch the last value and one other, so some values have two users, about half the
        // values nothing uses (so most of the graph survives dead-code elimination), and the draws.
        let used = Set(b.function.body.flatMap(\.operands))
        let unused = pool.dropLast().filter { !used.contains($0) && !b.function.isParam($0) && $0 != pool[pool.count / 2] && r.chance(50) }
        let results = [pool.last!, pool[pool.count / 2]] + unused + draws
        b.setResults(results)
        var f = b.function
        try PassManager.standard().run(&f)
        function = f
        exactResults = Set((results.count - draws.count)..<results.count)
        kinds = Set(f.body.map { Self.kind($0.op) })
        self.inputs = inputs
    }

    /// Multiples of 1/8 in [-1, 1), different for every seed.
    static func values(_ shape: [Int], _ seed: UInt64) throws -> Tensor {
        try Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { Float(($0 * 29 + Int(seed % 1000)) % 17) / 8 - 1 })
    }
}
