import COpenCL
import KilnIR

/// An OpenCL device as the ICD loader reports it. The OpenCL backend's kernels and launch plans
/// build on this; today it tells a session and `kiln devices` what is present.
public struct OpenCLDevice: Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable { case cpu = "CPU", gpu = "GPU", accelerator = "ACCELERATOR", other = "OTHER" }

    public let platform: String
    public let name: String
    public let vendor: String
    public let version: String
    public let kind: Kind
    public let computeUnits: Int
    public let globalMemoryBytes: UInt64

    public var description: String {
        "\(kind.rawValue) \(name) (\(vendor), \(version), \(computeUnits) compute units, \(globalMemoryBytes >> 20) MiB) on \(platform)"
    }
}

public enum OpenCL {
    /// Every device of every platform; empty when no OpenCL driver is installed.
    public static func devices() throws -> [OpenCLDevice] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        // -1001 is CL_PLATFORM_NOT_FOUND_KHR: the loader found no driver, which is not an error here.
        if status == -1001 || count == 0 { return [] }
        try check(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &platforms, nil), "clGetPlatformIDs")
        var out: [OpenCLDevice] = []
        for p in platforms {
            let platformName = try string { clGetPlatformInfo(p, cl_platform_info(CL_PLATFORM_NAME), $0, $1, $2) }
            var n: cl_uint = 0
            let s = clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &n)
            if s == CL_DEVICE_NOT_FOUND || n == 0 { continue }
            try check(s, "clGetDeviceIDs")
            var ids = [cl_device_id?](repeating: nil, count: Int(n))
            try check(clGetDeviceIDs(p, cl_device_type(CL_DEVICE_TYPE_ALL), n, &ids, nil), "clGetDeviceIDs")
            for d in ids {
                func info(_ what: Int32) throws -> String { try string { clGetDeviceInfo(d, cl_device_info(what), $0, $1, $2) } }
                var type: cl_device_type = 0
                var units: cl_uint = 0
                var mem: cl_ulong = 0
                try check(clGetDeviceInfo(d, cl_device_info(CL_DEVICE_TYPE), MemoryLayout.size(ofValue: type), &type, nil), "clGetDeviceInfo")
                try check(clGetDeviceInfo(d, cl_device_info(CL_DEVICE_MAX_COMPUTE_UNITS), MemoryLayout.size(ofValue: units), &units, nil), "clGetDeviceInfo")
                try check(clGetDeviceInfo(d, cl_device_info(CL_DEVICE_GLOBAL_MEM_SIZE), MemoryLayout.size(ofValue: mem), &mem, nil), "clGetDeviceInfo")
                let kind: OpenCLDevice.Kind = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? .gpu
                    : type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? .cpu
                    : type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? .accelerator : .other
                out.append(OpenCLDevice(platform: platformName, name: try info(CL_DEVICE_NAME), vendor: try info(CL_DEVICE_VENDOR),
                                        version: try info(CL_DEVICE_VERSION), kind: kind, computeUnits: Int(units),
                                        globalMemoryBytes: UInt64(mem)))
            }
        }
        return out
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
        if status != CL_SUCCESS { throw KilnError(.unavailable, "OpenCL \(call) failed with status \(status)") }
    }
}

import Foundation
