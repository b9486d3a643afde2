import KilnIR

/// Input sharding by rank: each rank trains on its own part of the data.
extension World {
    /// This rank's files of `files` (every size-th, from its rank): its shard for
    /// stringInputProducer or Dataset.tfRecord. Fewer files than ranks is an error, since a
    /// rank without data would leave the others waiting at the first allreduce.
    public func shard(files: [String]) throws -> [String] {
        try World.shard(files: files, rank: rank, size: size)
    }

    /// The rows of a batch of `count` that are this rank's share: the global batch split.
    public func shard(_ count: Int) -> Range<Int> { World.share(of: count, rank: rank, size: size) }

    static func shard(files: [String], rank: Int, size: Int) throws -> [String] {
        guard files.count >= size else { throw KilnError.invalidArgument("\(files.count) files cannot be sharded across \(size) ranks: every rank needs one at least") }
        return files.indices.filter { $0 % size == rank }.map { files[$0] }
    }

    /// Rows [start, end) of `count`: an even split, the first `count % size` ranks one more.
    static func share(of count: Int, rank: Int, size: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }
}
