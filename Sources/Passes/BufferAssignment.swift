import KilnIR

/// The last planning step: once fusion is settled, every value's storage, the kernels in order
/// with the scheduler's tactics, each kernel's fusion group, and the arena (buffers reused once
/// their last reader has run).
extension KernelPlan {
    mutating func assignBuffers(_ fusion: Fusion, _ scheduler: Scheduler) {
        let f = fusion.f, position = fusion.position, materialized = fusion.materialized
        views = fusion.views
        for (i, p) in f.params.enumerated() {
            storage[i] = p.kind == .feed ? .param(i) : .variable(param: i)
        }
        for i in f.body {
            if case .constant(let t) = i.op, t.elementCount > Self.immediateConstantLimit {
                storage[i.id] = .constant(constants.count)
                constants.append(t)
            }
        }

        var resultSlot: [Int: Int] = [:], copies: [ResultCopy] = []
        for (k, r) in f.results.enumerated() {
            if resultSlot[r] == nil, materialized[r] != nil { resultSlot[r] = k } else { copies.append(ResultCopy(result: k, value: r)) }
        }
        let lastUse = lastUses(fusion)

        // Free buffers sorted by offset (first fit); live ones filed under the position of their
        // last reader, so each kernel releases exactly those that ended before it.
        var free: [(offset: Int, size: Int)] = []
        var endingAt: [Int: [(offset: Int, size: Int)]] = [:]
        var top = 0
        for i in f.body {
            let p = position[i.id]!
            // Release buffers whose last reader ran before this kernel.
            for b in endingAt.removeValue(forKey: p - 1) ?? [] {
                var lo = 0, hi = free.count
                while lo < hi { let mid = (lo + hi) / 2; if free[mid].offset < b.offset { lo = mid + 1 } else { hi = mid } }
                free.insert(b, at: lo)
            }
            if i.op == .varWrite {
                let kernel = fusion.kernel(i)
                if case .accumulatedProduct = kernel { reasons[i.id] = .stateUpdateByProduct }
                kernels.append(kernel)
                continue
            }
            guard let why = materialized[i.id] else {
                if storage[i.id] == nil { storage[i.id] = .inline }
                continue
            }
            reasons[i.id] = why
            func allocate(_ bytes: Int, until end: Int) -> Int {
                let size = (bytes + Self.alignment - 1) / Self.alignment * Self.alignment
                let offset: Int
                if let k = free.firstIndex(where: { $0.size >= size }) {
                    offset = free[k].offset
                    if free[k].size > size { free[k] = (offset + size, free[k].size - size) } else { free.remove(at: k) }
                } else {
                    offset = top
                    top += size
                }
                endingAt[max(end, p), default: []].append((offset, size))
                return offset
            }
            // Scratch lives while the kernel runs; it is allocated before the kernel's own buffer.
            kernels.append(scheduler.schedule(fusion.kernel(i), i, types: fusion.types) { allocate($0, until: p) })
            if let slot = resultSlot[i.id] { storage[i.id] = .result(slot); continue }
            storage[i.id] = .arena(offset: allocate(i.type!.byteCount, until: lastUse[i.id] ?? p))
        }
        if !copies.isEmpty { kernels.append(.resultCopies(copies)) }
        checks = f.body.filter { if case .check = $0.op { return true } else { return false } }.map(\.id)
        if !checks.isEmpty {
            faultRecord = top
            top += Self.faultRecordBytes
        }
        arenaBytes = top
    }

    /// The position of each value's last reader (inline values are read wherever their
    /// consumers run), and each kernel's fusion group into `fused`.
    private mutating func lastUses(_ fusion: Fusion) -> [Int: Int] {
        let f = fusion.f, inst = fusion.inst
        var lastUse: [Int: Int] = [:]
        for i in f.body where fusion.materialized[i.id] != nil || i.op == .varWrite {
            let p = fusion.position[i.id]!
            if case .dot = i.op { for o in i.operands { lastUse[o] = max(lastUse[o] ?? 0, p) } }
            fusion.inlineTree(i.id) { v, _ in
                lastUse[v] = max(lastUse[v] ?? 0, p)
                if inst[v]?.op.producesValue == true, inst[v]?.op != .varRead, !views.contains(v) { fused[i.id, default: []].append(v) }
            }
            for o in i.operands { lastUse[o] = max(lastUse[o] ?? 0, p) }
        }
        // Inline values are read wherever their consumers run; propagate to their materialised operands.
        for i in f.body.reversed() where fusion.materialized[i.id] == nil {
            if let u = lastUse[i.id] { for o in i.operands { lastUse[o] = max(lastUse[o] ?? 0, u) } }
        }
        return lastUse
    }
}
