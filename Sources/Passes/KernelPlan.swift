import KilnIR

/// What compiled code does, in order: the kernels (loops over fused expressions, matrix
/// products, variable writes, ...), which values each computes inline, where every buffer lives
/// and why each value that has one does. Fusion (target-neutral) decides the groups; the
/// scheduler (`Scheduler`, reading the target's `TargetDescription`) picks the kernels' tactics.
/// A backend handles `kernels` with one exhaustive switch; it makes no decisions of its own.
public struct KernelPlan: Sendable {
    public enum Storage: Hashable, Sendable {
        /// A feed parameter's caller-owned buffer.
        case param(Int)
        /// A variable's storage, read in place.
        case variable(param: Int)
        /// Entry `i` of the executable's constant table.
        case constant(Int)
        /// Offset into the executable's arena.
        case arena(offset: Int)
        /// The caller-allocated buffer of result `i`.
        case result(Int)
        /// No buffer: recomputed inside each consumer's loop.
        case inline
    }

    /// One unit of compiled code, carrying what its emission needs (ids are instruction ids;
    /// offsets are into the arena).
    public enum Kernel: Hashable, Sendable {
        /// A loop over `value`'s elements computing its fused expression into its buffer.
        case loop(Int)
        /// Image patches gathered by a loop nest over (n, oh, ow, kh, kw, c).
        case patches(Int)
        /// A reduction (its loop structure follows its axes).
        case reduction(Int)
        /// An argmax or argmin.
        case argReduction(Int)
        /// A window reduction (pooling).
        case windowReduction(Int)
        /// Patch entries summed back onto the image.
        case unpatches(Int)
        /// A concat written one operand at a time (`KernelPlan.writesByOperand`).
        case wideConcat(concat: Int)
        /// A matrix product into its buffer.
        case product(Int)
        /// Variable writes sharing one loop over their values' common shape, each
        /// `variable = value` in order at every element with its value's expression fused into
        /// the loop: a single write, or several of one shape that read no written variable at
        /// another element (an optimiser's updates of a variable and its slots, WriteLoops.swift).
        case writes([VariableWrite])
        /// A descent step `variable -= scale * dot` (write id `write`): the product accumulates
        /// into the variable, so it has no buffer.
        case accumulatedProduct(write: Int, variable: Int, dot: Int, scale: Int)
        /// `unpatches(reshape(dot))` computed one image at a time: each image's rows of the
        /// product go into a buffer of the kernel's own and are summed onto the image.
        case perImageProduct(unpatches: Int, dot: Int)
        /// A convolution `dot(reshape(patches), w)` computed a block of patch rows at a time.
        case patchProduct(dot: Int, blocks: PatchBlocks)
        /// A weight gradient `dot(reshape(patches), dy, transpose_a)` from blocks of patch rows:
        /// part q sums its share of the blocks into slot q of `scratch` (one output each), and
        /// a last loop adds the slots in order.
        case patchGradient(dot: Int, blocks: PatchBlocks, parts: Int, scratch: Int)
        /// A reduction over leading axes in `parts` parts, each into its output-sized slot of
        /// `scratch`, then the slots combined in order; a floating-point sum's parts also sum
        /// in blocks into Doubles (`wide`). On a work-item target (any axes, never `wide`): part
        /// q of every output is a work-group tree over its share of the inputs.
        case splitReduction(reduce: Int, parts: Int, scratch: Int, wide: WideSum?)
        /// A floating-point sum over many leading rows, in blocks added into Doubles.
        case blockedReduction(reduce: Int, wide: WideSum)
        /// Results that are parameters, constants or repeated results, copied into their
        /// buffers after every other kernel.
        case resultCopies([ResultCopy])

        /// The instruction the kernel computes (the first write, for writes: `fused` lists the
        /// others with the group), nil for result copies.
        public var value: Int? {
            switch self {
            case .loop(let v), .patches(let v), .reduction(let v), .argReduction(let v), .windowReduction(let v), .unpatches(let v),
                 .wideConcat(let v), .product(let v):
                return v
            case .writes(let ws): return ws[0].write
            case .accumulatedProduct(let w, _, _, _): return w
            case .perImageProduct(let u, _): return u
            case .patchProduct(let d, _), .patchGradient(let d, _, _, _): return d
            case .splitReduction(let r, _, _, _), .blockedReduction(let r, _): return r
            case .resultCopies: return nil
            }
        }
    }

    /// How a blocked patch product walks its patches: `rows` patch rows at a time (the last block
    /// may be shorter), `count` blocks in all.
    public struct PatchBlocks: Hashable, Sendable {
        public var patches: Int
        public var rows: Int
        public var count: Int

        public init(patches: Int, rows: Int, count: Int) {
            self.patches = patches
            self.rows = rows
            self.count = count
        }
    }

    /// Double accumulators of a floating-point sum over leading rows: rows are summed
    /// `blockRows` at a time in the element type, each block then added into one Double per
    /// output element at arena `offset` (a split reduction's part q at `offset + q * count * 8`),
    /// so rounding error grows with the block, not with the row count.
    public struct WideSum: Hashable, Sendable {
        public var offset: Int
        public var blockRows: Int

