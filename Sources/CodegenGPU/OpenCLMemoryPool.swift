import COpenCL
import Foundation
import KilnIR

/// TensorFlow's `gpu_options` for an OpenCL device.
public struct OpenCLMemoryOptions: Hashable, Sendable {
    /// Take device memory as it is needed (up to the limit) instead of reserving it up front.
    public var allowGrowth: Bool
    /// `per_process_gpu_memory_fraction`: the share of the device's memory this process may use;
    /// nil is TensorFlow's default (all but what it leaves the system, see `limit(globalMemoryBytes:)`).
    public var memoryFraction: Double?

    public init(allowGrowth: Bool = false, memoryFraction: Double? = nil) {
        self.allowGrowth = allowGrowth
        self.memoryFraction = memoryFraction
    }

    /// The bytes the process may hold on `device`, as TensorFlow 1.x computes a GPU's memory
    /// limit (gpu_device.cc, MinSystemMemory): a fraction of the device's total memory when one
    /// is given, else the available memory less what it leaves the system: 225 MiB below 2 GiB,
    /// else max(300 MiB, 5%). OpenCL reports no free memory, so the total stands for "available".
    public func limit(globalMemoryBytes total: UInt64) -> Int {
        let total = Int(clamping: total)
        if let f = memoryFraction, f > 0 { return Int(Double(total) * f) }
        let system = total < (1 << 31) ? 225 << 20 : max(314_572_800, Int(Double(total) * 0.05))
        return max(0, total - system)
    }
}

/// A device buffer from the pool; its memory goes back to the pool when the last reference goes.
public final class OpenCLBuffer: @unchecked Sendable {
    public let mem: cl_mem
    /// Bytes asked for (the pool may hold a little more, for alignment).
    public let bytes: Int
    fileprivate let pooled: Int
    /// Strong: the pool (and its reserved chunks, which sub-buffers live in) outlives its buffers.
    fileprivate let pool: OpenCLMemoryPool
    fileprivate let range: (chunk: Int, offset: Int)?

    fileprivate init(mem: cl_mem, bytes: Int, pooled: Int, pool: OpenCLMemoryPool, range: (chunk: Int, offset: Int)?) {
        self.mem = mem
        self.bytes = bytes
        self.pooled = pooled
        self.pool = pool
        self.range = range
    }

    deinit {
        clReleaseMemObject(mem)
        pool.give(back: self)
    }
}

/// The device memory this process holds on one device, with TensorFlow's two policies:
/// `allow_growth` takes memory from the driver as buffers are made, up to the limit; without it
/// the whole limit is reserved up front. Every buffer of every executable on the device (arenas,
/// constants, feeds, results, variables) comes from here, so the limit bounds them all; a buffer
/// past the limit, or larger than CL_DEVICE_MAX_MEM_ALLOC_SIZE, is a resourceExhausted error.
///
/// What "reserve" means: on a GPU the limit is allocated up front as a few large buffers (each at
/// most the largest the driver allows, made resident with a migration) and buffers are carved
/// from them as sub-buffers, so another process cannot take the memory. On a CPU device (PoCL)
/// device memory is host memory: committing gigabytes of RAM up front would only starve the
/// host, so there the limit is still enforced but buffers are made as needed (`committed` false).
public final class OpenCLMemoryPool: @unchecked Sendable {
    public let context: OpenCLContext
    public let options: OpenCLMemoryOptions
    /// The most bytes the pool lets buffers hold at once (less than asked for when the driver
    /// could not reserve it all up front).
    public private(set) var limit: Int
    /// Whether the limit was allocated from the driver up front (reserved on a GPU).
    public let committed: Bool
    public private(set) var bytesInUse = 0
    public private(set) var peakBytesInUse = 0
    /// Bytes held from the driver: the reserved chunks, or the buffers made on demand.
    public var bytesHeld: Int { committed ? chunks.reduce(0) { $0 + $1.size } : bytesInUse }
    private let lock = NSLock()
    private let alignment: Int
    /// The reserved chunks and, per chunk, its free ranges (offset, size) in offset order.
    private var chunks: [(mem: cl_mem, size: Int)] = []
    private var free: [[(offset: Int, size: Int)]] = []

    nonisolated(unsafe) private static var pools: [OpenCLDevice: OpenCLMemoryPool] = [:]  // under poolsLock
    private static let poolsLock = NSLock()

    /// The device's pool for this process, made with the first options asked for: as in
    /// TensorFlow, the first session on a GPU configures its allocator and later sessions share it.
    public static func shared(_ context: OpenCLContext, options: OpenCLMemoryOptions) throws -> OpenCLMemoryPool {
        poolsLock.lock()
        defer { poolsLock.unlock() }
        if let p = pools[context.device] {
            if p.options != options { debugLog("the memory pool of \(context.deviceName) keeps its first options \(p.options), not \(options)") }
            return p
        }
        let p = try OpenCLMemoryPool(context, options: options)
        pools[context.device] = p
        return p
    }

