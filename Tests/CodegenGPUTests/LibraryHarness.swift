import XCTest
import COpenCL
@testable import KilnOpenCL

/// Runs device-library kernels on the first OpenCL device (PoCL's CPU device here) through the
/// runtime's shared context, profiling queue and program cache (one program per set of limits:
/// PoCL compiles slowly), with buffers in and out and the library's own NDRange. Throws XCTSkip,
/// and says why, where no OpenCL device is installed.
final class LibraryHarness {
    enum Argument {
        case buffer(Int)
        case int32(Int32)
        case int64(Int64)
        case float32(Float)
        case float64(Double)
    }

    let shared: OpenCLContext
    let queue: cl_command_queue
    var context: cl_context { shared.context }
    /// The device's own limits, as the backend passes them.
    let limits: OpenCLLibrary.Limits
    let hasFloat64: Bool
    private var buffers: [cl_mem?] = []

    init() throws {
        let devices: [OpenCLDevice]
        do { devices = try OpenCL.devices() } catch { throw Self.skip("listing OpenCL devices failed: \(error)") }
        guard let device = devices.first else { throw Self.skip("no OpenCL driver or device is installed (pocl-opencl-icd)") }
        shared = try OpenCLContext.shared(device)
        queue = try shared.profilingQueue()
        limits = OpenCLLibrary.Limits(device: device)
        hasFloat64 = device.float64
    }

    deinit {
        buffers.forEach { clReleaseMemObject($0) }
    }

    static func skip(_ why: String) -> XCTSkip {
        print("SKIPPED: device library tests need an OpenCL device: \(why)")
        return XCTSkip("device library tests need an OpenCL device: \(why)")
    }

    static func check(_ status: cl_int, _ what: String) throws {
        if status != CL_SUCCESS { throw NSError(domain: "OpenCL", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "\(what) failed: \(status)"]) }
    }

    /// Every library kernel the device supports, built for `limits` (the cache keeps it).
    func program(_ limits: OpenCLLibrary.Limits) throws -> cl_program {
        let names = hasFloat64 ? OpenCLLibrary.kernels : OpenCLLibrary.kernels.subtracting([OpenCLLibrary.gemmF64])
        return try shared.programs.program(source: try OpenCLLibrary.source(for: names, float64: hasFloat64, limits: limits), options: OpenCLBackend.buildOptions)
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
