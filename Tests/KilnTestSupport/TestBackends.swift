import Foundation

/// Which backends the backend-generic tests run on: every one this machine can run, or those
/// `KILN_TEST_BACKENDS` names (comma-separated, e.g. `c`). A backend left out is said so when it
/// is first left out and again in the bundle's closing tally, never silently.
public enum TestBackends {
    nonisolated(unsafe) private static var said: Set<String> = []
    private static let lock = NSLock()

    /// Whether `name` is to be tested; when not, says so (once).
    public static func selected(_ name: String) -> Bool {
        guard let list = ProcessInfo.processInfo.environment["KILN_TEST_BACKENDS"], !list.isEmpty else { return true }
        let wanted = Set(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        if wanted.contains(name) { return true }
        note(name, "NOT TESTED (KILN_TEST_BACKENDS=\(list))")
        return false
    }

    /// Says that `name` cannot run on this machine, and why (once).
    public static func unavailable(_ name: String, _ error: any Error) {
        note(name, "SKIPPED, it cannot run on this machine: \(error)")
    }

    private static func note(_ name: String, _ text: String) {
        let line = "backend \(name): \(text)"
        let first = lock.withLock { said.insert(line).inserted }
        guard first else { return }
        print(line)
        BundleTally.note(line)
    }
}
