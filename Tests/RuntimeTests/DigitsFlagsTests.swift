import Foundation
import XCTest

/// The digits example's flags (swift-argument-parser): `--self-test` passes on a model that
/// learns and fails (exit 1) on one that cannot, `--max-steps` and `--batch-size` bound the
/// training, and bad values are usage errors (exit 64).
final class DigitsFlagsTests: KilnBinaryTestCase {
    private func lastLine(_ out: String) -> String { String(out.split(separator: "\n").last ?? "") }

    func testSelfTestPassesAndFailsWhenTheModelCannotLearn() throws {
        let ok = try run(binary: "Digits", ["--self-test", "--train-dir", path("ok")])
        XCTAssertEqual(ok.status, 0, ok.stdout + ok.stderr)
        XCTAssertTrue(lastLine(ok.stdout).hasPrefix("self-test: passed ("), ok.stdout)
        // The self-test trains on 320 digits: the training file holds exactly those.
        XCTAssertTrue(ok.stdout.contains("train.tfrecord (320 digits)"), ok.stdout)

        // A learning rate too small to move the weights: the loss does not halve.
        let stuck = try run(binary: "Digits", ["--self-test", "--learning-rate", "1e-9", "--train-dir", path("stuck")])
        XCTAssertEqual(stuck.status, 1, stuck.stdout + stuck.stderr)
        XCTAssertTrue(lastLine(stuck.stdout).hasPrefix("self-test: FAILED: the loss did not halve"), stuck.stdout)
    }

    func testMaxStepsAndBatchSizeBoundTheTraining() throws {
        for input in [["--feed-arrays"], []] {
            let r = try run(binary: "Digits", input + ["--max-steps", "7", "--batch-size", "16", "--train-dir", path("short\(input.count)")])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(lastLine(r.stdout).hasPrefix("digits: test_accuracy="), r.stdout)
            XCTAssertTrue(lastLine(r.stdout).contains(" steps=7 "), r.stdout)
            // Not a terminal: epoch lines only, no status line escapes.
            XCTAssertFalse(r.stdout.contains("\u{1B}["), r.stdout)
        }
    }

    func testHelpListsTheFlagsAndBadValuesAreUsageErrors() throws {
        let help = try run(binary: "Digits", ["--help"])
        XCTAssertEqual(help.status, 0, help.stderr)
        for flag in ["--train-dir <DIR>", "--log-dir <DIR>", "--log-every <N>", "--max-steps <N>", "--batch-size <batch-size>", "--learning-rate <learning-rate>",
                     "--device <DEVICE>", "--export <DIR>", "--feed-arrays", "--use-fp16", "--self-test", "(default: 64)"] {
            XCTAssertTrue(help.stdout.contains(flag), "'\(flag)' missing from:\n\(help.stdout)")
        }
        for (args, message) in [(["--max-steps", "0"], "--max-steps takes a positive number of steps, got 0"),
                                (["--batch-size", "many"], "The value 'many' is invalid for '--batch-size <batch-size>'"),
                                (["--learning-rate=-1"], "--learning-rate takes a positive number, got -1.0"),
                                (["--epochs", "3"], "Unknown option '--epochs'")] {
            let r = try run(binary: "Digits", args)
            XCTAssertEqual(r.status, 64, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "'\(message)' missing from: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("Usage: Digits"), r.stderr)
        }
    }
}
