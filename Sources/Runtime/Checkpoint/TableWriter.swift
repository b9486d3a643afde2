/// Builds a LevelDB-format table in memory exactly as TensorFlow's TableBuilder does with the
/// options the tensor bundle uses (no compression, 256 KiB blocks, restarts every 16 keys), so
/// that a checkpoint index Kiln writes is byte-identical to TensorFlow's for the same entries.
struct TableWriter {
    static let blockSize = 262_144
    static let dataRestartInterval = 16

    private(set) var output: [UInt8] = []
    private var dataBlock = BlockBuilder(restartInterval: TableWriter.dataRestartInterval)
    private var indexBlock = BlockBuilder(restartInterval: 1)
    private var lastKey: [UInt8] = []
    private var entries = 0
    /// The handle of the last flushed data block, whose index entry waits for the next key so
    /// that its separator can be shortened.
    private var pendingHandle: BlockHandle?

    /// Keys must come in strictly increasing bytewise order.
    mutating func add(key: [UInt8], value: [UInt8]) {
        precondition(entries == 0 || lastKey.lexicographicallyPrecedes(key), "table keys must be added in increasing order")
        if entries > 0 && key.count + value.count >= 2 * TableWriter.blockSize { flush() }
        if let handle = pendingHandle {
            indexBlock.add(key: TableWriter.shortestSeparator(lastKey, key), value: handle.encoded)
            pendingHandle = nil
        }
        lastKey = key
        entries += 1
        dataBlock.add(key: key, value: value)
        if dataBlock.sizeEstimate >= TableWriter.blockSize { flush() }
    }

    /// The finished table: data blocks, the empty metaindex, the index and the footer.
    mutating func finish() -> [UInt8] {
        flush()
        let meta = BlockBuilder(restartInterval: TableWriter.dataRestartInterval)
        let metaHandle = writeBlock(meta.finish())
        if let handle = pendingHandle {
            indexBlock.add(key: TableWriter.shortSuccessor(lastKey), value: handle.encoded)
            pendingHandle = nil
        }
        let indexHandle = writeBlock(indexBlock.finish())
        indexBlock.reset()
        var footer: [UInt8] = []
        metaHandle.encode(into: &footer)
        indexHandle.encode(into: &footer)
        footer += [UInt8](repeating: 0, count: 2 * TableFormat.maxEncodedHandleLength - footer.count)
        footer.appendFixed64(TableFormat.magic)
        output += footer
        return output
    }

    private mutating func flush() {
        guard !dataBlock.isEmpty else { return }
        pendingHandle = writeBlock(dataBlock.finish())
        dataBlock.reset()
    }

    /// Appends a block's contents and its trailer (type byte, masked CRC of contents and type).
    private mutating func writeBlock(_ contents: [UInt8]) -> BlockHandle {
        let handle = BlockHandle(offset: UInt64(output.count), size: UInt64(contents.count))
        output += contents
        output.append(TableFormat.noCompression)
        let crc = CRC32C.extend(CRC32C.checksum(contents), [TableFormat.noCompression])
        output.appendFixed32(CRC32C.mask(crc))
        return handle
    }

    /// LevelDB's BytewiseComparator::FindShortestSeparator: a short key >= `start` and < `limit`.
    static func shortestSeparator(_ start: [UInt8], _ limit: [UInt8]) -> [UInt8] {
        let n = min(start.count, limit.count)
        var i = 0
        while i < n && start[i] == limit[i] { i += 1 }
        guard i < n else { return start }
        let b = start[i]
        guard b < 0xFF, b + 1 < limit[i] else { return start }
        return Array(start[..<i]) + [b + 1]
    }

    /// BytewiseComparator::FindShortSuccessor: a short key >= `key`.
    static func shortSuccessor(_ key: [UInt8]) -> [UInt8] {
        guard let i = key.firstIndex(where: { $0 != 0xFF }) else { return key }
        return Array(key[..<i]) + [key[i] + 1]
    }
}

/// LevelDB's BlockBuilder: prefix-compressed entries with a restart point (a full key) every
/// `restartInterval` entries, then the restart offsets and their count.
struct BlockBuilder {
    let restartInterval: Int
    private var buffer: [UInt8] = []
    private var restarts: [UInt32] = [0]
    private var counter = 0
    private var lastKey: [UInt8] = []

    init(restartInterval: Int) { self.restartInterval = restartInterval }

    var isEmpty: Bool { buffer.isEmpty }
    var sizeEstimate: Int { buffer.count + restarts.count * 4 + 4 }

    mutating func add(key: [UInt8], value: [UInt8]) {
        var shared = 0
        if counter < restartInterval {
            let n = min(lastKey.count, key.count)
            while shared < n && lastKey[shared] == key[shared] { shared += 1 }
        } else {
            restarts.append(UInt32(buffer.count))
            counter = 0
        }
        buffer.appendVarint(UInt64(shared))
        buffer.appendVarint(UInt64(key.count - shared))
        buffer.appendVarint(UInt64(value.count))
        buffer += key[shared...]
        buffer += value
        lastKey = key
        counter += 1
    }

    mutating func reset() { self = BlockBuilder(restartInterval: restartInterval) }

    func finish() -> [UInt8] {
        var out = buffer
        for r in restarts { out.appendFixed32(r) }
        out.appendFixed32(UInt32(restarts.count))
        return out
    }
}
