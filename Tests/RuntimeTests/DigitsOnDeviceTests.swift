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
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
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
