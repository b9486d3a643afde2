import Foundation
import COpenCL
import KilnIR
import KilnPasses
import KilnKernels

// TEMPORARY: runs the writer's DeviceProgram on the first OpenCL device (PoCL here) so the
// generic suites check device kernels before the OpenCL runtime (KilnOpenCL's OpenCLBackend)
// exists; it goes as soon as that backend runs a DeviceProgram. Buffers are created per run, the
// library product is a plain loop per output element (correct, not fast).

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

/// The device and its queue, shared by every executable of the process.
final class OpenCLHarnessDevice: @unchecked Sendable {
    let context: cl_context
    let queue: cl_command_queue
    let device: cl_device_id
    let target: TargetDescription
    let lock = NSLock()

    static func check(_ status: cl_int, _ what: String) throws {
        if status != CL_SUCCESS { throw HarnessError(description: "\(what) failed: \(status)") }
    }

    init(float64: Bool? = nil) throws {
        var count: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &count) == CL_SUCCESS, count > 0 else { throw HarnessError(description: "no OpenCL platform") }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try Self.check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var found: cl_device_id?
        for p in platforms where found == nil {
            var d: cl_device_id?
            if clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 1, &d, nil) == CL_SUCCESS { found = d }
        }
        guard let device = found else { throw HarnessError(description: "no OpenCL device") }
        self.device = device
        var status: cl_int = 0
        var devices: [cl_device_id?] = [device]
        context = clCreateContext(nil, 1, &devices, nil, nil, &status)
        try Self.check(status, "clCreateContext")
        queue = clCreateCommandQueue(context, device, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &status)
        try Self.check(status, "clCreateCommandQueue")
        func info<T>(_ p: Int32, _ v: T) -> T {
            var x = v
            clGetDeviceInfo(device, cl_device_info(p), MemoryLayout<T>.size, &x, nil)
            return x
        }
        var size = 0
        clGetDeviceInfo(device, cl_device_info(CL_DEVICE_EXTENSIONS), 0, nil, &size)
        var ext = [CChar](repeating: 0, count: size + 1)
        clGetDeviceInfo(device, cl_device_info(CL_DEVICE_EXTENSIONS), size, &ext, nil)
        let hasFP64 = String(cString: ext).contains("cl_khr_fp64")
        target = .openCL(name: "opencl harness", maxWorkGroupSize: info(CL_DEVICE_MAX_WORK_GROUP_SIZE, 0),
                         localMemoryBytes: Int(info(CL_DEVICE_LOCAL_MEM_SIZE, cl_ulong(0))),
                         computeUnits: Int(info(CL_DEVICE_MAX_COMPUTE_UNITS, cl_uint(0))), float64: float64 ?? hasFP64)
    }

    func build(_ source: String) throws -> cl_program {
        var status: cl_int = 0
        var program: cl_program?
        source.withCString { s in
            var p: UnsafePointer<CChar>? = s
            program = clCreateProgramWithSource(context, 1, &p, nil, &status)
        }
        try Self.check(status, "clCreateProgramWithSource")
        var devices: [cl_device_id?] = [device]
        if clBuildProgram(program, 1, &devices, "-cl-std=CL1.2", nil, nil) != CL_SUCCESS {
            var size = 0
            clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
            var log = [CChar](repeating: 0, count: size + 1)
            clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
            clReleaseProgram(program)
            throw HarnessError(description: "the OpenCL compiler rejects the program:\n\(String(cString: log))\n\(source)")
        }
        return program!
    }

    func buffer(_ bytes: Int, from host: UnsafeRawPointer?) throws -> cl_mem {
        var status: cl_int = 0
        let host = bytes > 0 ? host : nil
        let flags = host == nil ? CL_MEM_READ_WRITE : CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR
        let m = clCreateBuffer(context, cl_mem_flags(flags), max(bytes, 16), host.map { UnsafeMutableRawPointer(mutating: $0) }, &status)
        try Self.check(status, "clCreateBuffer \(bytes) bytes")
        return m!
    }

    /// The library's product as a plain loop per output element (the interface of the common
    /// brief), for the harness only.
    static func librarySource(_ kernels: Set<String>) -> String {
        var out = ""
        for (name, t) in [("kiln_gemm_f32", "float"), ("kiln_gemm_f64", "double")] where kernels.contains(name) {
            out += """
            __kernel void \(name)(int ta, int tb, long m, long n, long k,
                __global const \(t) *A, long offA, long lda, long strideA, __global const \(t) *B, long offB, long ldb, long strideB,
                __global \(t) *C, long offC, long ldc, long strideC, \(t) alpha, int accumulate) {
                long j = get_global_id(0), i = get_global_id(1), b = get_global_id(2);
                if (i >= m || j >= n) return;
                \(t) acc = 0;
                for (long p = 0; p < k; p++) {
                    \(t) a = ta ? A[offA + b * strideA + p * lda + i] : A[offA + b * strideA + i * lda + p];
                    \(t) y = tb ? B[offB + b * strideB + j * ldb + p] : B[offB + b * strideB + p * ldb + j];
                    acc += a * y;
                }
                long c = offC + b * strideC + i * ldc + j;
                C[c] = alpha * acc + (accumulate ? C[c] : (\(t))0);
            }

            """
        }
        return out
    }
}

