import COpenCL
import Foundation
import KilnIR

/// Builds programs once: in memory per process (keyed by build options and source hash), and
/// on disk as the driver's binaries (CL_PROGRAM_BINARIES) keyed by device, vendor, driver
/// version, build options and source hash, so a second process skips the driver's compile
/// (PoCL takes 0.1-1 s per program, NVIDIA about as long for a large one). A cache file that is
/// truncated, corrupt or refused by the driver is ignored and rewritten; files are written to a
/// temporary name and renamed, so a reader never sees half a file.
public final class OpenCLProgramCache: @unchecked Sendable {
    public let device: OpenCLDevice
    let context: cl_context
    /// Where binaries go: `KILN_OPENCL_CACHE`, else `$XDG_CACHE_HOME/kiln/opencl`, else
    /// `~/.cache/kiln/opencl`; nil keeps no files.
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
    static let magic = Array("KILNCLB1".utf8)

    init(device: OpenCLDevice, context: cl_context, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.device = device
        self.context = context
        directory = Self.defaultDirectory(environment)
        diskLimitBytes = environment["KILN_OPENCL_CACHE_BYTES"].flatMap { Int($0) } ?? 1 << 30
    }

    static func defaultDirectory(_ env: [String: String]) -> URL? {
        if let d = env["KILN_OPENCL_CACHE"], !d.isEmpty { return URL(fileURLWithPath: d) }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("kiln/opencl") }
        if let h = env["HOME"], !h.isEmpty { return URL(fileURLWithPath: h).appendingPathComponent(".cache/kiln/opencl") }
        return nil
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
        let file = directory?.appendingPathComponent(diskKey + ".clbin")
        var program: cl_program?
        if let file, let binary = readBinary(file) {
            program = try? build(binary: binary, options: options)
            if program != nil {
                count(\.diskHits)
                try? FileManager.default.setAttributes([.modificationDate: Date()], ofItemAtPath: file.path)
                debugLog("program from disk cache \(file.lastPathComponent) (\(binary.count) bytes)")
            } else {
                count(\.rejectedFiles)
                debugLog("the driver refused the cached program \(file.path); compiling")
            }
        }
        if program == nil {
            let t0 = DispatchTime.now()
            let p = try build(source: source, options: options)
            count(\.compiles)
            debugLog("program compiled by the driver in \(Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6) ms")
            if let file { writeBinary(p, to: file) }
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

    /// The binary in `file`, or nil when there is none or it is not a whole, intact cache file.
    private func readBinary(_ file: URL) -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: file.path) else { return nil }
        let bytes = [UInt8](data)
        let header = Self.magic.count + 8 + 32
        func reject(_ why: String) -> [UInt8]? {
            count(\.rejectedFiles)
            debugLog("ignoring the program cache file \(file.path): \(why)")
            return nil
        }
        guard bytes.count >= header, Array(bytes[0..<Self.magic.count]) == Self.magic else { return reject("not a Kiln program cache file") }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(bytes[Self.magic.count + i]) << UInt64(8 * i) }
        guard length > 0, UInt64(bytes.count - header) == length else { return reject("truncated (\(bytes.count - header) of \(length) bytes)") }
        let binary = Array(bytes[header...])
        guard SHA256.digest(binary) == Array(bytes[(Self.magic.count + 8)..<header]) else { return reject("checksum mismatch") }
        return binary
    }

    /// Removes the least recently used binaries until the directory is within `diskLimitBytes`
    /// (never `keeping`, the file just written). Another process may remove the same files: a
    /// file that is already gone is not an error.
    private func trim(_ dir: URL, keeping: URL) {
        let keys: [URLResourceKey] = [.fileSizeKey, .contentModificationDateKey]
        guard let urls = try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: keys) else { return }
        var files = urls.filter { $0.pathExtension == "clbin" }.compactMap { url -> (URL, Int, Date)? in
            guard let v = try? url.resourceValues(forKeys: Set(keys)) else { return nil }
            return (url, v.fileSize ?? 0, v.contentModificationDate ?? .distantPast)
        }
        var total = files.reduce(0) { $0 + $1.1 }
        guard total > diskLimitBytes else { return }
        files.sort { $0.2 < $1.2 }
        for (url, size, _) in files where total > diskLimitBytes && url.lastPathComponent != keeping.lastPathComponent {
            try? FileManager.default.removeItem(at: url)
            total -= size
            debugLog("removed \(url.lastPathComponent) from the program cache (over \(diskLimitBytes) bytes)")
        }
    }

    private func writeBinary(_ p: cl_program, to file: URL) {
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
        var contents = Self.magic
        for i in 0..<8 { contents.append(UInt8(truncatingIfNeeded: UInt64(size) >> UInt64(8 * i))) }
        contents += SHA256.digest(binary)
        contents += binary
        let dir = file.deletingLastPathComponent()
        let temp = dir.appendingPathComponent(".\(file.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try Data(contents).write(to: temp)
            if rename(temp.path, file.path) != 0 { throw KilnError(.internal, "rename failed (errno \(errno))") }
            trim(dir, keeping: file)
        } catch {
            try? FileManager.default.removeItem(at: temp)
            debugLog("could not write the program cache file \(file.path): \(error)")
        }
    }
}

/// KILN_DEBUG=1 and above: what the OpenCL runtime did (caches, pool), on stderr.
let openCLDebugLevel = Int(ProcessInfo.processInfo.environment["KILN_DEBUG"] ?? "") ?? 0

func debugLog(_ s: @autoclosure () -> String) {
    guard openCLDebugLevel >= 1 else { return }
    FileHandle.standardError.write(Data(("kiln: opencl: " + s() + "\n").utf8))
}
