import COpenCL
import Foundation
import KilnIR
import KilnKernels
import KilnPasses

/// A variable's bytes on an OpenCL device, shared by every executable on that device that reads
/// or writes the variable (the session's `VariableResidence` holds it).
public final class OpenCLVariableCopy: DeviceCopy, @unchecked Sendable {
    public let buffer: OpenCLBuffer
    let context: OpenCLContext
    public var deviceName: String { context.deviceName }

    init(buffer: OpenCLBuffer, context: OpenCLContext) {
        self.buffer = buffer
        self.context = context
    }

    public func read(into host: UnsafeMutableRawPointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        // Runs finish before they return, so nothing is queued that writes this buffer; the
        // blocking read also waits for anything queued before it.
        try context.check(clEnqueueReadBuffer(context.queue, buffer.mem, cl_bool(CL_TRUE), 0, min(bytes, buffer.bytes), host, 0, nil, nil),
                          "clEnqueueReadBuffer", "a variable's device copy")
    }
}

/// One IR function on an OpenCL device: its program (built through the device's program cache),
/// one kernel object per launch, one arena buffer, its constants uploaded once, and buffers for
/// its feeds and results. Variables live in `OpenCLVariableCopy`s kept by their residences and
/// cross to or from the host only when the other side needs them. Runs are serialised (they
/// share the arena) and each finishes on the device before it returns.
public final class OpenCLExecutable: DeviceExecutable, @unchecked Sendable {
    public let backendName = "opencl"
    public let function: Function
    public let plan: KernelPlan
    public let stats: CompileStats
    public let resultTypes: [TensorType]
    public let program: DeviceProgram
    public let context: OpenCLContext
    public var deviceName: String { context.deviceName }
    public var arenaBytes: Int { plan.arenaBytes }
    public private(set) var kernelNanoseconds: [UInt64] = []
    public private(set) var profiledRuns = 0

    private let pool: OpenCLMemoryPool
    private let kernels: [cl_kernel?]
    private let ranges: [(global: [Int], local: [Int]?)]
    private let arena: OpenCLBuffer
    private let constants: [Int: OpenCLBuffer]
    /// The parameters the launches read (feeds and variables).
    private let usedParams: [Int]
    /// Buffers of the feeds, made with the executable.
    private let feeds: [Int: OpenCLBuffer]
    /// Buffers of variables in runs without residences, made at the first such run (a session's
    /// variables live in their residences' copies instead).
    private var ownVariables: [Int: OpenCLBuffer] = [:]
    private let results: [Int: OpenCLBuffer]
    private let paramBytes: [Int]
    /// The variable parameters the function writes.
    private let writtenParams: Set<Int>
    private let profile: Bool
    private let lock = NSLock()

    /// Builds `source` (the program's kernels and the library kernels it uses) and makes the
    /// executable's buffers. `emitMs` is the planning and rendering time, kept in `stats`.
    public init(program: DeviceProgram, source: String, function: Function, plan: KernelPlan, context: OpenCLContext,
                pool: OpenCLMemoryPool, options: CompileOptions, emitMs: Double,
                libraryRange: (DeviceLaunch) throws -> (global: [Int], local: [Int]?)) throws {
        self.program = program
        self.function = function
        self.plan = plan
        self.context = context
        self.pool = pool
        profile = options.profile
        let types = function.typeTable()
        resultTypes = function.results.map { types[$0]! }
        paramBytes = function.params.indices.map { types[$0]!.byteCount }
        writtenParams = Set(function.body.filter { $0.op == .varWrite }.map { $0.operands[0] })
        let t0 = DispatchTime.now()
        let built = try context.programs.program(source: source, options: OpenCLBackend.buildOptions)
        let t1 = DispatchTime.now()
        var kernels: [cl_kernel?] = []
        var ranges: [(global: [Int], local: [Int]?)] = []
        var made: [cl_kernel] = []
        do {
            for launch in program.launches {
                let range: (global: [Int], local: [Int]?) = program.libraryKernels.contains(launch.kernel) ? try libraryRange(launch) : (launch.global, launch.local)
                ranges.append(range)
                if range.global.contains(0) {
                    kernels.append(nil)
                    continue
                }
                var status: cl_int = 0
                let k = clCreateKernel(built, launch.kernel, &status)
                guard let k, status == CL_SUCCESS else {
                    throw KilnError.internalError("OpenCL program of '\(function.name)' has no kernel '\(launch.kernel)' (status \(status))")
                }
                made.append(k)
                kernels.append(k)
            }
        } catch {
            made.forEach { clReleaseKernel($0) }
            throw error
        }
        self.kernels = kernels
        self.ranges = ranges
        var usedParams = Set<Int>(), usedResults = Set<Int>(), usedConstants = Set<Int>()
        for l in program.launches {
            for a in l.arguments {
                switch a {
                case .input(let i): usedParams.insert(i)
                case .output(let i): usedResults.insert(i)
                case .constant(let c): usedConstants.insert(c)
                default: break
                }
            }
        }
        let name = function.name
        func described(_ v: Int) -> String {
            if v < function.params.count {
                let p = function.params[v]
                return "tensor with shape\(types[v]!.shape) and type \(types[v]!.dtype.name) for \(p.kind == .variable ? "variable" : "feed") '\(p.name)' of '\(name)'"
            }
            return "tensor with shape\(types[v]!.shape) and type \(types[v]!.dtype.name) for \(Self.describe(v, in: function)) of '\(name)'"
        }
        do {
            arena = try pool.allocate(plan.arenaBytes, for: "the arena of '\(name)' (the values live at once)")
            var constants: [Int: OpenCLBuffer] = [:]
            for c in usedConstants {
                let t = plan.constants[c]
                let b = try pool.allocate(t.byteCount, for: "constant \(c) (shape\(t.shape), type \(t.dtype.name)) of '\(name)'")
                if t.byteCount > 0 {
                    try context.check(clEnqueueWriteBuffer(context.queue, b.mem, cl_bool(CL_TRUE), 0, t.byteCount, t.buffer.pointer, 0, nil, nil),
                                      "clEnqueueWriteBuffer", "a constant of '\(name)'")
                }
                constants[c] = b
            }
            self.constants = constants
            var feeds: [Int: OpenCLBuffer] = [:]
            for i in usedParams.sorted() where function.params[i].kind != .variable { feeds[i] = try pool.allocate(paramBytes[i], for: described(i)) }
            self.feeds = feeds
            self.usedParams = usedParams.sorted()
            var results: [Int: OpenCLBuffer] = [:]
            for i in usedResults.sorted() { results[i] = try pool.allocate(resultTypes[i].byteCount, for: described(function.results[i])) }
            self.results = results
        } catch {
            made.forEach { clReleaseKernel($0) }
            throw error
        }
        var stats = CompileStats()
        stats.emitMs = emitMs
        stats.optimizeMs = Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        stats.loadMs = Double(DispatchTime.now().uptimeNanoseconds - t1.uptimeNanoseconds) / 1e6
        if options.keepSource { stats.source = source }
        self.stats = stats
    }

