import CKilnRT
import Foundation

/// The C runtime (CKilnRT) that compiled code calls, started once per process before any
/// executable runs: the worker pool and OpenBLAS's entry points.
public enum NativeRuntime {
    /// Workers of the pool, the caller included: one per core, or `KILN_THREADS` (e.g. 1 to share
    /// a machine). An OpenBLAS call and a pool job never run at the same time.
    public static let threads: Int = max(1, Int(ProcessInfo.processInfo.environment["KILN_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount)

    private static let started: Bool = {
        let blas = BLAS.shared
        var config = kiln_runtime_config(threads: Int32(threads), cblas_sgemm: blas.sgemm, cblas_dgemm: blas.dgemm)
        kiln_runtime_init(&config)
        return true
    }()

    /// Starts the runtime unless it runs already; safe to call from any thread, any number of times.
    public static func start() { _ = started }
}
