import Foundation
import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// Starting the tools Kiln drives (the C compiler, the artifact toolchain): one place for how a
/// program is found, started and its output collected.
public enum ToolProcess {
    /// The executable `name` on `path` (a colon-separated PATH), or `name` itself when it holds a
    /// slash and is executable; nil when there is none. Only regular files count, so a directory
    /// named like the tool is passed over.
    public static func find(_ name: String, path: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            var st = stat()
            if stat(candidate, &st) == 0, st.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `argv` (argv[0] an absolute path) in `directory` (this process's when nil) with
    /// `environment` (this process's when nil), stdin empty; returns its status (128 + the
    /// signal when a signal ended it, as a shell reports) and its stdout and stderr together.
    /// Throws `unavailable` "cannot start <naming>: ..." when it cannot start; `naming` is
    /// argv[0] unless the caller has a better name for it.
    public static func run(_ argv: [String], in directory: String? = nil, environment: [String: String]? = nil,
                           naming: String? = nil) throws -> (status: Int32, output: String) {
        let p = Process()
        if let environment { p.environment = environment }
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        // One pipe for both streams, read to its end before waiting: the child cannot block on
        // a full pipe nobody drains.
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw KilnError(.unavailable, "cannot start \(naming ?? argv[0]): \(error)")
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return (status, String(decoding: data, as: UTF8.self))
    }
}
