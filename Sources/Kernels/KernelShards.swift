import KilnIR
import KilnPasses

/// How a natively compiled executable's kernels are shared among the modules ("shards") compiled
/// in parallel: `hot` modules at full strength and, when `cold`, one more (the last) for the cold
/// kernels and the entry, which code generation at full strength
/// would cost more than it saves (`KernelPlan.coldKernels`): the backend optimises it lightly
/// and generates its code quickly. A kernel is a function of its own, and LLVM's code generation
/// spends a fixed part of a millisecond on every function, however small: the digits training
/// step's modules took 185-230 ms of LLVM's time with its 34 cold kernels (scalars, per-channel
/// statistics, small variables' optimiser updates, calls into the runtime's products) among the
/// rest, 150-190 ms with them in a module of their own (~24 ms of it), and the step runs as fast.
public struct ShardLayout: Hashable, Sendable {
    public var hot: Int
    public var cold: Bool

    public init(hot: Int, cold: Bool) {
        self.hot = max(1, hot)
        self.cold = cold
    }

    /// One module for everything (the C backend, an artifact).
    public static let single = ShardLayout(hot: 1, cold: false)
    /// Modules in all.
    public var count: Int { hot + (cold ? 1 : 0) }
    /// Whether `shard` is the module of cold kernels.
    public func isCold(_ shard: Int) -> Bool { cold && shard == hot }
    /// The module that defines the entry: the cold one where there is one (the entry runs once a
    /// run, a call and a fault test per kernel: at full strength its code generation took 6.8 ms
    /// of the digits step's first hot module, quickly 2.4), else the first.
    public var entryShard: Int { cold ? hot : 0 }
}

extension KernelPlan {
    /// Per kernel, whether it is cold: a call into the runtime (a matrix product: its work is
    /// the library's), or loops that touch no value of more than `coldElements` elements
    /// (scalars, a learning rate, per-channel statistics, the optimiser's updates of a small
    /// variable). A reduction of a large operand, a patch gather and anything over the batch of
    /// a training step are hot.
    public func coldKernels(_ f: Function) -> [Bool] {
        coldKernels(inst: Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) }), types: f.typeTable())
    }

    /// `coldKernels` from the function's instructions and types by id (a writer has them).
    func coldKernels(inst: [Int: Instruction], types: [Int: TensorType]) -> [Bool] {
        kernels.map { k in
            if case .product = k { return true }
            if case .accumulatedProduct = k { return true }
            return touchedElements(k, inst: inst, types: types) <= Self.coldElements
        }
    }

    /// The most elements of any value kernel `k`'s loops read or write (0 for a runtime call).
    func touchedElements(_ k: Kernel, inst: [Int: Instruction], types: [Int: TensorType]) -> Int {
        var ids: [Int]
        switch k {
        case .product, .accumulatedProduct: return 0
        case .resultCopies(let copies): ids = copies.map(\.value)
        case .writes(let ws): ids = ws.flatMap { [$0.write, $0.value] } + (fused[ws[0].write] ?? [])
        default: ids = k.value.map { [$0] + (fused[$0] ?? []) } ?? []
        }
        return ids.flatMap { [$0] + (inst[$0]?.operands ?? []) }.map { types[$0]?.elementCount ?? 0 }.max() ?? 0
    }

    /// Cold loops that compute a costly element function over more than this many elements are
    /// vectorised in the cold module (`KernelWriter.vectorizeLoops`): an exp, a square root or a
    /// division runs several times slower in scalar code, and the softmax's exp and a
    /// 640-element variable's Adam update took 2 us a step more each unvectorised. Below it
    /// the vectoriser's time is not worth it (vectorising every cold loop with a costly function,
    /// the small variables' Adam updates too, took the digits step's cold module to 29 ms
    /// instead of 21).
    public static let coldVectorizedElements = 128
}