    /// `limit` overrides the options' limit and `commit` whether it is reserved from the driver up
    /// front (default: reserved on GPUs without allow_growth), so tests can see both policies
    /// on a CPU device with a small pool.
    public init(_ context: OpenCLContext, options: OpenCLMemoryOptions, limit: Int? = nil, commit: Bool? = nil) throws {
        self.context = context
        self.options = options
        let device = context.device
        self.limit = limit ?? options.limit(globalMemoryBytes: device.globalMemoryBytes)
        committed = commit ?? (!options.allowGrowth && device.kind != .cpu)
        alignment = max(KernelAlignment.bytes, device.baseAddressAlignment)
        guard committed else { return }
        var left = self.limit / alignment * alignment
        var size = min(left, Int(clamping: device.maxAllocBytes) / alignment * alignment)
        while left > 0 && size > 0 {
            size = min(size, left)
            var status: cl_int = 0
            if let mem = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status), status == CL_SUCCESS {
                // Make the driver really allocate it now, not at first use (NVIDIA's allocates lazily).
                var m: cl_mem? = mem
                status = clEnqueueMigrateMemObjects(context.queue, 1, &m, cl_mem_migration_flags(CL_MIGRATE_MEM_OBJECT_CONTENT_UNDEFINED), 0, nil, nil)
                if status == CL_SUCCESS { status = clFinish(context.queue) }
                if status == CL_SUCCESS {
                    chunks.append((mem, size))
                    free.append([(0, size)])
                    left -= size
                    continue
                }
                clReleaseMemObject(mem)
            }
            // As TensorFlow's BFC allocator backs off when its region does not fit: ask for 90%.
            size = size / 10 * 9 / alignment * alignment
            if size < 1 << 20 { break }
        }
        if chunks.isEmpty && left > 0 {
            throw KilnError.resourceExhausted("OOM when reserving \(self.limit) bytes of \(context.deviceName) (\(device.name)) up front (\(policy)): the driver gave no memory; set allow_growth or a smaller fraction")
        }
        if left > 0 {
            self.limit = self.limit - left
            debugLog("\(context.deviceName): could reserve only \(self.limit) bytes up front")
        }
        debugLog("\(context.deviceName): reserved \(self.limit) bytes in \(chunks.count) chunk(s)")
    }

    deinit { releaseChunks() }

    private func releaseChunks() {
        for c in chunks { clReleaseMemObject(c.mem) }
        chunks = []
        free = []
    }

    /// A buffer of `bytes` (at least 1) for `what` (`tensor of shape [..] and type float for
    /// node 'x'`, `the arena of 'f'`), named in the error when there is no room.
    public func allocate(_ bytes: Int, for what: @autoclosure () -> String) throws -> OpenCLBuffer {
        let device = context.device
        let size = max(bytes, 1)
        if UInt64(size) > device.maxAllocBytes {
            throw KilnError.resourceExhausted("OOM when allocating \(what()): \(bytes) bytes is more than the largest buffer \(context.deviceName) (\(device.name)) allows, CL_DEVICE_MAX_MEM_ALLOC_SIZE = \(device.maxAllocBytes) bytes")
        }
        let pooled = (size + alignment - 1) / alignment * alignment
        lock.lock()
        defer { lock.unlock() }
        guard bytesInUse + pooled <= limit else {
            throw KilnError.resourceExhausted("OOM when allocating \(what()): \(bytes) bytes on \(context.deviceName) (\(device.name)), whose pool has \(limit - bytesInUse) of its \(limit) bytes free (\(policy))")
        }
        var status: cl_int = 0
        if committed {
            for (c, ranges) in free.enumerated() {
                guard let r = ranges.firstIndex(where: { $0.size >= pooled }) else { continue }
                let offset = ranges[r].offset
                var region = cl_buffer_region(origin: offset, size: size)
                let mem = clCreateSubBuffer(chunks[c].mem, cl_mem_flags(CL_MEM_READ_WRITE), cl_buffer_create_type(CL_BUFFER_CREATE_TYPE_REGION), &region, &status)
                guard let mem, status == CL_SUCCESS else { try context.check(status, "clCreateSubBuffer", what()); break }
                if ranges[r].size == pooled { free[c].remove(at: r) } else { free[c][r] = (offset + pooled, ranges[r].size - pooled) }
                return account(OpenCLBuffer(mem: mem, bytes: bytes, pooled: pooled, pool: self, range: (c, offset)))
            }
            throw KilnError.resourceExhausted("OOM when allocating \(what()): \(bytes) bytes on \(context.deviceName) (\(device.name)): the pool has \(limit - bytesInUse) bytes free but no free range that large (fragmented; \(policy))")
        }
        let mem = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), size, nil, &status)
        guard let mem, status == CL_SUCCESS else {
            try context.check(status == CL_SUCCESS ? CL_MEM_OBJECT_ALLOCATION_FAILURE : status, "clCreateBuffer of \(size) bytes", what())
            throw KilnError.internalError("unreachable")
        }
        return account(OpenCLBuffer(mem: mem, bytes: bytes, pooled: pooled, pool: self, range: nil))
    }

    private var policy: String {
        "allow_growth \(options.allowGrowth), per_process_gpu_memory_fraction \(options.memoryFraction.map { "\($0)" } ?? "default")"
    }

    private func account(_ b: OpenCLBuffer) -> OpenCLBuffer {
        bytesInUse += b.pooled
        peakBytesInUse = max(peakBytesInUse, bytesInUse)
        return b
    }

    fileprivate func give(back b: OpenCLBuffer) {
        lock.lock()
        defer { lock.unlock() }
        bytesInUse -= b.pooled
        guard let (c, offset) = b.range, c < free.count else { return }
        // Put the range back in offset order and merge it with free neighbours.
        var ranges = free[c]
        let i = ranges.firstIndex { $0.offset > offset } ?? ranges.count
        ranges.insert((offset, b.pooled), at: i)
        if i + 1 < ranges.count, ranges[i].offset + ranges[i].size == ranges[i + 1].offset {
            ranges[i].size += ranges[i + 1].size
            ranges.remove(at: i + 1)
        }
        if i > 0, ranges[i - 1].offset + ranges[i - 1].size == ranges[i].offset {
            ranges[i - 1].size += ranges[i].size
            ranges.remove(at: i)
        }
        free[c] = ranges
    }
}

/// Buffers start on 64-byte boundaries as on the CPU (the arena's offsets assume it).
enum KernelAlignment { static let bytes = 64 }
