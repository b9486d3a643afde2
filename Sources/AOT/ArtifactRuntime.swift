import Foundation
import KilnCPU
import KilnIR

// OWNER: helper R. Contract stub, replaced by the real implementation.
enum ArtifactRuntime {
    /// `NAME_runtime.a`.
    static func libraryName(_ name: String) -> String { name + "_runtime.a" }

    /// Builds the C runtime (RuntimeSources) for `target` with its functions renamed `prefix` +
    /// name, into the static library at `path`.
    static func buildLibrary(prefix: String, target: CPUTarget, to path: String, environment: [String: String]) throws {
        throw KilnError.unimplemented("the artifact runtime is not built yet \(RuntimeSources.files.count)")
    }

    /// The runtime as C text to paste into one C99 file: single-threaded, portable (no
    /// intrinsics), every function `static`.
    static func portableSource() -> String { "" }
}
