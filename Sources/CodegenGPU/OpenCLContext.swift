import COpenCL
import Foundation
import KilnIR

/// One OpenCL context and in-order command queue per device, shared by every executable,
/// program and buffer on that device in this process (created once, under a lock). A second
/// queue with profiling enabled is made only when an executable profiles its kernels.
public final class OpenCLContext: @unchecked Sendable {
    public let device: OpenCLDevice
    public let context: cl_context
    /// The in-order queue every run enqueues on.
    public let queue: cl_command_queue
    /// `/device:GPU:N` as TensorFlow names it (N counts as `OpenCL.gpus(allowCPU: true)` does),
    /// or `/device:OPENCL:<name>` for a device that is never a `/gpu:N`.
    public let deviceName: String
    public let programs: OpenCLProgramCache
    private var profiling: cl_command_queue?
    private var lock = NSLock()

    nonisolated(unsafe) private static var contexts: [OpenCLDevice: OpenCLContext] = [:]  // under contextsLock
    private static let contextsLock = NSLock()

    /// The context of `device`, made on first use.
    public static func shared(_ device: OpenCLDevice) throws -> OpenCLContext {
        contextsLock.lock()
        defer { contextsLock.unlock() }
        if let c = contexts[device] { return c }
        let c = try OpenCLContext(device)
        contexts[device] = c
        return c
    }

    private init(_ device: OpenCLDevice) throws {
        self.device = device
        var status: cl_int = 0
        var ids: [cl_device_id?] = [device.id]
        guard let context = clCreateContext(nil, 1, &ids, nil, nil, &status), status == CL_SUCCESS else {
            throw KilnError(.unavailable, "OpenCL clCreateContext for \(device.name) failed with status \(status)")
        }
        self.context = context
        guard let queue = Self.makeQueue(context, device, profiling: false, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            throw KilnError(.unavailable, "OpenCL clCreateCommandQueue for \(device.name) failed with status \(status)")
        }
        self.queue = queue
        let index = (try? OpenCL.gpus(allowCPU: true))?.firstIndex(of: device)
        deviceName = index.map { "/device:GPU:\($0)" } ?? "/device:OPENCL:\(device.name)"
        programs = OpenCLProgramCache(device: device, context: context)
    }

    // Contexts live as long as the process (`shared` keeps them), so there is no deinit.

    /// The queue with CL_QUEUE_PROFILING_ENABLE, made on first use.
    public func profilingQueue() throws -> cl_command_queue {
        lock.lock()
        defer { lock.unlock() }
        if let q = profiling { return q }
        var status: cl_int = 0
        guard let q = Self.makeQueue(context, device, profiling: true, &status),
              status == CL_SUCCESS else {
            throw KilnError(.unavailable, "OpenCL clCreateCommandQueue (profiling) for \(device.name) failed with status \(status)")
        }
        profiling = q
        return q
    }

    /// An in-order queue (OpenCL 2.0's call: NVIDIA's and PoCL's drivers are 3.0).
    private static func makeQueue(_ context: cl_context, _ device: OpenCLDevice, profiling: Bool, _ status: inout cl_int) -> cl_command_queue? {
        var properties: [cl_queue_properties] = [cl_queue_properties(CL_QUEUE_PROPERTIES),
                                                 profiling ? cl_queue_properties(CL_QUEUE_PROFILING_ENABLE) : 0, 0]
        return clCreateCommandQueueWithProperties(context, device.id, &properties, &status)
    }

    /// Checks an OpenCL status; allocation failures are resourceExhausted, naming `what`.
    func check(_ status: cl_int, _ call: String, _ what: @autoclosure () -> String = "") throws {
        guard status != CL_SUCCESS else { return }
        let name = OpenCL.statusName(status).map { " (\($0))" } ?? ""
        let subject = what().isEmpty ? "" : " for \(what())"
        if status == CL_MEM_OBJECT_ALLOCATION_FAILURE || status == CL_OUT_OF_RESOURCES || status == CL_OUT_OF_HOST_MEMORY {
            throw KilnError.resourceExhausted("OOM on \(deviceName) (\(device.name)): \(call) failed with status \(status)\(name)\(subject)")
        }
        throw KilnError(.internal, "OpenCL \(call) on \(deviceName) (\(device.name)) failed with status \(status)\(name)\(subject)")
    }
}
