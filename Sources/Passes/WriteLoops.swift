import KilnIR

/// Variable writes sharing loops (`KernelPlan.Kernel.writes`), the last planning step with
/// fusion on. A write joins the nearest earlier loop of writes of its shape that it can reach:
/// it moves back past kernels it does not depend on, carrying along (to just before that loop)
/// up to `writesCarriedLimit` write kernels it does depend on, where those may move too. Where
/// there is no such loop nothing moves. An Adam step's m, v and variable updates become one
/// loop, and a moving average of the variable joins it, the step counter it reads (written
/// after every variable's update) carried before them.
extension KernelPlan {
    /// How many kernels back a write looks for a loop to join.
    static let writeHoistLimit = 64
    /// How many write kernels a write may carry along.
    static let writesCarriedLimit = 2

    mutating func shareWriteLoops(_ fusion: Fusion) {
        // With fewer than two write kernels there is nothing to share: no footprints needed.
        guard kernels.lazy.filter({ if case .writes = $0 { return true } else { return false } }).prefix(2).count == 2 else { return }
        var placed: [Kernel] = [], footprints: [Fusion.Footprint] = []
        for k in kernels {
            let mine = fusion.footprint(of: k)
            guard case .writes(let ws) = k, let (g, carried) = loopToJoin(ws, mine, placed, footprints, fusion) else {
                placed.append(k)
                footprints.append(mine)
                continue
            }
            // Carried kernels keep their order and go just before the loop (all come after it).
            let moving = carried.sorted()
            let kernelsMoving = moving.map { placed[$0] }, footprintsMoving = moving.map { footprints[$0] }
            for n in moving.reversed() {
                placed.remove(at: n)
                footprints.remove(at: n)
            }
            placed.insert(contentsOf: kernelsMoving, at: g)
            footprints.insert(contentsOf: footprintsMoving, at: g)
            let at = g + moving.count
            guard case .writes(let group) = placed[at] else { preconditionFailure("joined \(placed[at]), not writes") }
            placed[at] = .writes(group + ws)
            footprints[at].add(mine)
            fused[group[0].write, default: []] += ws.flatMap { [$0.write] + (fused.removeValue(forKey: $0.write) ?? []) }
        }
        kernels = placed
    }

    /// The index of the loop of writes `ws` (footprint `mine`) can join among `placed`, and the
    /// write kernels it must carry before that loop; nil when there is none within reach.
    private func loopToJoin(_ ws: [VariableWrite], _ mine: Fusion.Footprint, _ placed: [Kernel], _ footprints: [Fusion.Footprint],
                            _ fusion: Fusion) -> (Int, [Int])? {
        var carried: [Int] = []
        for n in placed.indices.reversed() where placed.count - n <= Self.writeHoistLimit {
            let carriedPass = carried.allSatisfy { footprints[$0].commutes(with: footprints[n]) }
            guard case .writes(let group) = placed[n] else {
                if carriedPass && mine.commutes(with: footprints[n]) { continue }
                return nil
            }
            if carriedPass && fusion.sharesWriteLoop(group + ws) { return (n, carried) }
            if carriedPass && mine.commutes(with: footprints[n]) { continue }
            // A write this one depends on moves along, keeping its place before this one.
            guard carried.count < Self.writesCarriedLimit else { return nil }
            carried.append(n)
        }
        return nil
    }
}

extension Fusion {
    /// What a kernel touches, for moving writes past it: the variables it reads in place and
    /// writes, the buffers it reads and the values it leaves in buffers, and whether it may
    /// record a fault (evaluates a check; nothing moves before it, so a failed run writes only
    /// what the kernels before the check write).
    struct Footprint {
        var readVariables = Set<Int>(), writtenVariables = Set<Int>()
        var readValues = Set<Int>(), producedValues = Set<Int>()
        var faults = false

        mutating func add(_ other: Footprint) {
            readVariables.formUnion(other.readVariables)
            writtenVariables.formUnion(other.writtenVariables)
            readValues.formUnion(other.readValues)
            producedValues.formUnion(other.producedValues)
            faults = faults || other.faults
        }

        /// Whether this kernel (a write) computes the same when run before `earlier` instead of
        /// after it.
        func commutes(with earlier: Footprint) -> Bool {
            !earlier.faults && readValues.isDisjoint(with: earlier.producedValues)
                && writtenVariables.isDisjoint(with: earlier.readVariables) && writtenVariables.isDisjoint(with: earlier.writtenVariables)
                && readVariables.isDisjoint(with: earlier.writtenVariables)
        }
    }

    func footprint(of k: KernelPlan.Kernel) -> Footprint {
        var fp = Footprint()
        let roots: [Int]
        switch k {
        case .writes(let ws):
            roots = ws.map(\.write)
            fp.writtenVariables = Set(ws.map(\.variable))
        case .accumulatedProduct(let w, let variable, _, _):
            roots = [w]
            fp.writtenVariables = [variable]
        case .resultCopies:
            // Always last; nothing moves past it.
            fp.faults = true
            return fp
        default:
            roots = k.value.map { [$0] } ?? []
            fp.producedValues = Set(roots)
        }
        for root in roots {
            var nodes = [root]
            inlineTree(root) { v, _ in nodes.append(v) }
            for n in nodes {
                guard let i = inst[n] else { continue }
                switch i.op {
                case .varRead:
                    fp.readVariables.insert(i.operands[0])
                    continue
                case .check: fp.faults = true
                default: break
                }
                for o in i.operands where materialized[o] != nil { fp.readValues.insert(o) }
            }
        }
        return fp
    }

    /// Whether variable writes `group` (in plan order, each movable to the first one's place) can
    /// share one loop, each written in order at every element: their values have one shape,
    /// and no write's fused expression reads a variable the group writes through an index map (at
    /// another element, which the shared loop may already have overwritten, or not yet). Reads at
    /// the same element see what the separate loops would: earlier writes' values, later writes'
    /// old ones (reads a later write would clobber first are copies, `copyReadsBeforeLaterWrites`).
    func sharesWriteLoop(_ group: [KernelPlan.VariableWrite]) -> Bool {
        guard group.count <= KernelPlan.writesPerLoopLimit, let shape = types[group[0].value]?.shape,
              group.allSatisfy({ types[$0.value]?.shape == shape }) else { return false }
        let written = Set(group.map(\.variable))
        var remappedRead = false
        for w in group {
            inlineTree(w.write) { v, remapped in
                if remapped, let i = inst[v], i.op == .varRead, written.contains(i.operands[0]) { remappedRead = true }
            }
            if remappedRead { return false }
        }
        return true
    }
}
