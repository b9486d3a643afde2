import Foundation
import CKilnMPI
import KilnIR
import KilnRuntime

/// The collective engine over MPI: each round's tensors are packed into one buffer per dtype up
/// to a size threshold (Horovod's tensor fusion), and each buffer is summed across ranks in
/// rank order (CKilnMPI), so results are bit-identical on every run, fused or not.
final class FusedAllreduce: CollectiveEngine, @unchecked Sendable {
    let rank: Int
    let size: Int
    let timeout: Double
    let fusionThreshold: Int
    private let lock = NSLock()
    private var rounds = 0

    init(rank: Int, size: Int, timeout: Double, fusionThreshold: Int) {
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self.fusionThreshold = fusionThreshold
    }

    var step: Int {
        lock.lock()
        defer { lock.unlock() }
        return rounds
    }

    func allreduce(_ requests: [AllreduceRequest]) throws -> [Tensor] {
        lock.lock()
        defer { lock.unlock() }
        if rounds == 0 { try checkSameGradients(requests) }
        var results = [Tensor?](repeating: nil, count: requests.count)
        for buffer in Self.fuse(requests, threshold: fusionThreshold) {
            let reduced = try reduce(buffer.map { requests[$0] })
            for (k, i) in buffer.enumerated() { results[i] = reduced[k] }
        }
        rounds += 1
        return results.map { $0! }
    }

    /// Indices of `requests` grouped into buffers: one dtype each, in request order, each up to
    /// `threshold` bytes (a larger tensor goes alone; threshold 0: every tensor alone).
    static func fuse(_ requests: [AllreduceRequest], threshold: Int) -> [[Int]] {
        var buffers: [[Int]] = []
        var open: [DType: (index: Int, bytes: Int)] = [:]
        for (i, r) in requests.enumerated() {
            let bytes = r.tensor.byteCount
            if let o = open[r.tensor.dtype], o.bytes + bytes <= threshold {
                buffers[o.index].append(i)
                open[r.tensor.dtype] = (o.index, o.bytes + bytes)
            } else {
                buffers.append([i])
                open[r.tensor.dtype] = (buffers.count - 1, bytes)
            }
        }
        return buffers
    }

    /// One fused buffer: packed (prescaled), summed across ranks, unpacked (averaged, postscaled).
    private func reduce(_ part: [AllreduceRequest]) throws -> [Tensor] {
        let dtype = part[0].tensor.dtype
        let type: Int32
        switch dtype {
        case .float32: type = Int32(KILN_MPI_F32)
        case .float64: type = Int32(KILN_MPI_F64)
        case .int32: type = Int32(KILN_MPI_I32)
        case .int64: type = Int32(KILN_MPI_I64)
        default: throw KilnError.invalidArgument("'\(part[0].name)': HorovodAllreduce reduces float32, float64, int32 or int64 tensors, got \(dtype.name)")
        }
        for r in part where dtype.isInteger && (r.prescale != 1 || r.postscale != 1 || r.reduceOp == .average) {
            throw KilnError.unimplemented("'\(r.name)': an \(dtype.name) allreduce only sums (reduce_op Sum, no scale factors): averaging integers would truncate")
        }
        let total = part.reduce(0) { $0 + $1.tensor.byteCount }
        // Uninitialised (every byte is copied in): no zero-fill of what may be 64 MB per step.
        let fused = try TensorBuffer(byteCount: total)
        var offset = 0
        for r in part {
            r.tensor.withUnsafeBytes { src in fused.pointer.advanced(by: offset).copyMemory(from: src.baseAddress!, byteCount: src.count) }
            if r.prescale != 1 { Self.scale(fused.pointer.advanced(by: offset), count: r.tensor.elementCount, dtype: dtype, by: r.prescale) }
            offset += r.tensor.byteCount
        }
        let what = "allreduce of \(part.count) tensor\(part.count == 1 ? "" : "s") (\(total) bytes, first '\(part[0].name)')"
        try MPIFailure.run(what, step: rounds, world: (rank, size, timeout)) {
            kiln_mpi_allreduce_sum(fused.pointer, Int64(total / dtype.byteSize), type, timeout, $0)
        }
        offset = 0
        return try part.map { r in
            // A buffer of one tensor becomes its result as it is; fused ones are copied apart.
            let out = part.count == 1 ? fused : try TensorBuffer(byteCount: r.tensor.byteCount)
            if part.count > 1 { out.pointer.copyMemory(from: fused.pointer.advanced(by: offset), byteCount: r.tensor.byteCount) }
            offset += r.tensor.byteCount
            let factor = (r.reduceOp == .average ? 1 / Double(size) : 1) * r.postscale
            if factor != 1 { Self.scale(out.pointer, count: r.tensor.elementCount, dtype: dtype, by: factor) }
            return try Tensor(dtype: dtype, shape: r.tensor.shape, buffer: out)
        }
    }

    /// Multiplies floats in place (in the tensor's own precision, as Horovod's scaling does).
    private static func scale(_ p: UnsafeMutableRawPointer, count: Int, dtype: DType, by factor: Double) {
        switch dtype {
        case .float32:
            let f = Float(factor), x = p.assumingMemoryBound(to: Float.self)
            for i in 0..<count { x[i] *= f }
        case .float64:
            let x = p.assumingMemoryBound(to: Double.self)
            for i in 0..<count { x[i] *= factor }
        default: break
        }
    }

    /// At the first round: every rank must reduce the same list (names, dtypes, shapes, ops)
    /// with the same fusion threshold, or the fused buffers would not line up. A hash of the list is compared across ranks.
    private func checkSameGradients(_ requests: [AllreduceRequest]) throws {
        // The fusion threshold too: ranks that pack differently would exchange mismatched buffers.
        let description = requests.map { "\($0.name):\($0.tensor.dtype.name)\($0.tensor.shape):\($0.reduceOp.rawValue)" }.joined(separator: ";")
            + ";fusion:\(fusionThreshold)"
        let mine = Self.fnv1a(description)
        var all = [UInt64](repeating: 0, count: size)
        try all.withUnsafeMutableBufferPointer { values in
            try MPIFailure.run("the gradient-list check", step: rounds, world: (rank, size, timeout)) {
                kiln_mpi_allgather_u64(mine, values.baseAddress, timeout, $0)
            }
        }
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else {
            throw KilnError.invalidArgument("the ranks' graphs differ: the list of tensors to allreduce at step \(rounds) has hash \(String(all[0], radix: 16)) on rank 0 but a different hash on rank\(differing.count > 1 ? "s" : "") \(differing.map(String.init).joined(separator: ", ")) (every rank must build the same graph and use the same fusion threshold; this is rank \(rank), whose list is [\(requests.map { "\($0.name) \($0.tensor.dtype.name)\($0.tensor.shape)" }.joined(separator: ", "))])")
        }
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}
