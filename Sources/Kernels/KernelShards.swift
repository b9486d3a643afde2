import KilnIR
import KilnPasses

/// Which module ("shard") of a natively compiled executable defines each plan kernel. The shards
/// are optimised and code-generated in parallel, so the compile waits for the slowest: kernels go
/// longest first onto the least loaded shard, by an estimate of what each costs LLVM, and shard 0
/// also carries the entry. (Round-robin by index put the MLP initialiser's two truncated normals
/// on one shard, 11 ms of optimising beside 2.4, and its training step's heaviest loops likewise,
/// 25 ms of code generation beside 17.)
extension KernelWriter {
    /// The shard of each plan kernel (by kernel index) among `shards`, given each kernel's
    /// functions (`nativeParts`).
    func shardOwners(_ parts: [[KernelPart]], _ shards: Int) -> [Int] {
        guard shards > 1 else { return Array(repeating: 0, count: plan.kernels.count) }
        var load = Array(repeating: 0, count: shards)
        load[0] = 4 + plan.kernels.count / 8   // the entry: a call and a fault test per kernel
        var owners = Array(repeating: 0, count: plan.kernels.count)
        let costs = zip(plan.kernels, parts).map { codeCost($0, $1) }
        // Longest first; equal costs keep kernel order, so the assignment (and with it each
        // shard's code-cache key) depends on the plan alone.
        for n in costs.indices.sorted(by: { (costs[$0], $1) > (costs[$1], $0) }) {
            let s = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
            owners[n] = s
            load[s] += costs[n]
        }
        return owners
    }

    /// Estimated cost of a kernel's code to LLVM, in units of about half a millisecond here
    /// (fitted to the MLP steps' and initialisers' kernels, code-generated one function at a
    /// time). It follows the loops more than the size of the fused expression: a loop that only
    /// stores a constant or copies is a memset or memcpy, one of a few elements is unrolled flat,
    /// a longer one is vectorised into a main and an epilogue loop, and a part split over the pool
    /// runs a range known only at run time, which adds a scalar remainder and its guards. A costly
    /// element function (exp, log, ...) is a long polynomial in every copy of the loop; a random
    /// draw (counter hash, Box-Muller, a rejection loop) outweighs the rest. A product is one
    /// runtime call.
    func codeCost(_ k: KernelPlan.Kernel, _ parts: [KernelPart]) -> Int {
        switch k {
        case .product, .accumulatedProduct: return 1
        case .resultCopies(let copies): return 1 + copies.count / 4
        default: break
        }
        // The fusion group is keyed by the kernel's value (writes' is the first write); the loop
        // runs over the computed value's elements.
        var computed = k.value
        if case .writes(let ws) = k { computed = ws[0].value }
        var computing = 0, costly = 0, random = 0
        for id in k.value.map({ [$0] + (plan.fused[$0] ?? []) }) ?? [] {
            switch inst[id]?.op {
            case .random?: random += 1
            case .unary(let u)? where u.isCostly: costly += 1
            case .binary(.pow)?: costly += 1
            case .broadcast?, .reshape?, .constant?, .varRead?, .varWrite?, nil: break
            default: computing += 1
            }
        }
        let elements = computed.flatMap { types[$0]?.elementCount } ?? Int.max
        let loops = parts.map { part -> Int in
            if computing + costly + random == 0 { return 1 }
            if elements <= 16 { return 2 }
            switch part.run { case .rows, .batchRows, .batchBlocks: return 8; default: return 6 }
        }.reduce(0, +)
        return loops + 4 * costly + 20 * random
    }
}
