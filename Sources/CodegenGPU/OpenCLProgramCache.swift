import COpenCL
import Foundation
import KilnIR
import KilnKernels

/// Builds programs once: in memory per process (keyed by build options and source hash), and
/// on disk as the driver's binaries (CL_PROGRAM_BINARIES) keyed by device, vendor, driver
/// version, build options and source hash, so a second process skips the driver's compile
/// (PoCL takes 0.1-1 s per program, NVIDIA about as long for a large one). A cache file that is
/// truncated, corrupt or refused by the driver is ignored and rewritten; files are written to a
/// temporary name and renamed, so a reader never sees half a file.
public final class OpenCLProgramCache: @unchecked Sendable {
    public let device: OpenCLDevice
    let context: cl_context
    /// Where binaries go: `KILN_OPENCL_CACHE`, else `opencl` in Kiln's cache directory
    /// (`KILN_CACHE_DIR`, `$XDG_CACHE_HOME/kiln` or `~/.cache/kiln`); nil keeps no files.
    public var directory: URL?
    /// Off only to show the disk cache at work within one process (tests).
    public var memoryCacheEnabled = true
    /// The most bytes of binaries kept on disk (`KILN_OPENCL_CACHE_BYTES`, default 1 GiB): past
    /// it, the files least recently used go first (a hit refreshes a file's time).
    public var diskLimitBytes: Int
    /// What happened, for tests and KILN_DEBUG: driver compiles from source, memory hits, disk hits.
    public private(set) var compiles = 0
    public private(set) var memoryHits = 0
    public private(set) var diskHits = 0
    /// Cache files that were unreadable, corrupt or refused, and were rewritten.
    public private(set) var rejectedFiles = 0
    private var programs: [String: cl_program] = [:]
    /// Programs being built now (by memory key), so a second thread waits instead of building it too.
    private var building: Set<String> = []
    private let state = NSCondition()

    init(device: OpenCLDevice, context: cl_context, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.device = device
        self.context = context
        directory = Self.defaultDirectory(environment)
        diskLimitBytes = environment["KILN_OPENCL_CACHE_BYTES"].flatMap { Int($0) } ?? DiskCacheFiles.limit(environment)
    }

    static func defaultDirectory(_ env: [String: String]) -> URL? {
        if let d = env["KILN_OPENCL_CACHE"], !d.isEmpty { return URL(fileURLWithPath: d) }
        return DiskCacheFiles.root(env)?.appendingPathComponent("opencl")
    }

    private func files(_ dir: URL) -> DiskCacheFiles {
        DiskCacheFiles(directory: dir, fileExtension: "clbin", magic: "KILNCLB1", limitBytes: diskLimitBytes)
    }

    /// The built program for `source`; the cache owns it (the caller must not release it).
    /// Different programs build at once on several threads; a thread asking for a program
    /// another is building waits for it.
    public func program(source: String, options: String) throws -> cl_program {
        let sourceHash = SHA256.hex(Array(source.utf8))
        let memoryKey = options + "\u{0}" + sourceHash
        state.lock()
        while building.contains(memoryKey) { state.wait() }
        if memoryCacheEnabled, let p = programs[memoryKey] {
            memoryHits += 1
            state.unlock()
            return p
        }
        building.insert(memoryKey)
        let keepInMemory = memoryCacheEnabled, directory = directory
        state.unlock()
        defer {
            state.lock()
            building.remove(memoryKey)
            state.broadcast()
            state.unlock()
        }
        let diskKey = SHA256.hex(Array([device.name, device.vendor, device.version, device.driverVersion, options, sourceHash]
            .joined(separator: "\u{0}").utf8))
        let disk = directory.map(files)
        var program: cl_program?
        if let disk, let binary = readBinary(disk, diskKey) {
            program = try? build(binary: binary, options: options)
            if program != nil {
                count(\.diskHits)
                debugLog("program from disk cache \(diskKey).clbin (\(binary.count) bytes)")
            } else {
                count(\.rejectedFiles)
                debugLog("the driver refused the cached program \(disk.file(diskKey).path); compiling")
            }
        }
        if program == nil {
            let t0 = DispatchTime.now()
            let p = try build(source: source, options: options)
            count(\.compiles)
            debugLog("program compiled by the driver in \(Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6) ms")
            if let disk { writeBinary(p, to: disk, diskKey) }
            program = p
        }
        if keepInMemory {
            state.lock()
            programs[memoryKey] = program!
            state.unlock()
        }
        return program!
    }

