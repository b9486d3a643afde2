import Foundation
import KilnIR
import KilnKernels
import KilnOpenCL

/// The devices a session places ops on (the CPU, then `/gpu:0`, `/gpu:1`, ...) and the backend
/// that compiles for each. The CPU compiles with the session's backend (llvm or c); a GPU with
/// the OpenCL backend of that device, one per device per process, so every session shares the
/// device's memory pool (the first session to use a GPU sets its gpu_options).
struct SessionDevices {
    let devices: [PlacementDevice]
    private let cpuBackend: any Backend
    private let gpuBackend: (Int) throws -> any Backend

    init(config: SessionConfig, cpuBackend: any Backend) throws {
        if let f = config.gpuOptions.perProcessGpuMemoryFraction, !(f > 0) {
            throw KilnError.invalidArgument("gpuOptions.perProcessGpuMemoryFraction must be above 0, got \(f)")
        }
        self.cpuBackend = cpuBackend
        if let standIns = config.gpuStandIns {
            // Tests without a driver: each stand-in GPU compiles natively (host memory).
            let backends = try standIns.map { try $0.make() }
            devices = [.cpu] + backends.indices.map { PlacementDevice.gpu($0) }
            gpuBackend = { backends[$0] }
            return
        }
        let gpus = GPUBackends.gpus(allowCPU: config.openCLAllowCPU ?? OpenCL.allowCPUFromEnvironment)
        devices = [.cpu] + gpus.indices.map { PlacementDevice.gpu($0) }
        let options = config.gpuOptions
        gpuBackend = { GPUBackends.backend(for: gpus[$0], options: options) }
    }

    func backend(for device: PlacementDevice) throws -> any Backend {
        device.isCPU ? cpuBackend : try gpuBackend(device.index)
    }
}

extension Session {
    /// The devices a session with `config` places ops on: the CPU, then `/gpu:0`, `/gpu:1`, ...
    /// (TensorFlow's device_lib.list_local_devices).
    public static func devices(config: SessionConfig = SessionConfig()) throws -> [PlacementDevice] {
        if let standIns = config.gpuStandIns { return [.cpu] + standIns.indices.map { PlacementDevice.gpu($0) } }
        let gpus = GPUBackends.gpus(allowCPU: config.openCLAllowCPU ?? OpenCL.allowCPUFromEnvironment)
        return [.cpu] + gpus.indices.map { PlacementDevice.gpu($0) }
    }
}

/// The OpenCL GPUs of this process (`OpenCL.gpus`, enumerated once) and one backend per device.
enum GPUBackends {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var all: [OpenCLDevice]?
    nonisolated(unsafe) private static var withCPU: [OpenCLDevice]?
    nonisolated(unsafe) private static var backends: [OpenCLDevice: any Backend] = [:]

    /// `/gpu:0`, `/gpu:1`, ... in order: the GPUs, then (allowCPU) CPU OpenCL devices. A driver
    /// that fails to enumerate counts as no GPU (said once at KILN_DEBUG=1), as TensorFlow goes
    /// on without a GPU it cannot open, so CPU sessions never fail for it.
    static func gpus(allowCPU: Bool) -> [OpenCLDevice] {
        lock.withLock {
            if allowCPU, let d = withCPU { return d }
            if !allowCPU, let d = all { return d }
            let found: [OpenCLDevice]
            do { found = try OpenCL.gpus(allowCPU: allowCPU) } catch {
                if Debug.level >= 1 { Debug.log("no OpenCL GPU: listing OpenCL devices failed: \(error)") }
                found = []
            }
            if allowCPU { withCPU = found } else { all = found }
            return found
        }
    }

    /// The backend of `device`, made on first use with `options` (later sessions share it).
    static func backend(for device: OpenCLDevice, options: GPUOptions) -> any Backend {
        lock.withLock {
            if let b = backends[device] { return b }
            let b = OpenCLBackend(device: device, memory: memoryOptions(options))
            backends[device] = b
            return b
        }
    }

    /// TensorFlow's gpu_options as the OpenCL device pool's options.
    static func memoryOptions(_ o: GPUOptions) -> OpenCLMemoryOptions {
        OpenCLMemoryOptions(allowGrowth: o.allowGrowth, memoryFraction: o.perProcessGpuMemoryFraction)
    }
}
