import Foundation
import KilnC
import KilnCPU
import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// The C runtime (Sources/CKilnRT, embedded by the EmbedSources plugin) as an artifact carries it:
/// built into `NAME_runtime.a` for an object, with every function renamed `NAME_kiln_X` so two
/// artifacts link into one program, or pasted into a `--emit c` file, single-threaded and static.
enum ArtifactRuntime {
    /// `NAME_runtime.a`.
    static func libraryName(_ name: String) -> String { name + "_runtime.a" }

    /// Every external function the runtime defines in an artifact build (`KILN_ARTIFACT`): each
    /// is renamed with the prefix, so the library defines nothing else (a test checks this list
    /// against `nm` of a built library).
    static let functions = ["kiln_parallel_for", "kiln_parallel_tasks", "kiln_pool_configure", "kiln_pool_threads", "kiln_pool_running_job", "kiln_scratch_floats",
                            "kiln_sgemm", "kiln_sgemm_available", "kiln_gemm_f32", "kiln_gemm_f64",
                            "kiln_hgemm", "kiln_hgemm_method", "kiln_gemm_half", "kiln_half_to_f32", "kiln_f32_to_half",
                            "kiln_conv2d_f32", "kiln_conv2d_f32_portable",
                            "kiln_conv2d_filter_gradient_f32", "kiln_conv2d_filter_gradient_f32_portable",
                            "kiln_blas_sgemm", "kiln_blas_dgemm",
                            "kiln_fault_record", "kiln_fault_message", "kiln_ipow_i64"]

    /// The header and the .c files as one text, with their `#include "CKilnRT.h"` lines removed.
    private static var runtimeText: String {
        RuntimeSources.files.map { file in
            let lines = file.text.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { $0.trimmingCharacters(in: .whitespaces) != "#include \"CKilnRT.h\"" }
            return "/* ---- \(file.name) ---- */\n" + lines.joined(separator: "\n") + "\n"
        }.joined()
    }

    /// The runtime as one C11 translation unit for an object's library: POSIX, the artifact build,
    /// and every function renamed `prefix` + name.
    static func unitySource(prefix: String) -> String {
        var text = "/* Kiln's C runtime for an artifact: every function is renamed \(prefix)kiln_... */\n"
        text += "#define _POSIX_C_SOURCE 200809L\n#define KILN_ARTIFACT 1\n"
        for name in functions { text += "#define \(name) \(prefix)\(name)\n" }
        return text + runtimeText
    }

    /// The runtime as C text to paste into one C99 file: single-threaded, portable (no
    /// intrinsics), every function `static` (and marked unused, since a graph calls only some).
    /// It includes <stddef.h>, <stdint.h> and <string.h>, and declares `kiln_range_kernel`,
    /// `kiln_fault` and the functions of CKilnRT.h (`kiln_parallel_for`, `kiln_sgemm`,
    /// `kiln_blas_sgemm`, `kiln_blas_dgemm`, `kiln_fault_record`, `kiln_fault_message`,
    /// `kiln_ipow_i64`, `kiln_pool_configure`, `kiln_gemm_f32`, `kiln_gemm_f64`).
    static func portableSource() -> String {
        "/* Kiln's C runtime (Sources/CKilnRT), portable and single-threaded: every function is static. */\n"
            + "#define KILN_PORTABLE 1\n" + runtimeText
    }

    /// Builds the C runtime (RuntimeSources) for `target` with its functions renamed `prefix` +
    /// name, into the static library at `path`. The same inputs give the same bytes.
    static func buildLibrary(prefix: String, target: CPUTarget, to path: String, environment: [String: String]) throws {
        // The prefix is pasted into #define lines and symbol names.
        guard let first = prefix.first, !first.isNumber, prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw KilnError.invalidArgument("the runtime prefix '\(prefix)' is not a C identifier")
        }
        let tools = try Toolchain(for: target, environment: environment)
        var template = Array((NSTemporaryDirectory() + "/kiln-runtime-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw KilnError.internalError("cannot create a temporary directory for the artifact runtime: \(String(cString: strerror(errno)))")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Fixed names in a directory mapped to "." keep paths out of the object.
        let source = "\(dir)/kiln_runtime.c", object = "\(dir)/\(prefix)runtime.o", archive = "\(dir)/runtime.a"
        do {
            try unitySource(prefix: prefix).write(toFile: source, atomically: false, encoding: .utf8)
        } catch {
            throw KilnError.internalError("cannot write \(source) for the artifact runtime: \(error)")
        }
        let flags = ["-std=c11", "-O2", "-fPIC", "-ffunction-sections", "-fvisibility=hidden",
                     "-ffile-prefix-map=\(dir)=."] + tools.extraFlags + tools.machineFlags
        try tools.run(tools.compiler + flags + ["-c", "kiln_runtime.c", "-o", (object as NSString).lastPathComponent],
                      in: dir, what: "the C compiler")
        try tools.run(tools.archiver + ["rcsD", "runtime.a", (object as NSString).lastPathComponent], in: dir, what: "the archiver")
        let bytes: Data
        do { bytes = try Data(contentsOf: URL(fileURLWithPath: archive)) } catch {
            throw KilnError.internalError("cannot read the artifact runtime \(archive): \(error)")
        }
        try AheadOfTime.write(Array(bytes), to: path)
    }
}

/// The C compiler and archiver that build the runtime for one target.
struct Toolchain {
    /// The compiler (an absolute path, then the arguments KILN_CC put before Kiln's).
    var compiler: [String]
    var archiver: [String]
    /// Flags that select the target (`--target=` for clang).
    var extraFlags: [String] = []
    /// -march/-mcpu for the host's own CPU; none (the compiler's generic CPU) otherwise.
    var machineFlags: [String] = []
    var environment: [String: String]

