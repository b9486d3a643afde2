import CKilnMPI
import KilnIR
import KilnFrontend
import KilnRuntime

extension World {
    /// hvd.broadcast_global_variables(root): after initialisation, every rank takes `root`'s
    /// values of the graph's global variables, so all start from the same point. Run once,
    /// after the init op. The variables travel as one byte buffer, in name order.
    public func broadcastGlobalVariables(_ session: Session, root: Int = 0) throws {
        guard (0..<size).contains(root) else { throw KilnError.invalidArgument("broadcast root \(root) is not a rank of this world of \(size)") }
        let variables = session.graph.globalVariables.sorted { $0.name < $1.name }
        var values: [Tensor] = []
        for v in variables {
            guard let t = session.value(of: v) else {
                throw KilnError.failedPrecondition("cannot broadcast '\(v.name)' from rank \(root): it is uninitialized on rank \(rank) (run the init op first)")
            }
            guard t.dtype != .string else { throw KilnError.unimplemented("cannot broadcast the string variable '\(v.name)'") }
            values.append(t)
        }
        // The same variables, dtypes and shapes on every rank, or the bytes would not line up.
        let description = zip(variables, values).map { "\($0.name):\($1.dtype.name)\($1.shape)" }.joined(separator: ";")
        var hashes = [UInt64](repeating: 0, count: size)
        try hashes.withUnsafeMutableBufferPointer { h in
            try MPIFailure.run("the variable-list check of the broadcast", step: step, world: (rank, size, timeout)) {
                kiln_mpi_allgather_u64(FusedAllreduce.fnv1a(description), h.baseAddress, timeout, $0)
            }
        }
        let differing = hashes.indices.filter { hashes[$0] != hashes[root] }
        guard differing.isEmpty else {
            throw KilnError.invalidArgument("the ranks' graphs differ: their global variables (names, dtypes, shapes) on rank\(differing.count > 1 ? "s" : "") \(differing.map(String.init).joined(separator: ", ")) differ from rank \(root)'s (this is rank \(rank))")
        }
        let total = values.reduce(0) { $0 + $1.byteCount }
        var bytes = [UInt8](repeating: 0, count: total)
        var offset = 0
        for t in values {
            t.withUnsafeBytes { src in bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: src.baseAddress!, byteCount: src.count) } }
            offset += t.byteCount
        }
        try bytes.withUnsafeMutableBytes { b in
            try MPIFailure.run("the broadcast of \(variables.count) global variables (\(total) bytes)", step: step, world: (rank, size, timeout)) {
                kiln_mpi_broadcast(b.baseAddress, Int64(total), Int32(root), timeout, $0)
            }
        }
        guard rank != root else { return }
        offset = 0
        for (v, t) in zip(variables, values) {
            var received = try Tensor(zeros: t.dtype, shape: t.shape)
            try received.withUnsafeMutableBytes { dst in bytes.withUnsafeBytes { dst.baseAddress!.copyMemory(from: $0.baseAddress!.advanced(by: offset), byteCount: dst.count) } }
            offset += t.byteCount
            try session.setValue(received, of: v)
        }
    }
}
