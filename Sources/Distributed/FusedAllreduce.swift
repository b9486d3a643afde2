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
    let overlap: AllreduceOverlap
    private let lock = NSLock()
    private var rounds = 0

    init(rank: Int, size: Int, timeout: Double, fusionThreshold: Int, overlap: AllreduceOverlap = .off) {
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self.fusionThreshold = fusionThreshold
        self.overlap = overlap
    }

    var step: Int {
        lock.lock()
        defer { lock.unlock() }
        return rounds
    }

    func allreduce(_ requests: [AllreduceRequest]) throws -> [Tensor] {
        lock.lock()
        defer { lock.unlock() }
        let specs = requests.map(\.spec)
        if rounds == 0 { try checkSameGradients(specs) }
        var results = [Tensor?](repeating: nil, count: requests.count)
        for buffer in Self.fuse(specs, threshold: fusionThreshold) {
            let reduced = try reduce(buffer.map { requests[$0] }, step: rounds)
            for (k, i) in buffer.enumerated() { results[i] = reduced[k] }
        }
        rounds += 1
        return results.map { $0! }
    }

    /// The fusion buffers of a round in production order, when overlap is on (or automatic and
    /// worth it): the same threshold as without overlap, so the layout follows from the graph.
    func overlapBuckets(_ tensors: [AllreduceSpec]) -> [[Int]]? {
        let buckets = Self.fuse(tensors, threshold: fusionThreshold)
        switch overlap {
        case .off: return nil
        case .on: return buckets
        case .auto: return Self.overlapPays(buckets.map { $0.reduce(0) { $0 + tensors[$1].byteCount } }, ranks: size) ? buckets : nil
        }
    }

    /// Whether overlapping buckets of these sizes (in start order) is expected to shorten a step
    /// (docs/distributed.md, "Overlap"): the buckets reduced before the last must carry enough
    /// bytes that their transfer outweighs what splitting the backward pass costs.
    static func overlapPays(_ bucketBytes: [Int], ranks: Int) -> Bool {
        ranks > 1 && bucketBytes.count > 1 && bucketBytes.dropLast().reduce(0, +) >= overlapMinimumBytes
    }

    /// The bytes the early buckets must carry for automatic overlap (measured: see the docs).
    static let overlapMinimumBytes = 8 << 20

    func allreduceOverlapped(_ tensors: [AllreduceSpec], buckets: [[Int]]) throws -> BackgroundAllreduce {
        lock.lock()
        let step = rounds
        defer { lock.unlock() }
        // Before any bucket moves: ranks that would pack or order differently fail here.
        if step == 0 { try checkSameGradients(tensors, layout: buckets) }
        return BackgroundAllreduce(count: tensors.count, buckets: buckets, reduce: { [self] _, requests in
            try reduce(requests, step: step)
        }, end: { [self] succeeded in
            lock.lock()
            if succeeded { rounds += 1 }
            lock.unlock()
        })
    }

    /// Indices of `tensors` grouped into buffers: one dtype each, in request order, each up to
    /// `threshold` bytes (a larger tensor goes alone; threshold 0: every tensor alone).
    static func fuse(_ tensors: [AllreduceSpec], threshold: Int) -> [[Int]] {
        var buffers: [[Int]] = []
        var open: [DType: (index: Int, bytes: Int)] = [:]
        for (i, t) in tensors.enumerated() {
            let dtype = t.dtype, bytes = t.byteCount
            if let o = open[dtype], o.bytes + bytes <= threshold {
                buffers[o.index].append(i)
                open[dtype] = (o.index, o.bytes + bytes)
            } else {
                buffers.append([i])
                open[dtype] = (buffers.count - 1, bytes)
            }
        }
        return buffers
    }

    /// One fused buffer: packed (prescaled), summed across ranks, unpacked (averaged, postscaled).
    private func reduce(_ part: [AllreduceRequest], step: Int) throws -> [Tensor] {
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
        try MPIFailure.run(what, step: step, world: (rank, size, timeout)) {
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
    /// An overlapped round's `layout` (its buckets in start order) is part of it: a rank that
    /// overlaps and one that does not, or that split the list otherwise, would not match.
    private func checkSameGradients(_ requests: [AllreduceSpec], layout: [[Int]]? = nil) throws {
        // The fusion threshold too: ranks that pack differently would exchange mismatched buffers.
        let description = requests.map { "\($0.name):\($0.dtype.name)\($0.shape):\($0.reduceOp.rawValue)" }.joined(separator: ";")
            + ";fusion:\(fusionThreshold)" + (layout.map { ";overlap:" + $0.map { $0.map(String.init).joined(separator: ",") }.joined(separator: "|") } ?? "")
        let mine = Self.fnv1a(description)
        var all = [UInt64](repeating: 0, count: size)
        try all.withUnsafeMutableBufferPointer { values in
            try MPIFailure.run("the gradient-list check", step: rounds, world: (rank, size, timeout)) {
                kiln_mpi_allgather_u64(mine, values.baseAddress, timeout, $0)
            }
        }
        let differing = all.indices.filter { all[$0] != all[0] }
        guard differing.isEmpty else {
            throw KilnError.invalidArgument("the ranks' graphs differ: the list of tensors to allreduce at step \(rounds) has hash \(String(all[0], radix: 16)) on rank 0 but a different hash on rank\(differing.count > 1 ? "s" : "") \(differing.map(String.init).joined(separator: ", ")) (every rank must build the same graph and use the same fusion threshold and overlap setting; this is rank \(rank), whose list is [\(requests.map { "\($0.name) \($0.dtype.name)\($0.shape)" }.joined(separator: ", "))]\(layout.map { ", reduced overlapped in buckets \($0)" } ?? ""))")
        }
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

/// Whether a step's allreduces overlap the backward pass: early gradients (the last layers')
/// reduced on a thread of their own while the later ones are computed. The results are the same
/// bits either way; `auto` overlaps only when the early buckets are large enough to pay for
/// splitting the compiled backward pass (FusedAllreduce.overlapPays).
public enum AllreduceOverlap: String, Sendable, CaseIterable {
    case off, on, auto
}
