import XCTest
import COpenCL
@testable import KilnOpenCL

/// Runs device-library kernels on the first OpenCL device (PoCL's CPU device here): one program
/// per set of limits (PoCL compiles slowly), buffers in and out, launches with the library's own
/// NDRange. Throws XCTSkip, and says why, where no OpenCL device is installed.
final class LibraryHarness {
    enum Argument {
        case buffer(Int)
        case int32(Int32)
        case int64(Int64)
        case float32(Float)
        case float64(Double)
    }

    let context: cl_context
    let queue: cl_command_queue
    let device: cl_device_id
    /// The device's own limits, as the backend will pass them.
    let limits: OpenCLLibrary.Limits
    let hasFloat64: Bool
    private var buffers: [cl_mem?] = []
    private var programs: [OpenCLLibrary.Limits: cl_program] = [:]

    init() throws {
        var count: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &count) == CL_SUCCESS, count > 0 else { throw Self.skip("no OpenCL platform is installed") }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try Self.check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var found: cl_device_id?
        for p in platforms where found == nil {
            var d: cl_device_id?
            if clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 1, &d, nil) == CL_SUCCESS { found = d }
        }
        guard let device = found else { throw Self.skip("no OpenCL device is present") }
        self.device = device
        var status: cl_int = 0
        var devices: [cl_device_id?] = [device]
        context = clCreateContext(nil, 1, &devices, nil, nil, &status)
        try Self.check(status, "clCreateContext")
        queue = clCreateCommandQueue(context, device, cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE), &status)
        try Self.check(status, "clCreateCommandQueue")
        var wg = 0
        var local: cl_ulong = 0
        var type: cl_device_type = 0
        try Self.check(clGetDeviceInfo(device, cl_device_info(CL_DEVICE_MAX_WORK_GROUP_SIZE), MemoryLayout<Int>.size, &wg, nil), "clGetDeviceInfo")
        try Self.check(clGetDeviceInfo(device, cl_device_info(CL_DEVICE_LOCAL_MEM_SIZE), MemoryLayout<cl_ulong>.size, &local, nil), "clGetDeviceInfo")
        try Self.check(clGetDeviceInfo(device, cl_device_info(CL_DEVICE_TYPE), MemoryLayout<cl_device_type>.size, &type, nil), "clGetDeviceInfo")
        limits = OpenCLLibrary.Limits(maxWorkGroupSize: wg, localMemoryBytes: Int(local), isCPU: type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0)
        var size = 0
        clGetDeviceInfo(device, cl_device_info(CL_DEVICE_EXTENSIONS), 0, nil, &size)
        var ext = [CChar](repeating: 0, count: size + 1)
        clGetDeviceInfo(device, cl_device_info(CL_DEVICE_EXTENSIONS), size, &ext, nil)
        hasFloat64 = String(cString: ext).contains("cl_khr_fp64")
    }

    deinit {
        buffers.forEach { clReleaseMemObject($0) }
        programs.values.forEach { clReleaseProgram($0) }
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    static func skip(_ why: String) -> XCTSkip {
        print("SKIPPED: device library tests need an OpenCL device: \(why)")
        return XCTSkip("device library tests need an OpenCL device: \(why)")
    }

    static func check(_ status: cl_int, _ what: String) throws {
        if status != CL_SUCCESS { throw NSError(domain: "OpenCL", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "\(what) failed: \(status)"]) }
    }

    /// Every library kernel the device supports, built once for `limits`.
    func program(_ limits: OpenCLLibrary.Limits) throws -> cl_program {
        if let p = programs[limits] { return p }
        let names = hasFloat64 ? OpenCLLibrary.kernels : OpenCLLibrary.kernels.subtracting([OpenCLLibrary.gemmF64])
        let source = try OpenCLLibrary.source(for: names, float64: hasFloat64, limits: limits)
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
            throw NSError(domain: "OpenCL", code: 0, userInfo: [NSLocalizedDescriptionKey: "the library does not build:\n\(String(cString: log))\n\(source)"])
        }
        programs[limits] = program!
        return program!
    }

    /// A device buffer holding `values`; its index for `.buffer`.
    func upload<T>(_ values: [T]) throws -> Int {
        var status: cl_int = 0
        let bytes = max(values.count * MemoryLayout<T>.stride, 16)
        let m = values.isEmpty
            ? clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE), bytes, nil, &status)
            : values.withUnsafeBytes { clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR), bytes, UnsafeMutableRawPointer(mutating: $0.baseAddress), &status) }
        try Self.check(status, "clCreateBuffer")
        buffers.append(m)
        return buffers.count - 1
    }

    func download<T>(_ index: Int, count: Int, as: T.Type) throws -> [T] {
        guard count > 0 else { return [] }
        return try [T](unsafeUninitializedCapacity: count) { out, n in
            try Self.check(clEnqueueReadBuffer(queue, buffers[index], cl_bool(CL_TRUE), 0, count * MemoryLayout<T>.stride, out.baseAddress, 0, nil, nil), "clEnqueueReadBuffer")
            n = count
        }
    }

    /// Enqueues `kernel` over the NDRange the library gives for `logical`, waits, and returns the
    /// device's own time for it in seconds (0 when the range is empty and nothing was enqueued).
    @discardableResult
    func launch(_ kernel: String, logical: [Int], _ arguments: [Argument], limits: OpenCLLibrary.Limits? = nil) throws -> Double {
        let limits = limits ?? self.limits
        let range = try OpenCLLibrary.ndRange(kernel: kernel, logical: logical, limits: limits)
        if range.global.contains(0) { return 0 }
        var status: cl_int = 0
        let k = clCreateKernel(try program(limits), kernel, &status)
        try Self.check(status, "clCreateKernel \(kernel)")
        defer { clReleaseKernel(k) }
        for (i, a) in arguments.enumerated() {
            let s: cl_int
            switch a {
            case .buffer(let b): var m = buffers[b]; s = clSetKernelArg(k, cl_uint(i), MemoryLayout<cl_mem?>.size, &m)
            case .int32(var v): s = clSetKernelArg(k, cl_uint(i), 4, &v)
            case .int64(var v): s = clSetKernelArg(k, cl_uint(i), 8, &v)
            case .float32(var v): s = clSetKernelArg(k, cl_uint(i), 4, &v)
            case .float64(var v): s = clSetKernelArg(k, cl_uint(i), 8, &v)
            }
            try Self.check(s, "clSetKernelArg \(i) of \(kernel)")
        }
        let global = range.global
        var event: cl_event?
        let enqueued = global.withUnsafeBufferPointer { g in
            if let local = range.local {
                return local.withUnsafeBufferPointer { clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, g.baseAddress, $0.baseAddress, 0, nil, &event) }
            }
            return clEnqueueNDRangeKernel(queue, k, cl_uint(g.count), nil, g.baseAddress, nil, 0, nil, &event)
        }
        try Self.check(enqueued, "clEnqueueNDRangeKernel \(kernel) global \(global) local \(range.local ?? [])")
        defer { clReleaseEvent(event) }
        try Self.check(clWaitForEvents(1, &event), "clWaitForEvents")
        var start: cl_ulong = 0, end: cl_ulong = 0
        try Self.check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil), "profiling")
        try Self.check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil), "profiling")
        return Double(end - start) * 1e-9
    }
}
