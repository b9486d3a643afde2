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

    /// Runs `body` with the calling thread marked as a host thread (a queue runner): while the
    /// process has any, the pool's idle workers offer their cores to other threads now and then
    /// while they spin, so a runner woken beside a training step gets a core without preempting it.
    public static func asHostThread<R>(_ body: () throws -> R) rethrows -> R {
        kiln_host_thread(1)
        defer { kiln_host_thread(0) }
        return try body()
    }

    /// The host threads of the process now.
    public static var hostThreads: Int { Int(kiln_host_threads()) }
}
