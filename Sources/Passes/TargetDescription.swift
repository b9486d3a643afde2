/// What the scheduler may assume about the machine a backend compiles for. The fusion planner
/// is target-neutral; every tactic that depends on the machine (how many bytes a block of work
/// may take so it stays in cache, whether small matrix products can run on Kiln's worker pool,
/// how wide vectors are, when a loop is worth splitting across cores) reads it from here.
public struct TargetDescription: Hashable, Sendable {
    /// Shown in reports (`llvm x86_64 znver3`, `c99 cc`).
    public var name: String
    /// Bytes of one vector register (64 with AVX-512, 32 with AVX2, 16 otherwise).
    public var vectorBytes: Int
    /// The most bytes a kernel's own block of work may take (a stack buffer of patch rows or of
    /// one image's product rows) so it stays in the first levels of cache.
    public var blockBytes: Int
    /// Whether float32 products in `ownProductRange` run on Kiln's own kernel (kiln_sgemm, on the
    /// worker pool, safe to call from several workers at once); without it every product goes to
    /// OpenBLAS, which must not be called from several threads at once, so products per image or
    /// per block of patches are not planned.
    public var ownProducts: Bool
    /// Whether float32 convolutions read their image in place (kiln_conv2d_f32's AVX-512 kernel,
    /// in this process's runtime): a blocked convolution instead of gathering each block of
    /// patches for a product (its input is then given a buffer).
    public var directConvolutions: Bool
    /// Multiply-adds (m*n*k) of the float32 products that call Kiln's own kernel.
    public var ownProductRange: ClosedRange<Int>
    /// Kernels with at least this many elements are split across the worker pool.
    public var parallelThreshold: Int
    /// Bytes that stay in cache between one kernel and the next: image patches smaller than this
    /// are gathered once into a buffer rather than a block at a time for each product.
    public var cacheBytes: Int
    /// Rows of the panels Kiln's product kernel works in: blocks of patch rows are a multiple.
    public var productPanelRows: Int
    /// The fewest multiply-adds a product of one block (an image's rows, a block of patch rows)
    /// must have to be worth a call of its own.
    public var blockProductMinimumWork: Int
    /// Parts a reduction or a weight gradient is split into for the pool: fixed, not the number
    /// of cores, so a sum is associated the same way on every machine; also the fewest blocks a
    /// blocked patch product makes.
    public var reductionParts: Int
    /// Every kernel runs as many work items as it has independent outputs (a GPU), not as a loop
    /// split across a worker pool: no kernel calls a runtime, products are launches of the device
    /// library, reductions are work-group trees, and nothing is accumulated into a variable by a
    /// product (`.accumulatedProduct`: its alpha would live in a buffer).
    public var workItems: Bool
    /// The most work items of one work-group (CL_DEVICE_MAX_WORK_GROUP_SIZE).
    public var maxWorkGroupSize: Int
    /// Bytes of work-group local memory (CL_DEVICE_LOCAL_MEM_SIZE).
    public var localMemoryBytes: Int
    /// Compute units of the device (sizes the parts of a reduction to few outputs).
    public var computeUnits: Int
    /// Whether the target computes in double (cl_khr_fp64); without it nothing Kiln needs
    /// internally uses double, and float64 tensors are refused at compile time.
    public var float64: Bool

    public init(name: String, vectorBytes: Int, blockBytes: Int = 64 * 1024, ownProducts: Bool, directConvolutions: Bool = false,
                ownProductRange: ClosedRange<Int> = 4096...(1 << 27), parallelThreshold: Int = 32768, cacheBytes: Int = 1 << 20,
                productPanelRows: Int = 16, blockProductMinimumWork: Int = 1 << 16, reductionParts: Int = 8,
                workItems: Bool = false, maxWorkGroupSize: Int = 1, localMemoryBytes: Int = 0, computeUnits: Int = 1, float64: Bool = true) {
        self.name = name
        self.vectorBytes = vectorBytes
        self.blockBytes = blockBytes
        self.ownProducts = ownProducts
        self.directConvolutions = directConvolutions
        self.ownProductRange = ownProductRange
        self.parallelThreshold = parallelThreshold
        self.cacheBytes = cacheBytes
        self.productPanelRows = productPanelRows
        self.blockProductMinimumWork = blockProductMinimumWork
        self.reductionParts = reductionParts
        self.workItems = workItems
        self.maxWorkGroupSize = maxWorkGroupSize
        self.localMemoryBytes = localMemoryBytes
        self.computeUnits = computeUnits
        self.float64 = float64
    }

    /// An OpenCL device: every kernel over work items, products through the device library
    /// (so no per-image or patch-block products: convolutions are patches then a product),
    /// reductions over many inputs in two launches of `reductionParts` parts each.
    public static func openCL(name: String, maxWorkGroupSize: Int, localMemoryBytes: Int, computeUnits: Int, float64: Bool) -> TargetDescription {
        TargetDescription(name: name, vectorBytes: 16, ownProducts: false, parallelThreshold: Int.max, reductionParts: 64,
                          workItems: true, maxWorkGroupSize: max(1, maxWorkGroupSize), localMemoryBytes: localMemoryBytes,
                          computeUnits: max(1, computeUnits), float64: float64)
    }

    /// Work items of a reduction's work-group (a tree in local memory): fixed, not the device's
    /// maximum, so a sum is associated the same way on every device that allows 256.
    public var reductionGroupSize: Int { min(256, largestPowerOfTwo(atMost: maxWorkGroupSize)) }

    /// Work items of an elementwise kernel's work-group.
    public var elementGroupSize: Int { min(256, largestPowerOfTwo(atMost: maxWorkGroupSize)) }

    private func largestPowerOfTwo(atMost n: Int) -> Int {
        var p = 1
        while p * 2 <= n { p *= 2 }
        return p
    }

    /// A machine with 64-byte vectors whose small products and convolutions run on the pool (an AVX-512 host):
    /// what plans are made for when no backend says otherwise (tools, tests of the planner).
    public static let standard = TargetDescription(name: "standard", vectorBytes: 64, ownProducts: true, directConvolutions: true)

    /// Whether a float32 product of this size calls Kiln's own kernel.
    public func ownProduct(m: Int, n: Int, k: Int) -> Bool {
        guard ownProducts else { return false }
        let (mn, o1) = m.multipliedReportingOverflow(by: n)
        let (work, o2) = mn.multipliedReportingOverflow(by: k)
        return !o1 && !o2 && ownProductRange.contains(work)
    }
}
