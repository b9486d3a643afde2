import CKilnMPI
import KilnIR

extension World {
    /// A plain blocking MPI_Allreduce (MPI_SUM) of `buffer` in place, with Open MPI's own choice
    /// of algorithm: the baseline Kiln's allreduce is measured against.
    public func plainAllreduce(_ buffer: inout [Float]) throws {
        let rc = buffer.withUnsafeMutableBufferPointer { kiln_mpi_plain_allreduce($0.baseAddress, Int64($0.count), Int32(KILN_MPI_F32)) }
        guard rc == KILN_MPI_OK else { throw KilnError(.unavailable, "MPI_Allreduce failed on rank \(rank) of \(size)") }
    }

    /// Rank 0's `decision`, on every rank (loops that must run the same number of rounds
    /// everywhere, as a benchmark's timing loop).
    public func agree(_ decision: Bool) throws -> Bool {
        var byte: UInt8 = decision ? 1 : 0
        try MPIFailure.run("the broadcast of rank 0's decision", step: step, world: (rank, size, timeout)) { f in
            withUnsafeMutableBytes(of: &byte) { kiln_mpi_broadcast($0.baseAddress, 1, 0, timeout, f) }
        }
        return byte != 0
    }
}