    deinit { kernels.forEach { if let k = $0 { clReleaseKernel(k) } } }

    /// `%12 (dot)`: an IR value for messages (the frontend names nodes before values get here).
    static func describe(_ v: Int, in f: Function) -> String {
        guard let i = f.body.first(where: { $0.id == v }) else { return "value %\(v)" }
        return "value %\(v) (\(i.op.mnemonic))"
    }

    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws {
        try execute(inputs, outputs, residences: nil)
    }

    public func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                    residences: [VariableResidence?]) throws {
        guard residences.count == function.params.count else {
            throw KilnError.internalError("'\(function.name)' takes \(function.params.count) parameter(s), got \(residences.count) residences")
        }
        try execute(inputs, outputs, residences: residences)
    }

    /// Without `residences` every parameter is uploaded and the variables the function writes
    /// are copied back to their host bytes.
    private func execute(_ inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, _ outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
                         residences: [VariableResidence?]?) throws {
        lock.lock()
        defer { lock.unlock() }
        let queue = profile ? try context.profilingQueue() : context.queue
        // Whatever happens, nothing queued may outlive the call: it reads and writes the caller's memory.
        defer { clFinish(queue) }
        var paramMems: [Int: cl_mem] = [:]
        var copies: [Int: OpenCLVariableCopy] = [:]
        for i in usedParams {
            let bytes = paramBytes[i]
            guard let host = inputs?[i] else { throw KilnError.internalError("'\(function.name)' run without a buffer for parameter \(i)") }
            if let r = residences?[i] {
                var copy = r.deviceCopy as? OpenCLVariableCopy
                if copy.map({ $0.context !== context || $0.buffer.bytes != bytes }) ?? true {
                    // The value may be current only on another device: bring it to the host first.
                    if !r.hostCurrent { try r.syncToHost(host, bytes: bytes) }
                    let made = OpenCLVariableCopy(buffer: try pool.allocate(bytes, for: "variable '\(function.params[i].name)' (\(bytes) bytes)"),
                                                  context: context)
                    r.deviceCopy = made
                    r.deviceCurrent = false
                    copy = made
                }
                if !r.deviceCurrent {
                    guard r.hostCurrent else {
                        throw KilnError.internalError("variable '\(function.params[i].name)' has no current value on the host or on \(deviceName)")
                    }
                    try write(queue, copy!.buffer.mem, host, bytes, "variable '\(function.params[i].name)'")
                    r.deviceCurrent = true
                }
                copies[i] = copy!
                paramMems[i] = copy!.buffer.mem
            } else {
                let own: OpenCLBuffer
                if let b = feeds[i] ?? ownVariables[i] { own = b } else {
                    own = try pool.allocate(bytes, for: "variable '\(function.params[i].name)' (\(bytes) bytes)")
                    ownVariables[i] = own
                }
                try write(queue, own.mem, host, bytes, "parameter '\(function.params[i].name)'")
                paramMems[i] = own.mem
            }
        }
        if let offset = plan.faultRecord {
            var zero: UInt64 = 0
            try context.check(clEnqueueFillBuffer(queue, arena.mem, &zero, 8, offset, KernelPlan.faultRecordBytes, 0, nil, nil),
                              "clEnqueueFillBuffer", "the fault record of '\(function.name)'")
        }
        var events: [(Int, cl_event?)] = []
        defer { events.forEach { if let e = $0.1 { clReleaseEvent(e) } } }
        for (n, launch) in program.launches.enumerated() {
            guard let k = kernels[n] else { continue }
            for (a, argument) in launch.arguments.enumerated() {
                let index = cl_uint(a)
                let status: cl_int
                switch argument {
                case .input(let i): status = setBuffer(k, index, paramMems[i]!)
                case .output(let i): status = setBuffer(k, index, results[i]!.mem)
                case .constant(let c): status = setBuffer(k, index, constants[c]!.mem)
                case .arena: status = setBuffer(k, index, arena.mem)
                case .int32(var v): status = clSetKernelArg(k, index, 4, &v)
                case .int64(var v): status = clSetKernelArg(k, index, 8, &v)
                case .float32(var v): status = clSetKernelArg(k, index, 4, &v)
                case .float64(var v): status = clSetKernelArg(k, index, 8, &v)
                case .local(let bytes): status = clSetKernelArg(k, index, bytes, nil)
                }
                try context.check(status, "clSetKernelArg \(a) of \(launch.kernel)", "'\(function.name)'")
            }
            var global = ranges[n].global
            var local = ranges[n].local
            var event: cl_event?
            let status: cl_int = withUnsafeMutablePointer(to: &event) { eventPointer in
                let e = profile ? eventPointer : nil
                return global.withUnsafeMutableBufferPointer { g in
                    if local == nil { return clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, g.baseAddress, nil, 0, nil, e) }
                    return local!.withUnsafeMutableBufferPointer { l in
                        clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, g.baseAddress, l.baseAddress, 0, nil, e)
                    }
                }
            }
            try context.check(status, "clEnqueueNDRangeKernel \(launch.kernel) (global \(global), local \(local.map { "\($0)" } ?? "any"))",
                              "plan kernel \(launch.planKernel) of '\(function.name)'")
            if profile { events.append((launch.planKernel, event)) }
        }
        for (i, b) in results where resultTypes[i].byteCount > 0 {
            guard let host = outputs?[i] else { throw KilnError.internalError("'\(function.name)' run without a buffer for result \(i)") }
            try context.check(clEnqueueReadBuffer(queue, b.mem, cl_bool(CL_FALSE), 0, resultTypes[i].byteCount, host, 0, nil, nil),
                              "clEnqueueReadBuffer", "result \(i) of '\(function.name)'")
        }
        if residences == nil {
            for i in writtenParams where ownVariables[i] != nil && paramBytes[i] > 0 {
                try context.check(clEnqueueReadBuffer(queue, ownVariables[i]!.mem, cl_bool(CL_FALSE), 0, paramBytes[i], inputs![i], 0, nil, nil),
                                  "clEnqueueReadBuffer", "variable '\(function.params[i].name)'")
            }
        }
        var record = (site: Int64(0), position: Int64(0), value: Int64(0))
        if let offset = plan.faultRecord {
            try context.check(clEnqueueReadBuffer(queue, arena.mem, cl_bool(CL_FALSE), offset, 24, &record, 0, nil, nil),
                              "clEnqueueReadBuffer", "the fault record of '\(function.name)'")
        }
        try context.check(clFinish(queue), "clFinish", "a run of '\(function.name)'")
        if record.site != 0 {
            throw FaultRecord.error(site: record.site, position: record.position, value: record.value, function: function, plan: plan)
        }
        if let residences {
            for i in writtenParams { if let r = residences[i], let c = copies[i] { r.deviceWritten(c) } }
        }
        if profile {
            if kernelNanoseconds.isEmpty { kernelNanoseconds = Array(repeating: 0, count: plan.kernels.count) }
            for (k, e) in events {
                var start: cl_ulong = 0, end: cl_ulong = 0
                clGetEventProfilingInfo(e, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil)
                clGetEventProfilingInfo(e, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil)
                if k < kernelNanoseconds.count { kernelNanoseconds[k] += end &- start }
            }
            profiledRuns += 1
        }
    }

    /// A non-blocking upload; the run's final clFinish keeps `host` in use until it is done.
    private func write(_ queue: cl_command_queue, _ mem: cl_mem, _ host: UnsafeMutableRawPointer, _ bytes: Int, _ what: String) throws {
        guard bytes > 0 else { return }
        try context.check(clEnqueueWriteBuffer(queue, mem, cl_bool(CL_FALSE), 0, bytes, host, 0, nil, nil), "clEnqueueWriteBuffer", what)
    }

    private func setBuffer(_ k: cl_kernel, _ index: cl_uint, _ mem: cl_mem) -> cl_int {
        var m: cl_mem? = mem
        return clSetKernelArg(k, index, MemoryLayout<cl_mem?>.size, &m)
    }
}
