import KilnIR
import KilnPasses

/// How a native executable compiled from a `BatchTemplate` learns its batch: the run's batch size
/// n (an Int64) at arena offset `slot`, then each batch scalar's value at n in an 8-byte slot of
/// its own (in `scalars` order), written by the executable before its entry runs. Kernels over
/// values that carry the batch run over their first `k * n` rows: a split kernel by the row
/// count the entry hands the pool, a kernel in one piece by a bound it loads.
public struct BatchRows: Sendable {
    public let template: BatchTemplate
    public let slot: Int
    /// Batch scalar constants, by instruction id, in slot order.
    public let scalars: [Int]

    /// The template's batch rows for `plan` (its arena grown by the slots), or why its kernels
    /// cannot take the batch at run time.
    public static func prepare(_ template: BatchTemplate, plan: inout KernelPlan) -> Result<BatchRows, BatchTemplate.Refusal> {
        if let why = refusal(template, plan) { return .failure(BatchTemplate.Refusal(description: why)) }
        let scalars = template.scalars.keys.sorted()
        let slot = plan.reserveArena(8 * (1 + scalars.count))
        return .success(BatchRows(template: template, slot: slot, scalars: scalars))
    }

    /// The batch rows a native backend compiles `plan` with: none without a template, or when
    /// its kernels refuse it (the reason then goes into `stats`).
    public static func plan(_ template: BatchTemplate?, _ plan: inout KernelPlan, stats: inout CompileStats) -> BatchRows? {
        guard let template else { return nil }
        switch prepare(template, plan: &plan) {
        case .success(let rows): return rows
        case .failure(let why):
            stats.batchRefusal = why.description
            return nil
        }
    }

    /// The first kernel of `plan` that touches a batch-carrying value and cannot take its rows at
    /// run time, described; nil when there is none.
    static func refusal(_ t: BatchTemplate, _ plan: KernelPlan) -> String? {
        var inst: [Int: Instruction] = [:]
        for i in t.function.body { inst[i.id] = i }
        func carries(_ v: Int) -> Bool { t.carriers[v] != nil }
        func touches(_ v: Int) -> Bool {
            ([v] + (plan.fused[v] ?? [])).contains { w in carries(w) || inst[w]?.operands.contains(where: carries) == true }
        }
        for k in plan.kernels {
            switch k {
            case .loop, .writes, .resultCopies, .accumulatedProduct, .patches, .windowReduction, .unpatches, .perImageProduct,
                 .patchProduct, .patchGradient, .splitReduction, .blockedReduction:
                // Their first loop nest runs over the batch's rows, or they count rows, blocks
                // and parts from the batch (split and blocked reductions are over leading axes).
                continue
            case .reduction(let v):
                // Rows of the kept leading axes are split; reduced batch rows are a loaded bound
                // (the writer takes axis 0 as the first reduced axis).
                if case .reduce(_, let axes)? = inst[v]?.op, axes.contains(0), axes.first != 0, touches(v) {
                    return "reduction %\(v) lists the batch axis after others"
                }
            case .product(let d):
                guard let i = inst[d], case .dot(_, let tb) = i.op, let rank = i.type?.rank else { continue }
                let (a, b) = (i.operands[0], i.operands[1])
                // A product over more than two dimensions takes the batch only as its leading
                // (batch) dimension; a matrix as its rows or its inner dimension.
                if rank > 2, carries(a) || carries(b) || carries(d), !(carries(a) && carries(b) && carries(d)) {
                    return "product %\(d) takes the batch in a dimension other than its leading one"
                }
                if rank == 2, carries(b) && tb { return "product %\(d) takes the batch as its columns" }
            case .argReduction(let v):
                if case .argReduce(_, let axis, _)? = inst[v]?.op, axis == 0, touches(v) {
                    return "\(inst[v]!.op.mnemonic) %\(v) reduces the batch axis"
                }
            default:
                if let v = k.value, touches(v) {
                    return "kernel \(k) over the batch is laid out for a fixed batch size"
                }
            }
        }
        return nil
    }

    /// The slot of batch scalar `id`.
    func scalarSlot(_ id: Int) -> Int? { scalars.firstIndex(of: id).map { slot + 8 * (1 + $0) } }

    /// Writes batch `n` and the batch scalars at n into `arena`.
    public func store(batch n: Int, into arena: UnsafeMutableRawPointer) {
        arena.storeBytes(of: Int64(n), toByteOffset: slot, as: Int64.self)
        for (k, id) in scalars.enumerated() {
            let v = template.scalar(id, batch: n)
            v.withUnsafeBytes { b in (arena + slot + 8 * (1 + k)).copyMemory(from: b.baseAddress!, byteCount: b.count) }
        }
    }
}

extension KernelWriter {
    /// The run's leading extent of batch-carrying value `v` (`k * n`); nil when `v` does not
    /// carry the batch.
    func batchExtent(_ v: Int) -> RValue? {
        guard let batch, let k = batch.template.carriers[v], let n = batchCount else { return nil }
        return k == 1 ? n : r.int(.mul, n, c64(k))
    }

    /// The run's inner dimension of `dot(a, b)` (transposed as given) when it is the batch: a
    /// carrier's leading dimension.
    func batchInner(_ ta: Bool, _ tb: Bool, _ a: Int, _ b: Int) -> RValue? {
        ta ? batchExtent(a) : tb ? nil : batchExtent(b)
    }

    /// Batch scalar `v`'s value for this run, loaded from its slot.
    func batchScalar(_ v: Int, _ d: DType) -> RValue? {
        guard let slot = batch?.scalarSlot(v) else { return nil }
        return load(r.buffer(.arena(offset: slot, name: "batch_scalar\(v)")), c64(0), d)
    }
}
