import Foundation
import KilnIR
import XCTest

/// Runs the programs tests drive (compilers, nm, qemu, built artifacts, the kiln binary): the
/// one launcher every test target shares.
public enum ToolRunner {
    /// A program that exited non-zero under `succeed` (its output is in the XCTFail before it).
    public struct Failure: Error, CustomStringConvertible {
        public let command: String
        public let status: Int32
        public var description: String { "`\(command)` exited with \(status)" }
    }

    /// A program the package builds (`swift build --build-tests`) beside the test bundle that
    /// holds `testClass`: `kiln`, the examples, the test workers.
    public static func built(_ name: String, besideBundleOf testClass: AnyClass) -> URL {
        var dir = Bundle(for: testClass).bundleURL
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent(name)
    }

    /// The absolute path of `name` on `path` (this process's PATH when nil), or `name` itself
    /// when it holds a slash and is executable; nil when there is none.
    public static func find(_ name: String, path: String? = nil) -> String? {
        let files = FileManager.default
        if name.contains("/") { return files.isExecutableFile(atPath: name) ? name : nil }
        let dirs = (path ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return dirs.lazy.filter { !$0.isEmpty }.map { "\($0)/\(name)" }.first { candidate in
            var isDirectory: ObjCBool = false
            return files.fileExists(atPath: candidate, isDirectory: &isDirectory) && !isDirectory.boolValue && files.isExecutableFile(atPath: candidate)
        }
    }

    /// The tool's path on PATH, or a loud skip naming the Debian package that has it.
    public static func required(_ name: String, package: String) throws -> String {
        guard let path = find(name) else {
            throw XCTSkip("SKIPPED: '\(name)' is not installed; install it with `apt-get install \(package)` (scripts/setup.sh does)")
        }
        return path
    }

    /// Runs `argv` in `directory` (this process's when nil) with `environment` (this process's
    /// when nil); its status and its stdout and stderr together. argv[0] is looked up on PATH
    /// when it is a bare name, and taken from `directory` when it is a relative path, as a shell
    /// would. The status is 128 + the signal when a signal ended it, as a shell reports.
    public static func run(_ argv: [String], in directory: String? = nil, environment: [String: String]? = nil) throws -> (status: Int32, output: String) {
        let r = try launch(argv, in: directory, environment: environment, separately: false, input: nil)
        return (r.status, r.stdout)
    }

    /// `run`, with stdout and stderr kept apart; `input`, when given, is the program's stdin (a
    /// scripted terminal session) instead of /dev/null.
    public static func runSeparately(_ argv: [String], in directory: String? = nil, environment: [String: String]? = nil,
                                     input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try launch(argv, in: directory, environment: environment, separately: true, input: input)
    }

    /// `run` for a program that must succeed: its output, or a failure at the caller's line with
    /// the command, status and the end of the output, then `Failure` thrown to end the test.
    @discardableResult
    public static func succeed(_ argv: [String], in directory: String? = nil, environment: [String: String]? = nil,
                               file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (status, output) = try run(argv, in: directory, environment: environment)
        guard status == 0 else {
            let command = argv.joined(separator: " ")
            XCTFail("`\(command)` exited with \(status):\n\(output.suffix(4000))", file: file, line: line)
            throw Failure(command: command, status: status)
        }
        return output
    }

    private static func launch(_ argv: [String], in directory: String?, environment: [String: String]?,
                               separately: Bool, input: String?) throws -> (status: Int32, stdout: String, stderr: String) {
        let program = argv[0]
        let executable: String
        if program.hasPrefix("/") {
            executable = program
        } else if program.contains("/") {
            executable = directory.map { "\($0)/\(program)" } ?? program
        } else {
            guard let found = find(program, path: environment?["PATH"]) else { throw KilnError.notFound("\(program) is not on PATH") }
            executable = found
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = Array(argv.dropFirst())
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment { p.environment = environment }
        // A script of stdin is a file too, read by the child at its own pace.
        let inputFile = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tool-\(UUID().uuidString).in")
        defer { try? FileManager.default.removeItem(at: inputFile) }
        if let input {
            try Data(input.utf8).write(to: inputFile)
            p.standardInput = try FileHandle(forReadingFrom: inputFile)
        } else {
            p.standardInput = FileHandle.nullDevice
        }
        // Files, not pipes: a chatty child (KILN_DEBUG output is large) cannot block on a full
        // pipe while we wait, nor on one stream while we read the other.
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tool-\(UUID().uuidString)")
        let files = separately ? [base.appendingPathExtension("out"), base.appendingPathExtension("err")] : [base.appendingPathExtension("out")]
        defer { for f in files { try? FileManager.default.removeItem(at: f) } }
        let handles = try files.map { f -> FileHandle in
            _ = FileManager.default.createFile(atPath: f.path, contents: nil)
            return try FileHandle(forWritingTo: f)
        }
        defer { for h in handles { try? h.close() } }
        p.standardOutput = handles[0]
        p.standardError = handles[handles.count - 1]
        try p.run()
        p.waitUntilExit()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        let texts = try files.map { String(decoding: try Data(contentsOf: $0), as: UTF8.self) }
        return (status, texts[0], separately ? texts[1] : "")
    }
}
