import Foundation
import XCTest

/// Runs binaries the package builds beside the test bundle (`swift build --build-tests` and
/// `swift test` build them in .build/<config>/): `kiln`, the examples.
class KilnBinaryTestCase: ScratchDirectoryTestCase {
    var kiln: URL { binary("kiln") }

    func binary(_ name: String) -> URL {
        var dir = Bundle(for: KilnBinaryTestCase.self).bundleURL
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent(name)
    }

    /// Runs `kiln`; `environment` adds to (or overrides) this process's environment, e.g. KILN_DEBUG.
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(binary: "kiln", arguments, environment: environment)
    }

    func run(binary name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let url = binary(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            XCTFail("no \(name) binary at \(url.path): build it with `swift build --build-tests` (or `swift build --product \(name)`) first")
            throw CocoaError(.fileNoSuchFile)
        }
        let p = Process()
        p.executableURL = url
        p.arguments = arguments
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        // Files, not pipes: reading one pipe to its end while the child fills the other would
        // stop the child (KILN_DEBUG output is large).
        let out = scratch.appendingPathComponent("\(name)-\(UUID().uuidString).out"), err = out.deletingPathExtension().appendingPathExtension("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: try Data(contentsOf: out), as: UTF8.self), String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }
}
