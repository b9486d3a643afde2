import XCTest
import Foundation
import Kiln

/// The digits example (Examples/Digits) trained on /gpu:0 reaches the CPU's test accuracy
/// within a point (3 of the 297 test digits: the CPU's Winograd convolutions and the device's
/// direct ones round differently, and the two trainings drift apart by a digit or two). Both runs are the built example binary fed arrays (`--feed-arrays`): same
/// seed, same batches, and the device's time goes to training rather than the host's pipeline.
final class DigitsOnDeviceTests: KilnBinaryTestCase {
    func digits(_ arguments: [String], environment: [String: String]) throws -> (accuracy: Double, output: String) {
        let (status, o, e) = try run(binary: "Digits", arguments, environment: environment)
        XCTAssertEqual(status, 0, e)
        guard let line = o.split(separator: "\n").first(where: { $0.hasPrefix("digits: test_accuracy=") }),
              let value = line.split(separator: " ")[1].split(separator: "=").last.flatMap({ Double($0) }) else {
            XCTFail("no test accuracy in:\n\(o)\n\(e)")
            throw CocoaError(.fileReadCorruptFile)
        }
        return (value, o + e)
    }

    func testDigitsOnGPU0ReachesTheCPUsTestAccuracyWithinAPoint() throws {
        _ = try TestGPU.required("digits training")
        let cpu = try digits(["--feed-arrays", "--device", "/cpu:0"], environment: [:])
        let gpu = try digits(["--feed-arrays", "--device", "/gpu:0"], environment: ["KILN_OPENCL_ALLOW_CPU": "1", "KILN_DEBUG": "1"])
        print("digits test accuracy: CPU \(cpu.accuracy), /gpu:0 \(gpu.accuracy)")
        XCTAssertGreaterThan(cpu.accuracy, 0.9)
        XCTAssertEqual(gpu.accuracy, cpu.accuracy, accuracy: 0.0101)
        XCTAssertTrue(gpu.output.contains("on /device:GPU:0"), "the GPU run compiled nothing for /gpu:0")
    }
}