    private func count(_ counter: ReferenceWritableKeyPath<OpenCLProgramCache, Int>) {
        state.lock()
        self[keyPath: counter] += 1
        state.unlock()
    }

    // MARK: building

    private func build(source: String, options: String) throws -> cl_program {
        var status: cl_int = 0
        let p: cl_program? = source.withCString { s in
            var ptr: UnsafePointer<CChar>? = s
            return clCreateProgramWithSource(context, 1, &ptr, nil, &status)
        }
        guard let p, status == CL_SUCCESS else { throw KilnError(.internal, "OpenCL clCreateProgramWithSource failed with status \(status)") }
        try finishBuild(p, options: options, what: "source")
        return p
    }

    private func build(binary: [UInt8], options: String) throws -> cl_program {
        var status: cl_int = 0, binaryStatus: cl_int = 0
        var ids: [cl_device_id?] = [device.id]
        var length = binary.count
        let p: cl_program? = binary.withUnsafeBufferPointer { b in
            var ptr: UnsafePointer<UInt8>? = b.baseAddress
            return clCreateProgramWithBinary(context, 1, &ids, &length, &ptr, &binaryStatus, &status)
        }
        guard let p, status == CL_SUCCESS, binaryStatus == CL_SUCCESS else {
            if let p { clReleaseProgram(p) }
            throw KilnError(.internal, "OpenCL clCreateProgramWithBinary failed with status \(status)/\(binaryStatus)")
        }
        try finishBuild(p, options: options, what: "cached binary")
        return p
    }

    private func finishBuild(_ p: cl_program, options: String, what: String) throws {
        var ids: [cl_device_id?] = [device.id]
        let status = clBuildProgram(p, 1, &ids, options, nil, nil)
        guard status == CL_SUCCESS else {
            let log = (try? OpenCL.string { clGetProgramBuildInfo(p, device.id, cl_program_build_info(CL_PROGRAM_BUILD_LOG), $0, $1, $2) }) ?? ""
            clReleaseProgram(p)
            throw KilnError(.internal, "OpenCL could not build the program (\(what), options '\(options)') for \(device.name): status \(status)\(OpenCL.statusName(status).map { " (\($0))" } ?? ""); build log:\n\(log)")
        }
    }

    // MARK: files

    /// The binary stored under `key`, or nil when there is none or it is not a whole, intact cache file.
    private func readBinary(_ disk: DiskCacheFiles, _ key: String) -> [UInt8]? {
        switch disk.read(key) {
        case .hit(let binary): return binary
        case .absent: return nil
        case .rejected(let why):
            count(\.rejectedFiles)
            debugLog("ignoring the program cache file \(disk.file(key).path): \(why)")
            return nil
        }
    }

    private func writeBinary(_ p: cl_program, to disk: DiskCacheFiles, _ key: String) {
        var size = 0
        guard clGetProgramInfo(p, cl_program_info(CL_PROGRAM_BINARY_SIZES), MemoryLayout<Int>.size, &size, nil) == CL_SUCCESS, size > 0 else {
            debugLog("the driver gives no program binary to cache")
            return
        }
        var binary = [UInt8](repeating: 0, count: size)
        let status: cl_int = binary.withUnsafeMutableBufferPointer { b in
            var ptr: UnsafeMutablePointer<UInt8>? = b.baseAddress
            return clGetProgramInfo(p, cl_program_info(CL_PROGRAM_BINARIES), MemoryLayout<UnsafeMutablePointer<UInt8>?>.size, &ptr, nil)
        }
        guard status == CL_SUCCESS else { return }
        do { try disk.write(key, binary) } catch {
            debugLog("could not write the program cache file \(disk.file(key).path): \(error)")
        }
    }
}

/// KILN_DEBUG=1 and above: what the OpenCL runtime did (caches, pool), on stderr.
func debugLog(_ s: @autoclosure () -> String) {
    guard Debug.level >= 1 else { return }
    Debug.log("opencl: " + s())
}
