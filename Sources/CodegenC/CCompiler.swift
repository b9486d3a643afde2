import Foundation
import KilnIR
import KilnKernels
#if canImport(Glibc)
import Glibc
#endif

/// The system C compiler: `$KILN_CC` (a program, optionally followed by arguments, e.g.
/// `clang` or `ccache gcc`) or `cc`, compiling one C99 file into a shared object that is then
/// loaded with `dlopen`.
public struct CCompiler: Sendable {
    /// The program (an absolute path) and the arguments `KILN_CC` put before Kiln's own.
    public let command: [String]

    /// Strict ISO C99 with GCC attributes; no -ffast-math (NaN and infinity semantics must hold,
    /// and C's default keeps `a * b + c` unfused exactly as LLVM's plain instructions are);
    /// -fopenmp-simd for the float sums the renderer declares reductions (no OpenMP runtime);
    /// GCC's -O2 vectorises only loops that need no scalar remainder, so the dynamic cost model
    /// (-O3's) lets it vectorise the rest, at about the same compile time.
    /// Only the entry and `kiln_bind` are exported (`KILN_EXPORT`).
    public static let flags = ["-std=c99", "-O2", "-fvect-cost-model=dynamic", "-march=native", "-fno-math-errno", "-fopenmp-simd",
                               "-fPIC", "-shared", "-fvisibility=hidden"]

