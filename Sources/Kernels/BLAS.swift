import CKilnRT
import COpenBLAS
import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS, opened at run time. Debian's OpenBLAS 0.3.21 does not recognise newer CPUs and falls
/// back to a generic kernel ten times slower; it reads OPENBLAS_CORETYPE only while it loads. So
/// the library is never linked: we pick the core type from the CPU's features, set it (unless
/// the user already did), and only then dlopen it.
public final class BLAS: @unchecked Sendable {
    public let sgemm: kiln_cblas_sgemm_fn
    public let dgemm: kiln_cblas_dgemm_fn
    public let coreName: String
    public let threads: Int

    public static let shared: BLAS = {
        do { return try BLAS() } catch { fatalError("\(error)") }
    }()

    /// The OpenBLAS core type this CPU should use, from the features the C runtime probes.
    static var coreType: String? {
        if kiln_cpu_has_avx512() != 0 { return "SKYLAKEX" }
        if kiln_cpu_has_avx2_fma() != 0 { return "HASWELL" }
        return nil
    }

    init() throws {
        if getenv("OPENBLAS_CORETYPE") == nil, let core = Self.coreType {
            setenv("OPENBLAS_CORETYPE", core, 0)
        }
        // OpenBLAS's threads spin for ~2^28 cycles after each call by default, which would starve
        // Kiln's worker pool running the next kernel; 2^20 cycles covers the gap between a step's
        // products without holding a core for long. (Only large products, tiny ones and float64
        // come here; the rest run on Kiln's own kernel and pool, see TargetDescription.ownProducts.)
        setenv("OPENBLAS_THREAD_TIMEOUT", "20", 0)
        let candidates = ["libopenblas.so.0", "libopenblas.so", "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"]
        guard let handle = candidates.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_GLOBAL) }).first else {
            throw KilnError(.unavailable, "cannot load OpenBLAS (\(String(cString: dlerror()))); install libopenblas-dev")
        }
        func sym<T>(_ name: String, _: T.Type) throws -> T {
            guard let p = dlsym(handle, name) else { throw KilnError(.unavailable, "OpenBLAS has no symbol \(name)") }
            return unsafeBitCast(p, to: T.self)
        }
        sgemm = try sym("cblas_sgemm", kiln_cblas_sgemm_fn.self)
        dgemm = try sym("cblas_dgemm", kiln_cblas_dgemm_fn.self)
        let corename = try? sym("openblas_get_corename", kiln_openblas_get_corename_fn.self)
        coreName = corename.flatMap { $0() }.map { String(cString: $0) } ?? "unknown"
        let getThreads = try? sym("openblas_get_num_threads", kiln_openblas_get_num_threads_fn.self)
        threads = getThreads.map { Int($0()) } ?? 1
    }
}
