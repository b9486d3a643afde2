import KilnIR

extension Lowering {
    /// The order the pruned `ops` lower in, which is the order their reads and writes of
    /// variables happen in. TensorFlow runs an op as soon as its data and control inputs are
    /// ready, so a read sees the writes it depends on and, in practice, not the writes it does
    /// not depend on (`sess.run([train, accuracy])` reports the accuracy of the weights before
    /// the step). Kiln makes that deterministic: a topological order of data and control edges
    /// in which, among the ops that are ready, every op that does not write a variable is taken
    /// before any that does, and ties go to the op created first. A read is therefore placed
    /// after exactly the writes it depends on (and the writes those make ready only when nothing
    /// else is left). A graph without writes lowers in creation order.
    ///
    /// `ops` must be closed under the inputs and control inputs that matter (what `prune`
    /// returns); edges from fed tensors and from ops outside `ops` are ignored.
    public static func executionOrder(_ ops: [Operation], feeds: Set<Output>) throws -> [Operation] {
        let sorted = ops.sorted { $0.id < $1.id }
        var position: [Operation: Int] = [:]
        position.reserveCapacity(sorted.count)
        for (k, op) in sorted.enumerated() { position[op] = k }
        var waiting = [Int](repeating: 0, count: sorted.count)
        var successors = [[Int]](repeating: [], count: sorted.count)
        for (k, op) in sorted.enumerated() {
            for i in op.inputs where !feeds.contains(i) {
                guard let p = position[i.op] else { continue }
                successors[p].append(k)
                waiting[k] += 1
            }
            for c in op.controlInputs {
                guard let p = position[c] else { continue }
                successors[p].append(k)
                waiting[k] += 1
            }
        }
        let writes = sorted.map { OpRegistry.def($0.type)?.writesVariable == true }
        var readyOthers = MinHeap(), readyWrites = MinHeap()
        for k in sorted.indices where waiting[k] == 0 {
            if writes[k] { readyWrites.push(k) } else { readyOthers.push(k) }
        }
        var order: [Operation] = []
        order.reserveCapacity(sorted.count)
        while let k = readyOthers.pop() ?? readyWrites.pop() {
            order.append(sorted[k])
            for s in successors[k] {
                waiting[s] -= 1
                if waiting[s] == 0 { if writes[s] { readyWrites.push(s) } else { readyOthers.push(s) } }
            }
        }
        guard order.count == sorted.count else {
            let stuck = sorted.indices.filter { waiting[$0] > 0 }.prefix(5).map { "'\(sorted[$0].name)'" }
            throw KilnError.invalidArgument("the graph has a cycle: ops \(stuck.joined(separator: ", ")) wait on each other through data or control edges")
        }
        return order
    }
}

/// A binary min-heap of positions (the ready ops, smallest creation index first).
private struct MinHeap {
    private var items: [Int] = []

    mutating func push(_ x: Int) {
        items.append(x)
        var c = items.count - 1
        while c > 0 {
            let p = (c - 1) / 2
            guard items[p] > items[c] else { break }
            items.swapAt(p, c)
            c = p
        }
    }

    mutating func pop() -> Int? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var p = 0
        while true {
            let l = 2 * p + 1, r = l + 1
            var m = p
            if l < items.count, items[l] < items[m] { m = l }
            if r < items.count, items[r] < items[m] { m = r }
            guard m != p else { break }
            items.swapAt(p, m)
            p = m
        }
        return top
    }
}
