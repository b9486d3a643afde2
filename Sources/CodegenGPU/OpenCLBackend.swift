import Foundation
import KilnIR
import KilnKernels
import KilnPasses

/// Compiles IR functions for one OpenCL device: the plan for the device's target, every kernel
/// rendered as OpenCL C by the shared writer (`writeDeviceProgram`), the device library's
/// kernels the launches use appended, the whole built once per source through the device's
/// program cache. Executables share the device's context, queue and memory pool.
public struct OpenCLBackend: Backend {
    public var name: String { "opencl" }
    public let device: OpenCLDevice
    public let memory: OpenCLMemoryOptions
    public let target: TargetDescription
    /// Every program is OpenCL C 1.2: NVIDIA's OpenCL 3.0 and PoCL both take it.
    static let buildOptions = "-cl-std=CL1.2"

    public init(device: OpenCLDevice, memory: OpenCLMemoryOptions = OpenCLMemoryOptions()) {
        self.device = device
        self.memory = memory
        target = .openCL(name: "opencl \(device.name)", maxWorkGroupSize: device.maxWorkGroupSize, localMemoryBytes: device.localMemoryBytes,
                         computeUnits: device.computeUnits, float64: device.float64)
    }

    /// What the device library sizes its kernels by.
    public var libraryLimits: OpenCLLibrary.Limits {
        OpenCLLibrary.Limits(maxWorkGroupSize: device.maxWorkGroupSize, localMemoryBytes: device.localMemoryBytes, isCPU: device.kind == .cpu)
    }

    public var bufferLimit: (bytes: Int, reason: String)? {
        (Int(clamping: device.maxAllocBytes), "CL_DEVICE_MAX_MEM_ALLOC_SIZE of \(device.name)")
    }

    public func compile(_ f: Function, options: CompileOptions = CompileOptions()) throws -> any Executable {
        try compileForDevice(f, options: options)
    }

    public func compileForDevice(_ f: Function, options: CompileOptions = CompileOptions()) throws -> OpenCLExecutable {
        let t0 = DispatchTime.now()
        let context = try OpenCLContext.shared(device)
        let plan = KernelPlan(f, fuse: options.fuse, target: target)
        if plan.arenaBytes > options.memoryLimit {
            throw KilnError.resourceExhausted("OOM when allocating the arena of '\(f.name)': \(plan.arenaBytes) bytes for the values live at once, above the memory limit of \(options.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
        }
        try checkTensorSizes(f, plan: plan, context: context)
        // Not `kiln_...`: that prefix is the device library's.
        let entryName = "g_" + f.name.filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
        let renderer = CStyleRenderer(.openCL, title: "@\(f.name)")
        let program = try KernelWriter(renderer: renderer, function: f, plan: plan, target: target, profile: false).writeDeviceProgram(entryName: entryName)
        guard renderer.refusals.isEmpty else {
            throw KilnError.unimplemented("OpenCL C cannot express \(renderer.refusals.joined(separator: "; ")) (in '\(f.name)' for \(context.deviceName))")
        }
        if program.usesFloat64 && !device.float64 {
            throw KilnError.unimplemented("'\(f.name)' computes in float64, which \(context.deviceName) (\(device.name)) does not support (no cl_khr_fp64)")
        }
        var source = program.source
        let limits = libraryLimits
        if !program.libraryKernels.isEmpty {
            source += "\n" + (try OpenCLLibrary.source(for: program.libraryKernels, float64: device.float64, limits: limits))
        }
        let emitMs = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        let pool = try OpenCLMemoryPool.shared(context, options: memory)
        return try OpenCLExecutable(program: program, source: source, function: f, plan: plan, context: context, pool: pool, options: options,
                                    emitMs: emitMs, libraryRange: { try OpenCLLibrary.ndRange(kernel: $0.kernel, logical: $0.global, limits: limits) })
    }

    /// No value a kernel stores may be larger than the device's largest buffer (values in the
    /// arena too: the arena is one buffer). The frontend names the node when it checks first.
    private func checkTensorSizes(_ f: Function, plan: KernelPlan, context: OpenCLContext) throws {
        let types = f.typeTable()
        for (v, storage) in plan.storage.sorted(by: { $0.key < $1.key }) where storage != .inline {
            guard let t = types[v], UInt64(clamping: t.byteCount) > device.maxAllocBytes else { continue }
            let what = v < f.params.count ? "\(f.params[v].kind == .variable ? "variable" : "feed") '\(f.params[v].name)'"
                : OpenCLExecutable.describe(v, in: f)
            throw KilnError.resourceExhausted("OOM when allocating tensor with shape\(t.shape) and type \(t.dtype.name) (\(t.byteCount) bytes) for \(what) of '\(f.name)' on \(context.deviceName): above CL_DEVICE_MAX_MEM_ALLOC_SIZE of \(device.name), \(device.maxAllocBytes) bytes")
        }
        if UInt64(plan.arenaBytes) > device.maxAllocBytes {
            throw KilnError.resourceExhausted("OOM when allocating the arena of '\(f.name)' on \(context.deviceName): \(plan.arenaBytes) bytes for the values live at once, above CL_DEVICE_MAX_MEM_ALLOC_SIZE of \(device.name), \(device.maxAllocBytes) bytes")
        }
    }
}