    /// The compiler `environment` names (`KILN_CC`, else `cc`), looked up on its PATH.
    /// Throws `unavailable` when it is not there, saying what to install.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let spelled = environment["KILN_CC"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 } ?? "cc"
        let words = spelled.split(separator: " ").map(String.init)
        guard let program = ToolProcess.find(words[0], path: environment["PATH"] ?? "/usr/bin:/bin") else {
            throw KilnError(.unavailable, "the C backend needs a C compiler, and '\(words[0])' (\(environment["KILN_CC"] != nil ? "KILN_CC" : "the default, cc")) is not an executable program\(words[0].contains("/") ? "" : " on PATH"); install one (Debian: apt-get install gcc) or set KILN_CC to a C99 compiler")
        }
        command = [program] + words.dropFirst()
    }

    /// Compiles `source` into a shared object and loads it; with `cache`, a shared object
    /// compiled before from the same source by the same compiler for this CPU is loaded instead
    /// (and a new one is stored). The files live in a private directory made in `temporary`
    /// that is removed once the object is loaded; when compiling fails it is kept, and the
    /// error names it with the end of the compiler's output.
    public func load(source: String, name: String = "kernels", cache: CodeCache? = nil,
                     temporary: String = NSTemporaryDirectory()) throws -> SharedObject {
        var template = Array((temporary + "/kiln-c-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw KilnError.internalError("cannot create a temporary directory for the C backend: \(String(cString: strerror(errno)))")
        }
        let file = "\(dir)/\(name).c", object = "\(dir)/\(name).so"
        var keep = true
        defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
        let key = cache.map { _ in CodeCache.key([CodeCache.formatVersion, "c", identity, Self.flags.joined(separator: " "), Self.hostCPU, source]) }
        if let cache, let key, let bytes = cache.load(key), FileManager.default.createFile(atPath: object, contents: Data(bytes)),
           let handle = dlopen(object, RTLD_NOW | RTLD_LOCAL) {
            keep = false
            return SharedObject(handle: handle, compileMs: 0, loadMs: 0, fromCache: true)
        }
        do {
            try source.write(toFile: file, atomically: false, encoding: .utf8)
        } catch {
            keep = false
            throw KilnError.internalError("cannot write \(file) for the C backend: \(error)")
        }
        let t0 = DispatchTime.now()
        let (status, output) = try run(command + Self.flags + ["-o", object, file, "-lm"])
        let t1 = DispatchTime.now()
        guard status == 0 else {
            let tail = output.split(separator: "\n", omittingEmptySubsequences: false).suffix(30).joined(separator: "\n")
            throw KilnError.internalError("the C compiler (\(command.joined(separator: " "))) failed with status \(status) on \(file) (kept for inspection):\n\(tail.suffix(6000))")
        }
        guard let handle = dlopen(object, RTLD_NOW | RTLD_LOCAL) else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw KilnError.internalError("cannot load \(object) (kept for inspection): \(why)")
        }
        // Loaded objects stay mapped after their file is gone.
        keep = false
        if let cache, let key, let bytes = FileManager.default.contents(atPath: object) { cache.store(key, [UInt8](bytes)) }
        let t2 = DispatchTime.now()
        return SharedObject(handle: handle, compileMs: Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6,
                            loadMs: Double(t2.uptimeNanoseconds - t1.uptimeNanoseconds) / 1e6, fromCache: false)
    }

    /// The assembly the compiler makes of `source` with the same flags (KILN_DEBUG=5): a second
    /// run of the compiler, into a temporary directory removed afterwards.
    public func assembly(source: String, temporary: String = NSTemporaryDirectory()) throws -> String {
        var template = Array((temporary + "/kiln-c-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw KilnError.internalError("cannot create a temporary directory for the C backend: \(String(cString: strerror(errno)))")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try source.write(toFile: "\(dir)/kernels.c", atomically: false, encoding: .utf8)
        let (status, output) = try run(command + Self.flags.filter { $0 != "-shared" } + ["-S", "-o", "\(dir)/kernels.s", "\(dir)/kernels.c"])
        guard status == 0 else { throw KilnError.internalError("the C compiler failed with status \(status) making assembly:\n\(output.suffix(6000))") }
        return try String(contentsOfFile: "\(dir)/kernels.s", encoding: .utf8)
    }

    /// The compiler as a cache key sees it: its command and what `--version` says (read once per
    /// process and command), so another compiler or version compiles afresh.
    var identity: String {
        Self.identityLock.lock()
        defer { Self.identityLock.unlock() }
        let spelled = command.joined(separator: " ")
        if let known = Self.identities[spelled] { return known }
        let version = (try? run(command + ["--version"]))?.output ?? "unknown version"
        Self.identities[spelled] = spelled + "\n" + version
        return Self.identities[spelled]!
    }
    private static let identityLock = NSLock()
    nonisolated(unsafe) private static var identities: [String: String] = [:]

    /// The CPU -march=native compiles for, as the kernel describes it (model and flags of the
    /// first processor): a cache shared by machines (a home on NFS) must not hand one CPU's
    /// code to another.
    static let hostCPU: String = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown cpu" }
        let firstProcessor = info.components(separatedBy: "\n\n").first ?? info
        return firstProcessor.split(separator: "\n").filter { line in
            ["vendor_id", "cpu family", "model", "model name", "flags"].contains(line.split(separator: ":").first?.trimmingCharacters(in: .whitespaces) ?? "")
        }.joined(separator: "\n")
    }()

    /// Runs the compiler; returns its status and what it wrote to stdout and stderr.
    private func run(_ argv: [String]) throws -> (status: Int32, output: String) {
        try ToolProcess.run(argv, naming: "the C compiler \(argv[0])")
    }
}

/// A loaded shared object; `dlclose`d when released.
public final class SharedObject: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    /// Milliseconds the compiler ran, and loading took.
    public let compileMs: Double
    public let loadMs: Double
    /// Loaded from the compiled-code cache; the compiler did not run.
    public let fromCache: Bool

    init(handle: UnsafeMutableRawPointer, compileMs: Double, loadMs: Double, fromCache: Bool) {
        self.handle = handle
        self.compileMs = compileMs
        self.loadMs = loadMs
        self.fromCache = fromCache
    }
    deinit { dlclose(handle) }

    /// The address of an exported function or object.
    public func symbol(_ name: String) throws -> UnsafeMutableRawPointer {
        guard let p = dlsym(handle, name) else {
            throw KilnError.internalError("the compiled C code has no symbol \(name)")
        }
        return p
    }
}