struct OpenCLHarnessBackend: Backend {
    let device: OpenCLHarnessDevice
    var name: String { "opencl" }
    var target: TargetDescription { device.target }

    init(float64: Bool? = nil) throws {
        device = try OpenCLHarnessDevice(float64: float64)
    }

    func compile(_ f: Function, options: CompileOptions) throws -> any Executable {
        let plan = KernelPlan(f, fuse: options.fuse, target: target)
        let renderer = CStyleRenderer(.openCL, title: "@\(f.name)")
        let program = try KernelWriter(renderer: renderer, function: f, plan: plan, target: target).writeDeviceProgram(entryName: "entry")
        guard renderer.refusals.isEmpty else { throw HarnessError(description: "OpenCL C cannot express \(renderer.refusals)\n\(program.source)") }
        return try OpenCLHarnessExecutable(device, f, plan, program, profile: options.profile)
    }
}

final class OpenCLHarnessExecutable: Executable, @unchecked Sendable {
    let backendName = "opencl"
    let function: Function
    let plan: KernelPlan
    let stats: CompileStats
    let resultTypes: [TensorType]
    var arenaBytes: Int { plan.arenaBytes }
    private(set) var kernelNanoseconds: [UInt64] = []
    private(set) var profiledRuns = 0
    let profile: Bool
    let device: OpenCLHarnessDevice
    let program: DeviceProgram
    let clProgram: cl_program
    let kernels: [String: cl_kernel]
    let constants: [cl_mem]
    let arena: cl_mem

    init(_ device: OpenCLHarnessDevice, _ f: Function, _ plan: KernelPlan, _ program: DeviceProgram, profile: Bool) throws {
        self.device = device
        self.profile = profile
        function = f
        self.plan = plan
        self.program = program
        var stats = CompileStats()
        stats.source = program.source
        self.stats = stats
        let types = f.typeTable()
        resultTypes = f.results.map { types[$0]! }
        clProgram = try device.build(program.source + "\n" + OpenCLHarnessDevice.librarySource(program.libraryKernels))
        var ks: [String: cl_kernel] = [:]
        for l in program.launches where ks[l.kernel] == nil {
            var status: cl_int = 0
            let k = clCreateKernel(clProgram, l.kernel, &status)
            try OpenCLHarnessDevice.check(status, "clCreateKernel \(l.kernel)")
            ks[l.kernel] = k
        }
        kernels = ks
        constants = try plan.constants.map { c in try device.buffer(c.byteCount, from: c.buffer.pointer) }
        arena = try device.buffer(plan.arenaBytes, from: nil)
    }

    deinit {
        kernels.values.forEach { clReleaseKernel($0) }
        constants.forEach { clReleaseMemObject($0) }
        clReleaseMemObject(arena)
        clReleaseProgram(clProgram)
    }

