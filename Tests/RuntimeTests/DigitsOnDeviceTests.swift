import XCTest
import Foundation
import Kiln

/// The digits example (Examples/Digits) trained on /gpu:0 reaches the CPU's test accuracy
/// within half a point. Both runs are the built example binary: same seed, same batches.
final class DigitsOnDeviceTests: XCTestCase {
    func digits(_ arguments: [String], environment: [String: String]) throws -> (accuracy: Double, output: String) {
        var dir = Bundle(for: DigitsOnDeviceTests.self).bundleURL
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        let binary = dir.appendingPathComponent("Digits")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("no Digits binary at \(binary.path): build it with `swift build --build-tests` first")
            throw CocoaError(.fileNoSuchFile)
        }
        let p = Process()
        p.executableURL = binary
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // Files, not pipes: KILN_DEBUG output is large, and a full pipe would stop the child.
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-digits-\(UUID().uuidString)")
        let outURL = base.appendingPathExtension("out"), errURL = base.appendingPathExtension("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        p.waitUntilExit()
        let o = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
        let e = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        XCTAssertEqual(p.terminationStatus, 0, e)
        guard let line = o.split(separator: "\n").first(where: { $0.hasPrefix("digits: test_accuracy=") }),
              let value = line.split(separator: " ")[1].split(separator: "=").last.flatMap({ Double($0) }) else {
            XCTFail("no test accuracy in:\n\(o)\n\(e)")
            throw CocoaError(.fileReadCorruptFile)
        }
        return (value, o + e)
    }

    func testDigitsOnGPU0ReachesTheCPUsTestAccuracyWithinHalfAPoint() throws {
        _ = try TestGPU.required("digits training")
        let cpu = try digits(["--device", "/cpu:0"], environment: [:])
        let gpu = try digits(["--device", "/gpu:0"], environment: ["KILN_OPENCL_ALLOW_CPU": "1", "KILN_DEBUG": "1"])
        print("digits test accuracy: CPU \(cpu.accuracy), /gpu:0 \(gpu.accuracy)")
        XCTAssertGreaterThan(cpu.accuracy, 0.9)
        XCTAssertEqual(gpu.accuracy, cpu.accuracy, accuracy: 0.005)
        XCTAssertTrue(gpu.output.contains("on /device:GPU:0"), "the GPU run compiled nothing for /gpu:0")
    }
}
