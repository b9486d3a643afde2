import Foundation
import XCTest

/// Runs the built `kiln` binary. `swift build --build-tests` (and `swift test`) build it beside
/// the test bundle, in .build/<config>/kiln.
class KilnBinaryTestCase: ScratchDirectoryTestCase {
    var kiln: URL {
        var dir = Bundle(for: KilnBinaryTestCase.self).bundleURL
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent("kiln")
    }

    /// `environment` adds to (or overrides) this process's environment, e.g. KILN_DEBUG.
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard FileManager.default.isExecutableFile(atPath: kiln.path) else {
            XCTFail("no kiln binary at \(kiln.path): build it with `swift build --build-tests` (or `swift build --product kiln`) first")
            throw CocoaError(.fileNoSuchFile)
        }
        let p = Process()
        p.executableURL = kiln
        p.arguments = arguments
        if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read both pipes before waiting, so a full pipe cannot block the child.
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }
}
