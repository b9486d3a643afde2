// Pieces of the LevelDB table format as TensorFlow uses it for checkpoint indexes
// (tensorflow/core/lib/io/format.{h,cc}): varints, block handles, the footer.

/// A malformed table or bundle; the reader turns it into a dataLoss error naming the file.
struct TableFormatError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

enum TableFormat {
    /// kTableMagicNumber, stored little-endian as the footer's last 8 bytes.
    static let magic: UInt64 = 0xDB47_7524_8B80_FB57
    /// Two block handles padded to 40 bytes, then the magic.
    static let footerSize = 48
    /// Compression type byte and masked CRC after every block.
    static let blockTrailerSize = 5
    static let maxEncodedHandleLength = 20
    static let noCompression: UInt8 = 0
    static let snappyCompression: UInt8 = 1
}

/// Where a block lives in the table file; `size` excludes the trailer.
struct BlockHandle: Equatable {
    var offset: UInt64
    var size: UInt64

    func encode(into out: inout [UInt8]) {
        out.appendVarint(offset)
        out.appendVarint(size)
    }

    var encoded: [UInt8] {
        var b: [UInt8] = []
        encode(into: &b)
        return b
    }

    static func decode(_ c: inout ByteCursor) throws -> BlockHandle {
        BlockHandle(offset: try c.varint64(), size: try c.varint64())
    }
}

extension Array where Element == UInt8 {
    mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }

    mutating func appendFixed32(_ v: UInt32) {
        for i in 0..<4 { append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }

    mutating func appendFixed64(_ v: UInt64) {
        for i in 0..<8 { append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
}

/// A bounds-checked reader over bytes: every read past the end is a TableFormatError, so
/// corrupt input cannot crash.
struct ByteCursor {
    let bytes: ArraySlice<UInt8>
    private(set) var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    var isAtEnd: Bool { position >= bytes.endIndex }
    var remaining: Int { bytes.endIndex - position }

    mutating func varint64() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while shift < 64 {
            guard position < bytes.endIndex else { throw TableFormatError("varint runs past the end at byte \(position)") }
            let b = bytes[position]
            position += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        throw TableFormatError("varint longer than 10 bytes at byte \(position)")
    }

    mutating func varint32() throws -> UInt32 {
        let start = position
        let v = try varint64()
        guard v <= UInt64(UInt32.max), position - start <= 5 else { throw TableFormatError("varint32 out of range at byte \(start)") }
        return UInt32(v)
    }

    mutating func fixed32() throws -> UInt32 {
        let b = try take(4)
        return b.reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func fixed64() throws -> UInt64 {
        let b = try take(8)
        return b.reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else { throw TableFormatError("\(n) bytes needed at byte \(position), \(remaining) left") }
        defer { position += n }
        return bytes[position..<(position + n)]
    }
}
