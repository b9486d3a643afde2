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

    /// Runs `body` with the calling thread marked as a host thread (a queue runner): while it
    /// runs, rather than waits (see `hostThreadWaits`), and the host threads running need every
    /// core but a job's caller, the pool's idle workers sleep instead of spinning and jobs leave
    /// them asleep, so compiled steps on other threads do not keep its core busy; on Linux it is
    /// a batch thread meanwhile (woken, it does not preempt a running training step).
    public static func asHostThread<R>(_ body: () throws -> R) rethrows -> R {
        kiln_host_thread(1)
        defer { kiln_host_thread(0) }
        return try body()
    }

    /// Runs `body` (a wait: for room in a queue, for an element) with a host thread counted as
    /// not running; on other threads it just runs it.
    public static func hostThreadWaits<R>(_ body: () throws -> R) rethrows -> R {
        kiln_host_thread_waits(1)
        defer { kiln_host_thread_waits(0) }
        return try body()
    }

    /// The host threads running now (not waiting).
    public static var hostThreadsRunning: Int { Int(kiln_host_threads_running()) }
}