/// Which shard defines each function of each plan kernel. The shards are optimised and
/// code-generated in parallel, so the compile waits for the slowest: hot kernels go longest
/// first onto the least loaded hot shard, by an estimate of what each costs LLVM, and shard 0
/// also carries, in the balance, the cold shard (with the entry): it gets less of the rest, so
/// its thread finishes first and takes the cold shard, compiled last. (Round-robin by index put the
/// MLP initialiser's two truncated normals on one shard, 11 ms of optimising beside 2.4, and its
/// training step's heaviest loops likewise, 25 ms of code generation beside 17.) The cold shard
/// holds the cold kernels and, of the hot ones, the functions that add up a split sum's partial
/// results when there are at most `KernelPlan.coldElements` of them (per-channel statistics,
/// a bias's gradient): a loop over a few dozen elements, as cold as any.
extension KernelWriter {
    /// The shard of each function (`nativeParts`) of each plan kernel in `layout`.
    func shardOwners(_ parts: [[KernelPart]], _ layout: ShardLayout) -> [[Int]] {
        guard layout.count > 1 else { return parts.map { $0.map { _ in 0 } } }
        let cold = layout.cold ? plan.coldKernels(inst: inst, types: types) : Array(repeating: false, count: plan.kernels.count)
        let coldPart = plan.kernels.indices.map { n in
            parts[n].map { p in cold[n] || (layout.cold && p.sumOfParts && (plan.kernels[n].value.flatMap { types[$0]?.elementCount } ?? Int.max) <= KernelPlan.coldElements) }
        }
        // Per kernel, the cost of its hot functions and of its cold ones.
        let costs = plan.kernels.indices.map { n in
            [false, true].map { c in codeCost(plan.kernels[n], parts[n].indices.filter { coldPart[n][$0] == c }.map { parts[n][$0] }) }
        }
        var load = Array(repeating: 0, count: layout.hot)
        // The entry costs a call and a fault test per kernel. Shard 0's thread also compiles the
        // cold shard, where the entry takes half that and the rest a fifth of full strength's
        // time, but for the loops it vectorises, which cost about as much as at full strength
        // (fitted to the digits step's modules: 24 ms of cold code beside hot ones of 36 and 60).
        let entry = 4 + plan.kernels.count / 8
        let coldCost = costs.indices.map { cold[$0] && vectorizedWhenCold(plan.kernels[$0]) ? 5 * costs[$0][1] : costs[$0][1] }.reduce(0, +)
        load[0] = layout.cold ? entry / 2 + coldCost / 5 : entry
        var owners = coldPart.map { $0.map { $0 ? layout.hot : 0 } }
        // Longest first; equal costs keep kernel order, so the assignment (and with it each
        // shard's code-cache key) depends on the plan alone.
        for n in costs.indices.sorted(by: { (costs[$0][0], $1) > (costs[$1][0], $0) }) where !cold[n] {
            let s = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
            for j in parts[n].indices where !coldPart[n][j] { owners[n][j] = s }
            load[s] += costs[n][0]
        }
        return owners
    }

    /// Estimated cost of a kernel's functions `parts` to LLVM, in units of about half a
    /// millisecond here (fitted to the MLP steps' and initialisers' kernels, code-generated one function at a
    /// time). It follows the loops more than the size of the fused expression: a loop that only
    /// stores a constant or copies is a memset or memcpy, one of a few elements is unrolled flat,
    /// a longer one is vectorised into a main and an epilogue loop, and a part split over the pool
    /// runs a range known only at run time, which adds a scalar remainder and its guards. A costly
    /// element function (exp, log, ...) is a long polynomial in every copy of the loop; a random
    /// draw (counter hash, Box-Muller, a rejection loop) outweighs the rest. A product is one
    /// runtime call.
    func codeCost(_ k: KernelPlan.Kernel, _ parts: [KernelPart]) -> Int {
        guard !parts.isEmpty else { return 0 }
        switch k {
        case .product, .accumulatedProduct: return 1
        case .resultCopies(let copies): return 1 + copies.count / 4
        default: break
        }
        // The loop runs over the computed value's elements (writes' is the first write's value).
        var computed = k.value
        if case .writes(let ws) = k { computed = ws[0].value }
        let (computing, costly, random) = elementWork(k)
        var elements = computed.flatMap { types[$0]?.elementCount } ?? Int.max
        // A reduction's loops run over its operand: a batch norm's statistics of 16 channels
        // are a loop over the whole batch, not a flat 16-element one.
        switch k {
        case .reduction, .splitReduction, .blockedReduction, .argReduction, .windowReduction:
            elements = max(elements, plan.touchedElements(k, inst: inst, types: types))
        default: break
        }
        let loops = parts.map { part -> Int in
            if computing + costly + random == 0 { return 1 }
            if elements <= 16 { return 2 }
            switch part.run { case .rows, .batchRows, .batchBlocks: return 8; default: return 6 }
        }.reduce(0, +)
        // The sum of a split sum's parts computes none of the fused expression.
        return loops + (parts.contains { !$0.sumOfParts } ? 4 * costly + 20 * random : 0)
    }

    /// Whether kernel `k`'s loops are vectorised when it is in the cold module: a costly element
    /// function over more than `KernelPlan.coldVectorizedElements` elements.
    func vectorizedWhenCold(_ k: KernelPlan.Kernel) -> Bool {
        elementWork(k).costly > 0 && plan.touchedElements(k, inst: inst, types: types) > KernelPlan.coldVectorizedElements
    }

    /// The operations of kernel `k`'s fusion group (keyed by the kernel's value; writes' by the
    /// first write) that compute: random draws, costly element functions (exp, log, sqrt, pow,
    /// ...: a long polynomial or a slow instruction per element) and the rest.
    func elementWork(_ k: KernelPlan.Kernel) -> (computing: Int, costly: Int, random: Int) {
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
        return (computing, costly, random)
    }
}
