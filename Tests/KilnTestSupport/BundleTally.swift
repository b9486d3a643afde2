import XCTest
import Foundation

/// Cases passed and failed per backend over every backend-generic suite that ran (KernelTests,
/// the golden cases), printed last, when the test bundle finishes
/// (`backend llvm: 1234 cases passed, 0 failed in the backend-generic suites`).
public final class BundleTally: NSObject, XCTestObservation, @unchecked Sendable {
    nonisolated(unsafe) private static var totals: [(backend: String, passed: Int, failed: Int)] = []
    nonisolated(unsafe) private static var installed = false
    nonisolated(unsafe) private static var notes: [String] = []

    public static func install() {
        if installed { return }
        installed = true
        XCTestObservationCenter.shared.addTestObserver(BundleTally())
    }

    /// A line repeated with the tally (a backend skipped or not tested).
    public static func note(_ line: String) {
        install()
        notes.append(line)
    }

    public static func add(_ backend: String, passed: Int, failed: Int) {
        if let k = totals.firstIndex(where: { $0.backend == backend }) {
            totals[k].passed += passed
            totals[k].failed += failed
        } else {
            totals.append((backend, passed, failed))
        }
    }

    public func testBundleDidFinish(_ testBundle: Bundle) {
        for t in Self.totals { print("backend \(t.backend): \(t.passed) cases passed, \(t.failed) failed in the backend-generic suites") }
        for line in Self.notes { print(line) }
    }
}
