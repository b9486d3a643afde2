import Foundation
import CKilnMPI
import KilnIR
import KilnRuntime

/// The processes of one MPI job (`mpirun -np N`): this process's rank among them, once per
/// process. Starting it installs the collective engine the session's HorovodAllreduce ops use.
public final class World: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// This process's rank among those on the same machine (the GPU or core set it should use).
    public let localRank: Int
    public let localSize: Int
    /// How long a collective may wait for the other ranks before it fails naming the silent ones.
    public let timeout: Double
    public var isRoot: Bool { rank == 0 }
    let engine: FusedAllreduce

    private static let lock = NSLock()
    nonisolated(unsafe) private static var started: World?

    /// The world, initialising MPI on first call. `timeout` (seconds) defaults to
    /// KILN_MPI_TIMEOUT or 60; `fusionThreshold` (bytes; 0 turns fusion off) to
    /// KILN_FUSION_THRESHOLD, HOROVOD_FUSION_THRESHOLD or 64 MiB, as Horovod's; `overlap`
    /// (allreduce early gradients during the backward pass) to KILN_ALLREDUCE_OVERLAP
    /// (off, on, auto) or auto. Every rank must use the same threshold and overlap.
    public static func start(timeout: Double? = nil, fusionThreshold: Int? = nil, overlap: AllreduceOverlap? = nil) throws -> World {
        lock.lock()
        defer { lock.unlock() }
        if let started { return started }
        let env = ProcessInfo.processInfo.environment
        let t = try timeout ?? env["KILN_MPI_TIMEOUT"].map { v in
            guard let s = Double(v), s > 0 else { throw KilnError.invalidArgument("KILN_MPI_TIMEOUT must be a positive number of seconds, got '\(v)'") }
            return s
        } ?? 60
        guard t > 0, t.isFinite else { throw KilnError.invalidArgument("the world's timeout must be a positive number of seconds, got \(t)") }
        let threshold = try fusionThreshold ?? (env["KILN_FUSION_THRESHOLD"] ?? env["HOROVOD_FUSION_THRESHOLD"]).map { v in
            guard let b = Int(v), b >= 0 else { throw KilnError.invalidArgument("the fusion threshold must be a byte count, got '\(v)'") }
            return b
        } ?? 64 << 20
        guard threshold >= 0 else { throw KilnError.invalidArgument("the fusion threshold must be a byte count >= 0, got \(threshold)") }
        let overlapping = try overlap ?? env["KILN_ALLREDUCE_OVERLAP"].map { v in
            guard let o = AllreduceOverlap(rawValue: v.lowercased()) else {
                throw KilnError.invalidArgument("KILN_ALLREDUCE_OVERLAP must be one of \(AllreduceOverlap.allCases.map(\.rawValue).joined(separator: ", ")), got '\(v)'")
            }
            return o
        } ?? .auto
        var rank: Int32 = 0, size: Int32 = 0, localRank: Int32 = 0, localSize: Int32 = 0
        let rc = kiln_mpi_init(&rank, &size, &localRank, &localSize)
        guard rc == 0 else { throw KilnError(.unavailable, "MPI_Init_thread failed with code \(rc): is this process started by mpirun?") }
        let world = World(rank: Int(rank), size: Int(size), localRank: Int(localRank), localSize: Int(localSize), timeout: t, fusionThreshold: threshold,
                          overlap: overlapping)
        Collectives.install(world.engine)
        started = world
        return world
    }

    private init(rank: Int, size: Int, localRank: Int, localSize: Int, timeout: Double, fusionThreshold: Int, overlap: AllreduceOverlap) {
        self.rank = rank
        self.size = size
        self.localRank = localRank
        self.localSize = localSize
        self.timeout = timeout
        engine = FusedAllreduce(rank: rank, size: size, timeout: timeout, fusionThreshold: fusionThreshold, overlap: overlap)
    }

    /// Training steps (collective rounds) completed so far.
    public var step: Int { engine.step }

    /// Waits for every rank (bounded by the timeout), then shuts MPI down. After a failed
    /// collective, exit instead: the silent rank would never answer the barrier.
    public func finalize() throws {
        try MPIFailure.run("the final barrier", step: step, world: (rank, size, timeout)) { kiln_mpi_barrier(timeout, $0) }
        Collectives.install(nil)
        kiln_mpi_finalize()
    }

    /// Seconds since an arbitrary moment (MPI_Wtime): the clock the benchmarks read.
    public static var time: Double { kiln_mpi_wtime() }
}