    func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws {
        device.lock.lock()
        defer { device.lock.unlock() }
        let q = device.queue
        let params = try function.params.enumerated().map { k, p in try device.buffer(p.type.byteCount, from: inputs![k]) }
        let results = try resultTypes.map { try device.buffer($0.byteCount, from: nil) }
        defer { (params + results).forEach { clReleaseMemObject($0) } }
        if let record = plan.faultRecord {
            var zeros = [UInt8](repeating: 0, count: KernelPlan.faultRecordBytes)
            try OpenCLHarnessDevice.check(clEnqueueWriteBuffer(q, arena, cl_bool(CL_TRUE), record, zeros.count, &zeros, 0, nil, nil), "zero the fault record")
        }
        var events: [(Int, cl_event?)] = []
        for l in program.launches {
            let k = kernels[l.kernel]!
            for (n, a) in l.arguments.enumerated() {
                let status: cl_int
                func set<T>(_ v: T) -> cl_int { var x = v; return clSetKernelArg(k, cl_uint(n), MemoryLayout<T>.size, &x) }
                switch a {
                case .input(let i): status = set(params[i])
                case .output(let i): status = set(results[i])
                case .constant(let i): status = set(constants[i])
                case .arena: status = set(arena)
                case .int32(let v): status = set(v)
                case .int64(let v): status = set(v)
                case .float32(let v): status = set(v)
                case .float64(let v): status = set(v)
                case .local(let bytes): status = clSetKernelArg(k, cl_uint(n), bytes, nil)
                }
                try OpenCLHarnessDevice.check(status, "clSetKernelArg \(n) of \(l.kernel)")
            }
            var global = l.global
            let status: cl_int
            var event: cl_event?
            let local = l.local
            var sizes = local ?? [1]
            status = withUnsafeMutablePointer(to: &event) { e in
                sizes.withUnsafeMutableBufferPointer { s in
                    clEnqueueNDRangeKernel(q, k, cl_uint(global.count), nil, &global, local == nil ? nil : s.baseAddress, 0, nil, profile ? e : nil)
                }
            }
            if profile { events.append((l.planKernel, event)) }
            try OpenCLHarnessDevice.check(status, "enqueue \(l.kernel) over \(l.global) by \(l.local.map { "\($0)" } ?? "nil")")
        }
        if profile {
            clFinish(q)
            if kernelNanoseconds.isEmpty { kernelNanoseconds = Array(repeating: 0, count: plan.kernels.count) }
            for (n, e) in events {
                var start: cl_ulong = 0, end: cl_ulong = 0
                clGetEventProfilingInfo(e, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil)
                clGetEventProfilingInfo(e, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil)
                kernelNanoseconds[n] += end &- start
                clReleaseEvent(e)
            }
            profiledRuns += 1
        }
        for (k, t) in resultTypes.enumerated() where t.byteCount > 0 {
            try OpenCLHarnessDevice.check(clEnqueueReadBuffer(q, results[k], cl_bool(CL_TRUE), 0, t.byteCount, outputs![k], 0, nil, nil), "read result \(k)")
        }
        for (k, p) in function.params.enumerated() where p.kind == .variable && p.type.byteCount > 0 {
            try OpenCLHarnessDevice.check(clEnqueueReadBuffer(q, params[k], cl_bool(CL_TRUE), 0, p.type.byteCount, inputs![k], 0, nil, nil), "read variable \(k)")
        }
        if let record = plan.faultRecord {
            var words = [Int64](repeating: 0, count: 3)
            try OpenCLHarnessDevice.check(clEnqueueReadBuffer(q, arena, cl_bool(CL_TRUE), record, 24, &words, 0, nil, nil), "read the fault record")
            if words[0] != 0 {
                let check = plan.checks[Int(words[0]) - 1]
                guard let i = function.body.first(where: { $0.id == check }), case .check(let c) = i.op, let t = i.type else {
                    throw KilnError.internalError("fault record names check \(words[0]), which \(function.name) does not have")
                }
                throw c.error(position: Int(words[1]), value: words[2], shape: t.shape)
            }
        }
    }
}
