import CKilnMPI
import KilnIR

/// Turns a collective's status into a KilnError that names the silent ranks and the step.
enum MPIFailure {
    /// Runs `body` with a failure record sized for the world, and throws when it fails.
    static func run(_ what: String, step: Int, world: (rank: Int, size: Int, timeout: Double),
                    _ body: (UnsafeMutablePointer<kiln_mpi_failure>) -> Int32) throws {
        var silent = [UInt8](repeating: 0, count: world.size)
        var failure = kiln_mpi_failure()
        let rc = silent.withUnsafeMutableBufferPointer { s -> Int32 in
            failure.silent = s.baseAddress
            return body(&failure)
        }
        guard rc != KILN_MPI_OK else { return }
        let names = silent.indices.filter { silent[$0] != 0 }
        let who = names.isEmpty ? "no rank was silent (every rank answered after the deadline)"
            : "rank\(names.count > 1 ? "s" : "") \(names.map(String.init).joined(separator: ", ")) did not answer"
        let message = withUnsafeBytes(of: failure.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if rc == KILN_MPI_TIMEOUT {
            throw KilnError(.deadlineExceeded, "\(what) at step \(step) timed out after \(world.timeout) s on rank \(world.rank) of \(world.size): \(who) (dead or stalled; KILN_MPI_TIMEOUT sets the limit)")
        }
        throw KilnError(.unavailable, "\(what) at step \(step) failed on rank \(world.rank) of \(world.size): \(message.isEmpty ? "MPI error" : message); \(who)")
    }
}
