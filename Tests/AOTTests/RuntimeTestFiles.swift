@testable import KilnAOT
import Foundation
import KilnIR
import XCTest

/// Temporary directories, tools and symbol tables for the runtime library tests.
enum RuntimeTestFiles {
    static func directory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "/kiln-rt-test-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw KilnError.internalError("mkdtemp failed")
        }
        return dir
    }

    /// The tool's path on PATH, or a loud skip naming the Debian package that has it.
    static func tool(_ name: String, package: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        guard let found = Toolchain.find(name, path: path) else {
            throw XCTSkip("SKIPPED: '\(name)' is not installed; install it with: apt-get install \(package)")
        }
        return found
    }

    /// Runs a program in `dir`; its output, or a failure with that output.
    @discardableResult
    static func run(_ argv: [String], in dir: String) throws -> String {
        let (status, output) = try Toolchain.execute(argv, in: dir, environment: ProcessInfo.processInfo.environment)
        guard status == 0 else { throw KilnError.internalError("\(argv.joined(separator: " ")) failed with status \(status):\n\(output.suffix(4000))") }
        return output
    }

    /// The global symbols a file defines (nm's upper-case types other than U), sorted.
    static func definedGlobals(nm: String, file: String) throws -> [String] {
        let out = try run([nm, "-g", "--defined-only", file], in: (file as NSString).deletingLastPathComponent)
        return out.split(separator: "\n").compactMap { line -> String? in
            let f = line.split(separator: " ")
            return f.count >= 3 ? String(f[2]) : nil
        }.sorted()
    }
}
