import COpenCL
import Foundation
import KilnIR

/// An OpenCL device as the ICD loader reports it, with the limits the scheduler, the device
/// library and the runtime read (work-group size, local memory, the largest buffer, float64).
public struct OpenCLDevice: @unchecked Sendable, CustomStringConvertible, Hashable {
    public enum Kind: String, Sendable { case cpu = "CPU", gpu = "GPU", accelerator = "ACCELERATOR", other = "OTHER" }

    /// The driver's handles (valid for the whole process: devices of the ICD loader are never released).
    public let id: cl_device_id
    public let platformID: cl_platform_id
    public let platform: String
    public let name: String
    public let vendor: String
    /// CL_DEVICE_VERSION (`OpenCL 3.0 CUDA`, `OpenCL 3.0 PoCL ...`).
    public let version: String
    /// CL_DRIVER_VERSION: part of the program cache's key (a new driver compiles differently).
    public let driverVersion: String
    public let kind: Kind
    public let computeUnits: Int
    public let globalMemoryBytes: UInt64
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE: no single buffer may be larger.
    public let maxAllocBytes: UInt64
    public let maxWorkGroupSize: Int
    public let localMemoryBytes: Int
    /// CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes (the driver reports bits): sub-buffer origins
    /// must be multiples of it.
    public let baseAddressAlignment: Int
    public var extensions: Set<String>

    /// cl_khr_fp64: float64 tensors and double arithmetic.
    public var float64: Bool { extensions.contains("cl_khr_fp64") }
    /// 64-bit atomics (cl_khr_int64_base_atomics and cl_khr_int64_extended_atomics for min/max).
    public var int64BaseAtomics: Bool { extensions.contains("cl_khr_int64_base_atomics") }
    public var int64ExtendedAtomics: Bool { extensions.contains("cl_khr_int64_extended_atomics") }

    public var description: String {
        "\(kind.rawValue) \(name) (\(vendor), \(version), driver \(driverVersion), \(computeUnits) compute units, \(globalMemoryBytes >> 20) MiB) on \(platform)"
    }

    /// The limits `kiln devices` prints, one `key value` pair per entry.
    public var limits: [(String, String)] {
        [("global memory", "\(globalMemoryBytes >> 20) MiB"), ("max alloc", "\(maxAllocBytes >> 20) MiB"),
         ("compute units", "\(computeUnits)"), ("max work-group", "\(maxWorkGroupSize)"),
         ("local memory", "\(localMemoryBytes >> 10) KiB"), ("base alignment", "\(baseAddressAlignment) B"),
         ("fp64", float64 ? "yes" : "no"),
         ("int64 atomics", int64ExtendedAtomics ? "base+extended" : int64BaseAtomics ? "base" : "no")]
    }

    public static func == (a: OpenCLDevice, b: OpenCLDevice) -> Bool { a.id == b.id }
    public func hash(into h: inout Hasher) { h.combine(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(id)))) }
}

