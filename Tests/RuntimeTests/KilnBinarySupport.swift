import Foundation
import KilnTestSupport
import XCTest

/// Runs binaries the package builds beside the test bundle (`swift build --build-tests` and
/// `swift test` build them in .build/<config>/): `kiln`, the examples.
class KilnBinaryTestCase: ScratchDirectoryTestCase {
    var kiln: URL { binary("kiln") }

    func binary(_ name: String) -> URL { ToolRunner.built(name, besideBundleOf: KilnBinaryTestCase.self) }

    /// Runs `kiln`; `environment` adds to (or overrides) this process's environment, e.g. KILN_DEBUG.
    /// `input` is its stdin (a scripted terminal session); /dev/null when nil.
    func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(binary: "kiln", arguments, environment: environment, input: input)
    }

    func run(binary name: String, _ arguments: [String], environment: [String: String] = [:],
             input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let url = binary(name)
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            XCTFail("no \(name) binary at \(url.path): build it with `swift build --build-tests` (or `swift build --product \(name)`) first")
            throw CocoaError(.fileNoSuchFile)
        }
        // Stdout and stderr apart: tests read kiln's results from one and its messages from the other.
        return try ToolRunner.runSeparately([url.path] + arguments,
                                            environment: environment.isEmpty ? nil : ProcessInfo.processInfo.environment.merging(environment) { $1 },
                                            input: input)
    }
}
