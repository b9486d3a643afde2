import KilnIR

extension Dataset {
    /// TensorFlow's `shard(num_shards, index)`: every `count`-th element starting at `index`,
    /// one worker's part of the data in a data-parallel run (KilnDistributed: the world's size
    /// and this process's rank). Shard early (before a shuffle), as TensorFlow advises.
    public func shard(count: Int, index: Int) throws -> Dataset {
        guard count >= 1 else { throw KilnError.invalidArgument("shard count must be at least 1, got \(count)") }
        guard (0..<count).contains(index) else { throw KilnError.invalidArgument("shard index must be in [0, \(count)), got \(index)") }
        let upstream = self
        return Dataset {
            let source = try upstream.makeSource()
            var position = 0
            return ClosureSource {
                while let element = try source.next() {
                    defer { position += 1 }
                    if position % count == index { return element }
                }
                return nil
            }
        }
    }
}