public enum OpenCL {
    /// Every device of every platform, platforms in the loader's order; empty when no OpenCL
    /// driver is installed.
    public static func devices() throws -> [OpenCLDevice] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        // -1001 is CL_PLATFORM_NOT_FOUND_KHR: the loader found no driver, which is not an error here.
        if status == -1001 || count == 0 { return [] }
        try check(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var out: [OpenCLDevice] = []
        for case let p? in platforms {
            let platformName = try string { clGetPlatformInfo(p, cl_platform_info(CL_PLATFORM_NAME), $0, $1, $2) }
            var n: cl_uint = 0
            let s = clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if s == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try check(s, "clGetDeviceIDs")
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try check(clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs")
            for case let d? in ids { out.append(try device(d, platform: p, platformName: platformName)) }
        }
        return out
    }

    /// The devices `/gpu:N` counts, in order: every GPU of every platform, then (with `allowCPU`)
    /// every CPU device, so a real GPU is `/gpu:0` whenever one is present and PoCL stands in
    /// for one in tests and CI.
    public static func gpus(allowCPU: Bool) throws -> [OpenCLDevice] {
        let all = try devices()
        return all.filter { $0.kind == .gpu } + (allowCPU ? all.filter { $0.kind == .cpu } : [])
    }

    /// `KILN_OPENCL_ALLOW_CPU=1`: CPU OpenCL devices count as GPUs (read by sessions and the CLI).
    public static var allowCPUFromEnvironment: Bool { ProcessInfo.processInfo.environment["KILN_OPENCL_ALLOW_CPU"] == "1" }

    static func device(_ d: cl_device_id, platform: cl_platform_id, platformName: String) throws -> OpenCLDevice {
        func text(_ what: Int32) throws -> String { try string { clGetDeviceInfo(d, cl_device_info(what), $0, $1, $2) } }
        func number<T: FixedWidthInteger>(_ what: Int32, _: T.Type) throws -> T {
            var v: T = 0
            try check(clGetDeviceInfo(d, cl_device_info(what), MemoryLayout<T>.size, &v, nil), "clGetDeviceInfo(\(what))")
            return v
        }
        let type = try number(CL_DEVICE_TYPE, cl_device_type.self)
        let kind: OpenCLDevice.Kind = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? .gpu
            : type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? .cpu
            : type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? .accelerator : .other
        return OpenCLDevice(
            id: d, platformID: platform, platform: platformName, name: try text(CL_DEVICE_NAME), vendor: try text(CL_DEVICE_VENDOR),
            version: try text(CL_DEVICE_VERSION), driverVersion: try text(CL_DRIVER_VERSION), kind: kind,
            computeUnits: Int(try number(CL_DEVICE_MAX_COMPUTE_UNITS, cl_uint.self)),
            globalMemoryBytes: UInt64(try number(CL_DEVICE_GLOBAL_MEM_SIZE, cl_ulong.self)),
            maxAllocBytes: UInt64(try number(CL_DEVICE_MAX_MEM_ALLOC_SIZE, cl_ulong.self)),
            maxWorkGroupSize: Int(try number(CL_DEVICE_MAX_WORK_GROUP_SIZE, Int.self)),
            localMemoryBytes: Int(try number(CL_DEVICE_LOCAL_MEM_SIZE, cl_ulong.self)),
            baseAddressAlignment: max(1, Int(try number(CL_DEVICE_MEM_BASE_ADDR_ALIGN, cl_uint.self)) / 8),
            extensions: Set(try text(CL_DEVICE_EXTENSIONS).split(separator: " ").map(String.init)))
    }

    static func string(_ query: (Int, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int>?) -> cl_int) throws -> String {
        var size = 0
        try check(query(0, nil, &size), "size query")
        var bytes = [UInt8](repeating: 0, count: size + 1)
        try check(query(size, &bytes, nil), "info query")
        // OpenCL strings end at their first NUL (the size it reports counts it).
        let text = bytes.prefix { $0 != 0 }
        return String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    static func check(_ status: cl_int, _ call: String) throws {
        if status != CL_SUCCESS { throw KilnError(.unavailable, "OpenCL \(call) failed with status \(status)\(statusName(status).map { " (\($0))" } ?? "")") }
    }

    /// The names of the statuses a user is likely to meet.
    static func statusName(_ s: cl_int) -> String? {
        switch s {
        case -4: return "CL_MEM_OBJECT_ALLOCATION_FAILURE"
        case -5: return "CL_OUT_OF_RESOURCES"
        case -6: return "CL_OUT_OF_HOST_MEMORY"
        case -11: return "CL_BUILD_PROGRAM_FAILURE"
        case -30: return "CL_INVALID_VALUE"
        case -38: return "CL_INVALID_MEM_OBJECT"
        case -46: return "CL_INVALID_KERNEL_NAME"
        case -48: return "CL_INVALID_KERNEL"
        case -51: return "CL_INVALID_ARG_SIZE"
        case -52: return "CL_INVALID_KERNEL_ARGS"
        case -54: return "CL_INVALID_WORK_GROUP_SIZE"
        case -61: return "CL_INVALID_BUFFER_SIZE"
        default: return nil
        }
    }
}
