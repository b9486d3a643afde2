import Foundation
import KilnIR
import KilnKernels
import KilnCPU
import KilnC
import KilnOpenCL
import KilnTestSupport

/// The backends the generic suites run on: every one this machine can run, in a fixed order.
/// One that cannot run here (its toolchain is missing) is named with the reason, loudly, and
/// again in the closing tally; `KILN_TEST_BACKENDS=c` narrows the run to the backends named
/// (see TestBackends).
enum Backends {
    /// Each backend Kiln has, by the name `KILN_BACKEND` spells; `make` throws when the backend
    /// cannot run on this machine.
    static let known: [(name: String, make: @Sendable () throws -> any Backend)] = [
        ("llvm", { LLVMBackend() }),
        ("c", { try CBackend() }),
        // The first device `/gpu:0` can be, CPU OpenCL devices allowed (PoCL here and in CI).
        ("opencl", {
            guard let device = try OpenCL.gpus(allowCPU: true).first else {
                throw KilnError(.unavailable, "no OpenCL device (install pocl-opencl-icd: make setup)")
            }
            return OpenCLBackend(device: device)
        }),
    ]

    static let present: [any Backend] = {
        var out: [any Backend] = []
        for (name, make) in known where TestBackends.selected(name) {
            do { out.append(try make()) } catch { TestBackends.unavailable(name, error) }
        }
        if out.isEmpty { print("backend: NONE of \(known.map(\.name)) is tested") }
        return out
    }()
}
