/// Reads every key/value of a LevelDB-format table held in memory (a checkpoint index is
/// small), checking the footer's magic, each block's masked CRC and the block structure.
/// Any inconsistency is a TableFormatError; nothing here can trap on bad bytes.
enum TableReader {
    static func entries(_ file: [UInt8]) throws -> [(key: [UInt8], value: [UInt8])] {
        guard file.count >= TableFormat.footerSize else {
            throw TableFormatError("file of \(file.count) bytes is shorter than the \(TableFormat.footerSize)-byte table footer")
        }
        var footer = ByteCursor(file[(file.count - TableFormat.footerSize)...])
        let metaHandle = try BlockHandle.decode(&footer)
        let indexHandle = try BlockHandle.decode(&footer)
        var magicCursor = ByteCursor(file[(file.count - 8)...])
        let magic = try magicCursor.fixed64()
        guard magic == TableFormat.magic else {
            throw TableFormatError("bad table magic number 0x\(String(magic, radix: 16)) (not a TensorFlow table)")
        }
        let dataEnd = file.count - TableFormat.footerSize
        _ = try block(file, metaHandle, limit: dataEnd, what: "metaindex block")
        let index = try block(file, indexHandle, limit: dataEnd, what: "index block")
        var result: [(key: [UInt8], value: [UInt8])] = []
        for (n, entry) in try blockEntries(index, what: "index block").enumerated() {
            var c = ByteCursor(entry.value[...])
            let handle = try BlockHandle.decode(&c)
            let data = try block(file, handle, limit: dataEnd, what: "data block \(n)")
            for kv in try blockEntries(data, what: "data block \(n) at offset \(handle.offset)") {
                if let last = result.last, !last.key.lexicographicallyPrecedes(kv.key) {
                    throw TableFormatError("keys out of order in data block \(n) at offset \(handle.offset)")
                }
                guard kv.key.lexicographicallyPrecedes(entry.key) || kv.key == entry.key else {
                    throw TableFormatError("key in data block \(n) is past its index entry")
                }
                result.append(kv)
            }
        }
        return result
    }

    /// The contents of the block at `handle`, its trailer checked and any Snappy compression undone.
    private static func block(_ file: [UInt8], _ handle: BlockHandle, limit: Int, what: String) throws -> [UInt8] {
        let (end, overflow) = handle.offset.addingReportingOverflow(handle.size)
        guard !overflow, end < UInt64(Int.max), Int(end) + TableFormat.blockTrailerSize <= limit else {
            throw TableFormatError("\(what) (offset \(handle.offset), size \(handle.size)) lies outside the \(limit) bytes before the footer")
        }
        let start = Int(handle.offset), stop = Int(end)
        let contents = file[start..<stop]
        let type = file[stop]
        var trailer = ByteCursor(file[(stop + 1)..<(stop + TableFormat.blockTrailerSize)])
        let stored = CRC32C.unmask(try trailer.fixed32())
        let actual = CRC32C.extend(CRC32C.checksum(contents), [type])
        guard stored == actual else {
            throw TableFormatError("\(what) at offset \(handle.offset): checksum mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(actual, radix: 16)))")
        }
        switch type {
        case TableFormat.noCompression: return Array(contents)
        case TableFormat.snappyCompression:
            do { return try Snappy.decompress(contents) } catch let e as TableFormatError {
                throw TableFormatError("\(what) at offset \(handle.offset): \(e.message)")
            }
        default: throw TableFormatError("\(what) at offset \(handle.offset): unknown compression type \(type)")
        }
    }

    /// The entries of a block, keys rebuilt from their shared prefixes.
    static func blockEntries(_ block: [UInt8], what: String) throws -> [(key: [UInt8], value: [UInt8])] {
        guard block.count >= 4 else { throw TableFormatError("\(what) of \(block.count) bytes has no restart count") }
        var tail = ByteCursor(block[(block.count - 4)...])
        let restarts = Int(try tail.fixed32())
        guard restarts >= 1, restarts <= (block.count - 4) / 4 else {
            throw TableFormatError("\(what) claims \(restarts) restart points in \(block.count) bytes")
        }
        let entriesEnd = block.count - 4 - 4 * restarts
        var c = ByteCursor(block[..<entriesEnd])
        var out: [(key: [UInt8], value: [UInt8])] = []
        var last: [UInt8] = []
        while !c.isAtEnd {
            let shared = Int(try c.varint32())
            let unshared = Int(try c.varint32())
            let valueLength = Int(try c.varint32())
            guard shared <= last.count else {
                throw TableFormatError("\(what): entry shares \(shared) key bytes but the previous key has \(last.count)")
            }
            let key = Array(last[..<shared]) + (try c.take(unshared))
            let value = Array(try c.take(valueLength))
            out.append((key, value))
            last = key
        }
        return out
    }
}
