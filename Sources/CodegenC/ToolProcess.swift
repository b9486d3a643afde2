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

extension ToolProcess {
    /// A program that stays running and talks in lines: requests on its stdin, answers on its
    /// stdout (`kiln bench --peers`' benchmark scripts). Its stderr goes to `log` (a file it
    /// may fill with warnings without blocking on a pipe nobody reads).
    public final class LineSession {
        private let process = Process()
        private let input = Pipe(), output = Pipe()
        private var buffer: [UInt8] = []
        public let naming: String

        /// Starts `argv` (argv[0] an absolute path) with `environment` (this process's when nil);
        /// throws `unavailable` "cannot start <naming>: ..." when it cannot start.
        public init(_ argv: [String], environment: [String: String]? = nil, log: String, naming: String? = nil) throws {
            self.naming = naming ?? argv[0]
            if let environment { process.environment = environment }
            process.executableURL = URL(fileURLWithPath: argv[0])
            process.arguments = Array(argv.dropFirst())
            process.standardInput = input
            process.standardOutput = output
            FileManager.default.createFile(atPath: log, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: log) ?? FileHandle.nullDevice
            do { try process.run() } catch {
                throw KilnError(.unavailable, "cannot start \(self.naming): \(error)")
            }
        }

        /// The next line it writes (without the newline); nil once it has closed its stdout.
        public func readLine() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    return line
                }
                let more = output.fileHandleForReading.availableData
                if more.isEmpty {
                    defer { buffer = [] }
                    return buffer.isEmpty ? nil : String(decoding: buffer, as: UTF8.self)
                }
                buffer += more
            }
        }

        /// Writes `line` and a newline to its stdin; false when it no longer reads (it exited).
        @discardableResult
        public func writeLine(_ line: String) -> Bool {
            guard process.isRunning else { return false }
            // A closed pipe must not kill this process with SIGPIPE: the write fails instead.
            signal(SIGPIPE, SIG_IGN)
            do { try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8)) } catch { return false }
            return true
        }

        /// Closes its stdin (its cue to exit) and waits for it to exit, at most `grace` seconds
        /// before ending it.
        public func close(grace: Double = 10) {
            try? input.fileHandleForWriting.close()
            let deadline = Date().addingTimeInterval(grace)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            terminate()
        }

        /// Ends it now (SIGTERM) and waits.
        public func terminate() {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
    }
}