        public init(offset: Int, blockRows: Int) {
            self.offset = offset
            self.blockRows = blockRows
        }
    }

    /// `variable = value`, by the write's instruction id.
    public struct VariableWrite: Hashable, Sendable {
        public var write: Int
        public var variable: Int
        public var value: Int

        public init(write: Int, variable: Int, value: Int) {
            self.write = write
            self.variable = variable
            self.value = value
        }
    }

    /// Result `result` is a copy of `value` (a parameter, a constant or another result).
    public struct ResultCopy: Hashable, Sendable {
        public var result: Int
        public var value: Int

        public init(result: Int, value: Int) {
            self.result = result
            self.value = value
        }
    }

    public var storage: [Int: Storage] = [:]
    /// Everything compiled code runs, in execution order.
    public var kernels: [Kernel] = []
    /// Why each materialised value (by instruction id) was not fused into its consumers.
    public var reasons: [Int: MaterializeReason] = [:]
    public var constants: [Tensor] = []
    /// For each kernel (by its `value`), the values computed inside its loop (its fusion
    /// group), in body order.
    public var fused: [Int: [Int]] = [:]
    /// Reshapes read through their operand's buffer (the same bytes in the same order).
    public var views: Set<Int> = []
    public var arenaBytes = 0

    /// Appends `bytes` to the arena (aligned) for what an executable keeps beside the plan's
    /// values (a batch template's run-time batch, `BatchRows`); returns their offset.
    public mutating func reserveArena(_ bytes: Int) -> Int {
        let offset = (arenaBytes + Self.alignment - 1) / Self.alignment * Self.alignment
        arenaBytes = offset + bytes
        return offset
    }
    /// The checks compiled code evaluates (`Op.check`), in body order: check `checks[s]` records
    /// its fault as site s + 1.
    public var checks: [Int] = []
    /// Arena offset of the run's fault record (`kiln_fault`, 64 bytes), when there are checks.
    public var faultRecord: Int?
    public static let faultRecordBytes = 64

    /// Constants with at most this many elements are emitted into the code as immediates.
    public static let immediateConstantLimit = 16
    public static let alignment = 64

    /// With `fuse` false every value gets its own kernel: the baseline fusion is measured against.
    /// `target` is what the scheduler may assume about the machine.
    public init(_ f: Function, fuse: Bool = true, target: TargetDescription = .standard) {
        var fusion = Fusion(f)
        fusion.materializeByRule()
        let scheduler = Scheduler(target: target)
        if fuse {
            fusion.recomputeCheapValues()
            fusion.computeValuesBeforeBroadcasts()
            scheduler.scheduleDescentSteps(&fusion)
            scheduler.scheduleBlockedProducts(&fusion)
        } else {
            fusion.materializeEverything()
        }
        fusion.boundFusedDepth()
        fusion.separateWritesFromIndexMappedReads()
        fusion.runChecksBeforeWrites()
        fusion.copyReadsBeforeLaterWrites()
        assignBuffers(fusion, scheduler)
        if fuse { shareWriteLoops(fusion) }
    }

    /// Concats of more operands than this get a kernel that writes each operand's elements in a
    /// loop of its own; computed inline, every element would choose among all operands.
    public static let inlineConcatOperandsLimit = 16
    public static func writesByOperand(_ i: Instruction) -> Bool {
        if case .concat = i.op { return i.operands.count > inlineConcatOperandsLimit }
        return false
    }

    /// The deepest fused expression a kernel evaluates (ops on the longest path from the kernel's
    /// value down to loads): codegen's element generators recurse once per level, so this bounds
    /// their stack on any thread. A debug build's level takes about 3.7 KB (the element switch's
    /// frame), and compiling runs on Dispatch workers with 512 KB stacks: 48 levels leave room for
    /// the compile path above them, where 64 overflowed. Real fused expressions (an Adam step, a
    /// normalisation) are 10-20 deep.
    public static let fusedDepthLimit = 48

    /// The most variable writes one loop shares: an Adam step's three (the variable and its two
    /// slots) and the variable's moving average, few enough that the loop stays small for LLVM.
    public static let writesPerLoopLimit = 4

    /// The most ops a value recomputed by each of its users may take (with its inline operands).
    public static let recomputedOpsLimit = 8

    /// Loops over at most this many elements a run are cold code: at a few nanoseconds an element,
    /// what a slower loop costs is below what compiling it at full strength does for hundreds of
    /// runs (codegen compiles them apart). A value this small costs next to nothing to compute in
    /// a kernel of its own.
    public static let coldElements = 1024

    /// A small value's arithmetic is computed once, before a broadcast along the innermost axis,
    /// where the broadcast repeats it at least this many times (`Fusion.computeValuesBeforeBroadcasts`).
    public static let broadcastRepeatsToCompute = 16
}
