import Foundation
import XCTest

/// The digits example with `--use-fp16` (float16 weights and activations, float32 master weights,
/// a loss scale) still reaches 95% on the test digits, as with float32.
final class DigitsHalfPrecisionTests: KilnBinaryTestCase {
    func testUseFp16TrainsToAtLeast95Percent() throws {
        let r = try run(binary: "Digits", ["--use-fp16", "--feed-arrays", "--log-every", "0", "--train-dir", path("fp16")])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let line = try XCTUnwrap(r.stdout.split(separator: "\n").first { $0.hasPrefix("digits: test_accuracy=") }, r.stdout)
        let fields = Dictionary(uniqueKeysWithValues: line.dropFirst("digits: ".count).split(separator: " ").map {
            let kv = $0.split(separator: "=", maxSplits: 1)
            return (String(kv[0]), String(kv[1]))
        })
        // 30 epochs of 1,500 digits in batches of 64 that run across epochs: 703 and one of 8.
        XCTAssertEqual(fields["steps"], "704", String(line))
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(fields["test_accuracy"].flatMap(Double.init)), 0.95, String(line))
        // Every epoch's loss is a number: the loss scale never overflowed float16.
        XCTAssertFalse(r.stdout.contains("nan"), r.stdout)
    }
}
