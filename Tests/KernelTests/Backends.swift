import Foundation
import KilnKernels
import KilnCPU

/// The backends the generic suites run on: every one this machine can run, in a fixed order.
/// One that cannot run here (its toolchain is missing) is named with the reason, loudly, once;
/// never left out silently. `KILN_TEST_BACKENDS=c` (a comma-separated list) narrows the run to
/// the backends named, and says so.
enum Backends {
    /// Each backend Kiln has, by the name `KILN_BACKEND` spells; `make` throws when the backend
    /// cannot run on this machine.
    static let known: [(name: String, make: @Sendable () throws -> any Backend)] = [
        ("llvm", { LLVMBackend() }),
    ]

    static let present: [any Backend] = {
        let wanted = ProcessInfo.processInfo.environment["KILN_TEST_BACKENDS"].map { Set($0.split(separator: ",").map(String.init)) }
        var out: [any Backend] = []
        for (name, make) in known {
            if let wanted, !wanted.contains(name) {
                print("backend \(name): NOT TESTED (KILN_TEST_BACKENDS=\(wanted.sorted().joined(separator: ",")))")
                continue
            }
            do { out.append(try make()) } catch {
                print("backend \(name): SKIPPED, it cannot run on this machine: \(error)")
            }
        }
        if out.isEmpty { print("backend: NONE of \(known.map(\.name)) can be tested") }
        return out
    }()
}
