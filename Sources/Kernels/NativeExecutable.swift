import CKilnRT
import KilnIR
import KilnPasses
#if canImport(Glibc)
import Glibc
#endif

/// Native code for one function, loaded into this process, plus everything it needs to run: its
/// arena, constant table and profile slots. Every native backend (LLVM's JIT, C compiled and
/// dlopen'ed) hands over its entry function and a closure that unloads the code.
/// Runs are serialised per executable because they share the arena.
public final class NativeExecutable: Executable, @unchecked Sendable {
    /// `void entry(void **inputs, void **outputs, char *arena, void **constants)`.
    public typealias Entry = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                                             UnsafeMutableRawPointer?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Void
    public let backendName: String
    public let function: Function
    public let plan: KernelPlan
    public let stats: CompileStats
    public let resultTypes: [TensorType]
    private let entry: Entry
    private let release: () -> Void
    private let arena: TensorBuffer
    /// The plan's constants, then the profile slots (KernelWriter reads them from entry
    /// `plan.constants.count`) and the non-finite counters (the entry after), so compiled code
    /// holds no address of its own.
    private let constantTable: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private var lock = pthread_mutex_t()
    private let profileSlots: UnsafeMutablePointer<UInt64>?
    public private(set) var kernelNanoseconds: [UInt64] = []
    public private(set) var profiledRuns = 0
    private let counters: UnsafeMutablePointer<Int64>?
    /// Built with `CompileOptions.countNonFinite`: per plan kernel, how many NaN or infinite
    /// elements its output held in the last run (nil otherwise).
    public private(set) var nonFiniteCounts: [Int64]?
    public let batchRows: BatchRows?
    /// The batch the arena's batch slots hold (they keep it between runs).
    private var storedBatch = 0

    /// Takes ownership of loaded code: `release` unloads it when the executable goes (or when
    /// this initialiser throws). `profile` says whether the code records kernel times.
    public init(entry: Entry, function: Function, plan: KernelPlan, stats: CompileStats, backendName: String, profile: Bool,
                countNonFinite: Bool = false, batchRows: BatchRows? = nil, release: @escaping () -> Void) throws {
        NativeRuntime.start()
        do { arena = try TensorBuffer(byteCount: plan.arenaBytes) } catch {
            release()
            throw error
        }
        self.entry = entry
        self.release = release
        self.function = function
        self.plan = plan
        self.stats = stats
        self.backendName = backendName
        self.batchRows = batchRows
        let types = function.typeTable()
        resultTypes = function.results.map { types[$0]! }
        profileSlots = profile ? .allocate(capacity: plan.kernels.count + 2) : nil
        counters = countNonFinite ? .allocate(capacity: max(plan.kernels.count, 1)) : nil
        constantTable = .allocate(capacity: plan.constants.count + 2)
        for (k, c) in plan.constants.enumerated() { constantTable[k] = c.buffer.pointer }
        constantTable[plan.constants.count] = profileSlots.map { UnsafeMutableRawPointer($0) }
        constantTable[plan.constants.count + 1] = counters.map { UnsafeMutableRawPointer($0) }
        pthread_mutex_init(&lock, nil)
    }

    deinit {
        release()
        constantTable.deallocate()
        profileSlots?.deallocate()
        counters?.deallocate()
        pthread_mutex_destroy(&lock)
    }

    public var arenaBytes: Int { plan.arenaBytes }

    /// Calls the entry. Throws the error of the first check that failed (an index out of range,
    /// an integer division by zero); the run then stopped after the kernel that found it, so
    /// later kernels (and variable writes) did not run and the outputs are undefined.
    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws {
        try run(inputs: inputs, outputs: outputs, batch: batchRows?.template.batch ?? 0)
    }

    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, batch n: Int) throws {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        if let batchRows {
            precondition(n >= 1 && n <= batchRows.template.batch, "batch \(n) of an executable for batches up to \(batchRows.template.batch)")
            if n != storedBatch {
                batchRows.store(batch: n, into: arena.pointer)
                storedBatch = n
            }
        }
        let record = plan.faultRecord.map { (arena.pointer + $0).assumingMemoryBound(to: kiln_fault.self) }
        record?.pointee = kiln_fault(site: 0, position: 0, value: 0, lock: 0)
        counters?.update(repeating: 0, count: max(plan.kernels.count, 1))
        entry(inputs, outputs, arena.pointer, constantTable)
        if let counters { nonFiniteCounts = Array(UnsafeBufferPointer(start: counters, count: plan.kernels.count)) }
        if let r = record?.pointee, r.site != 0 {
            throw FaultRecord.error(site: r.site, position: r.position, value: r.value, function: function, plan: plan)
        }
        if let slots = profileSlots {
            let n = plan.kernels.count
            if kernelNanoseconds.isEmpty { kernelNanoseconds = Array(repeating: 0, count: n) }
            for k in 0..<n { kernelNanoseconds[k] += slots[k + 1] &- slots[k] }
            profiledRuns += 1
        }
    }
}
