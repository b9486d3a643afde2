import XCTest
import COpenCL
import KilnKernels

/// Runs one rendered OpenCL C kernel on the first OpenCL device (PoCL's CPU device here) as a
/// single work item, its parameters bound to `KernelBuffers`' inputs then outputs in order (the
/// kernels the tests write use their buffers in that order, which is their parameter order).
final class OpenCLRunner {
    let context: cl_context
    let queue: cl_command_queue
    let device: cl_device_id

    /// Throws XCTSkip where no OpenCL device is installed.
    init() throws {
        var count: cl_uint = 0
        guard clGetPlatformIDs(0, nil, &count) == CL_SUCCESS, count > 0 else { throw XCTSkip("no OpenCL platform") }
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try Self.check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var found: cl_device_id?
        for p in platforms where found == nil {
            var d: cl_device_id?
            if clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 1, &d, nil) == CL_SUCCESS { found = d }
        }
        guard let device = found else { throw XCTSkip("no OpenCL device") }
        self.device = device
        var status: cl_int = 0
        var devices: [cl_device_id?] = [device]
        context = clCreateContext(nil, 1, &devices, nil, nil, &status)
        try Self.check(status, "clCreateContext")
        queue = clCreateCommandQueue(context, device, 0, &status)
        try Self.check(status, "clCreateCommandQueue")
    }

    deinit {
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    static func check(_ status: cl_int, _ what: String) throws {
        if status != CL_SUCCESS { throw NSError(domain: "OpenCL", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "\(what) failed: \(status)"]) }
    }

    func run(_ source: String, kernel name: String, _ buffers: KernelBuffers) throws {
        var status: cl_int = 0
        var program: cl_program?
        source.withCString { s in
            var p: UnsafePointer<CChar>? = s
            program = clCreateProgramWithSource(context, 1, &p, nil, &status)
        }
        try Self.check(status, "clCreateProgramWithSource")
        defer { clReleaseProgram(program) }
        var devices: [cl_device_id?] = [device]
        if clBuildProgram(program, 1, &devices, "-cl-std=CL1.2", nil, nil) != CL_SUCCESS {
            var size = 0
            clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
            var log = [CChar](repeating: 0, count: size + 1)
            clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &log, nil)
            XCTFail("the OpenCL compiler rejects the source:\n\(String(cString: log))\n\(source)")
            return
        }
        let k = clCreateKernel(program, name, &status)
        try Self.check(status, "clCreateKernel \(name)")
        defer { clReleaseKernel(k) }
        let all = Array(zip(buffers.inputs + buffers.outputs, buffers.inputBytes + buffers.outputBytes))
        var memories: [cl_mem?] = []
        defer { memories.forEach { clReleaseMemObject($0) } }
        for (n, (p, bytes)) in all.enumerated() {
            var m = clCreateBuffer(context, cl_mem_flags(CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR), bytes, p, &status)
            try Self.check(status, "clCreateBuffer")
            memories.append(m)
            try Self.check(clSetKernelArg(k, cl_uint(n), MemoryLayout<cl_mem?>.size, &m), "clSetKernelArg \(n)")
        }
        var global = 1
        try Self.check(clEnqueueNDRangeKernel(queue, k, 1, nil, &global, nil, 0, nil, nil), "clEnqueueNDRangeKernel")
        for (n, (p, bytes)) in zip(buffers.outputs, buffers.outputBytes).enumerated() {
            try Self.check(clEnqueueReadBuffer(queue, memories[buffers.inputs.count + n], cl_bool(CL_TRUE), 0, bytes, p, 0, nil, nil), "clEnqueueReadBuffer")
        }
    }
}