    init(for target: CPUTarget, environment: [String: String]) throws {
        self.environment = environment
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let host = CPUTarget.host
        let arch = target.triple.split(separator: "-").first.map(String.init) ?? target.triple
        if Self.sameTriple(target.triple, host.triple) {
            let kilnCC = environment["KILN_CC"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
            let words = (kilnCC ?? "cc").split(separator: " ").map(String.init)
            guard let program = ToolProcess.find(words[0], path: path) else {
                throw KilnError(.unavailable, "building the artifact's runtime library needs a C compiler, and '\(words[0])' (\(kilnCC != nil ? "KILN_CC" : "the default, cc")) is not an executable program\(words[0].contains("/") ? "" : " on PATH"); install one (Debian: apt-get install gcc) or set KILN_CC")
            }
            compiler = [program] + words.dropFirst()
            archiver = [ToolProcess.find("ar", path: path) ?? "ar"]
            if target.name == host.name {
                machineFlags = arch.hasPrefix("x86") || arch == "i686" || arch == "i386" ? ["-march=native"] : ["-mcpu=native"]
            }
            return
        }
        let gnu = Self.gnuPrefix(target.triple)
        if let gnu, let gcc = ToolProcess.find(gnu + "-gcc", path: path) {
            compiler = [gcc]
            archiver = [ToolProcess.find(gnu + "-ar", path: path) ?? ToolProcess.find("ar", path: path) ?? "ar"]
            return
        }
        if let clang = ToolProcess.find("clang", path: path), Self.clangWorks(clang, triple: target.triple, environment: environment) {
            compiler = [clang]
            extraFlags = ["--target=\(target.triple)"]
            archiver = [gnu.flatMap { ToolProcess.find($0 + "-ar", path: path) } ?? ToolProcess.find("llvm-ar", path: path) ?? ToolProcess.find("ar", path: path) ?? "ar"]
            return
        }
        let package = gnu.map { "gcc-" + $0.replacingOccurrences(of: "_", with: "-") }
        throw KilnError(.unavailable, "building the artifact's runtime library for \(target.triple) needs a C compiler for it: \(gnu.map { "'\($0)-gcc' is not on PATH" } ?? "no GCC cross compiler is named for this triple") and no clang that can target it was found; install one (Debian: apt-get install \(package ?? "clang"))")
    }

    /// Whether two triples name the same platform (`x86_64-unknown-linux-gnu` and `x86_64-linux-gnu`).
    static func sameTriple(_ a: String, _ b: String) -> Bool {
        func parts(_ t: String) -> [Substring] {
            let p = t.split(separator: "-")
            return p.count == 4 || (p.count == 3 && p[1] != "linux") ? [p[0]] + p.dropFirst(2) : p
        }
        return parts(a) == parts(b)
    }

    /// Debian's cross-tool prefix for a Linux triple: `aarch64-unknown-linux-gnu` ->
    /// `aarch64-linux-gnu`, `arm-unknown-linux-gnueabihf` -> `arm-linux-gnueabihf`; nil otherwise.
    static func gnuPrefix(_ triple: String) -> String? {
        let parts = triple.split(separator: "-").map(String.init)
        guard parts.count >= 3, let linux = parts.firstIndex(of: "linux"), linux + 1 < parts.count else { return nil }
        var arch = parts[0]
        if arch == "arm64" { arch = "aarch64" }
        return "\(arch)-linux-\(parts[linux + 1])"
    }

    /// Whether clang compiles a C file with <stdint.h> for `triple` (it needs that target's C
    /// library headers, which a bare clang lacks).
    static func clangWorks(_ clang: String, triple: String, environment: [String: String]) -> Bool {
        var template = Array((NSTemporaryDirectory() + "/kiln-clang-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else { return false }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        guard (try? "#include <stdint.h>\n#include <pthread.h>\nint64_t probe;\n".write(toFile: "\(dir)/probe.c", atomically: false, encoding: .utf8)) != nil,
              let (status, _) = try? ToolProcess.run([clang, "--target=\(triple)", "-c", "probe.c", "-o", "probe.o"], in: dir, environment: environment) else { return false }
        return status == 0
    }

    /// Runs a tool in `dir`; throws with the end of its output when it fails.
    func run(_ argv: [String], in dir: String, what: String) throws {
        let (status, output) = try ToolProcess.run(argv, in: dir, environment: environment)
        guard status == 0 else {
            let tail = output.split(separator: "\n", omittingEmptySubsequences: false).suffix(30).joined(separator: "\n")
            throw KilnError.internalError("\(what) (\(argv.joined(separator: " "))) failed with status \(status) building the artifact's runtime library:\n\(tail.suffix(6000))")
        }
    }
}
