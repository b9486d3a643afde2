/// Snappy decompression (the raw block format), for table blocks stored with compression type 1.
/// TensorFlow's bundle writer never compresses, but LevelDB-format readers must accept it.
enum Snappy {
    /// Refuses more than this much output, so a corrupt length cannot exhaust memory.
    static let maxOutput = 1 << 30

    static func decompress(_ input: ArraySlice<UInt8>) throws -> [UInt8] {
        var c = ByteCursor(input)
        let length = try c.varint64()
        guard length <= UInt64(maxOutput) else { throw TableFormatError("snappy block claims \(length) uncompressed bytes") }
        var out: [UInt8] = []
        out.reserveCapacity(Int(length))
        while !c.isAtEnd {
            let tag = try c.take(1).first!
            switch tag & 3 {
            case 0:
                var n = Int(tag >> 2)
                if n >= 60 {
                    let extra = n - 59
                    n = try c.take(extra).reversed().reduce(0) { $0 << 8 | Int($1) }
                }
                out += try c.take(n + 1)
            case 1:
                let n = Int((tag >> 2) & 7) + 4
                let offset = Int(tag >> 5) << 8 | Int(try c.take(1).first!)
                try copy(&out, offset: offset, length: n)
            case 2:
                let n = Int(tag >> 2) + 1
                let offset = Int(try c.take(2).reversed().reduce(0) { $0 << 8 | UInt32($1) })
                try copy(&out, offset: offset, length: n)
            default:
                let n = Int(tag >> 2) + 1
                let offset = Int(try c.take(4).reversed().reduce(0) { $0 << 8 | UInt32($1) })
                try copy(&out, offset: offset, length: n)
            }
            guard out.count <= Int(length) else { throw TableFormatError("snappy data expands past its stated length \(length)") }
        }
        guard out.count == Int(length) else { throw TableFormatError("snappy data gives \(out.count) bytes, expected \(length)") }
        return out
    }

    /// Back-references may overlap their own output (a run), so bytes are copied one by one.
    private static func copy(_ out: inout [UInt8], offset: Int, length: Int) throws {
        guard offset > 0, offset <= out.count else {
            throw TableFormatError("snappy copy offset \(offset) outside the \(out.count) bytes decoded so far")
        }
        let start = out.count - offset
        for i in 0..<length { out.append(out[start + i]) }
    }
}
