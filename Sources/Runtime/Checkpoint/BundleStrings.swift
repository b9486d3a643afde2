import KilnIR

/// The data-file layout of a DT_STRING tensor in a tensor bundle (tensor_bundle.cc,
/// WriteStringTensor): varint64 lengths, the masked CRC of the lengths, then the bytes. The
/// entry's CRC covers the lengths as fixed-width integers (not their varints), the stored
/// length CRC and the bytes.
enum BundleStrings {
    static func encode(_ strings: TensorStrings) -> (bytes: [UInt8], crc: UInt32) {
        var out: [UInt8] = []
        var crc: UInt32 = 0
        for i in strings.indices {
            let n = strings.range(i).count
            out.appendVarint(UInt64(n))
            crc = extendWithLength(crc, n)
        }
        let lengthChecksum = CRC32C.mask(crc)
        var stored: [UInt8] = []
        stored.appendFixed32(lengthChecksum)
        out += stored
        crc = CRC32C.extend(crc, stored)
        // The bytes follow one another as they do in the tensor.
        out += strings.bytes
        crc = CRC32C.extend(crc, strings.bytes)
        return (out, crc)
    }

    /// The strings in `bytes` (exactly `count` of them, filling `bytes` exactly) and the CRC the
    /// entry should hold; a bad length checksum or a size mismatch is a TableFormatError.
    static func decode(_ bytes: [UInt8], count: Int) throws -> (strings: TensorStrings, crc: UInt32) {
        var c = ByteCursor(bytes[...])
        var lengths: [Int] = []
        lengths.reserveCapacity(min(count, bytes.count))
        var crc: UInt32 = 0
        var total = 0
        for i in 0..<count {
            let n = try c.varint64()
            guard n <= UInt64(bytes.count) else { throw TableFormatError("string \(i) claims \(n) bytes in a \(bytes.count)-byte entry") }
            lengths.append(Int(n))
            total += Int(n)
            crc = extendWithLength(crc, Int(n))
        }
        let stored = try c.take(4)
        var sc = ByteCursor(stored)
        let lengthChecksum = try sc.fixed32()
        guard CRC32C.unmask(lengthChecksum) == crc else {
            throw TableFormatError("string lengths checksum mismatch (stored 0x\(String(CRC32C.unmask(lengthChecksum), radix: 16)), computed 0x\(String(crc, radix: 16)))")
        }
        crc = CRC32C.extend(crc, stored)
        guard total == c.remaining else {
            throw TableFormatError("string lengths add up to \(total) bytes but \(c.remaining) follow them")
        }
        var strings = TensorStrings()
        strings.reserve(count, bytesEach: 0)
        for n in lengths {
            let s = try c.take(n)
            crc = CRC32C.extend(crc, s)
            strings.append(s)
        }
        return (strings, crc)
    }

    /// Lengths that fit 32 bits are checksummed as 4 bytes, larger ones as 8 (little-endian).
    private static func extendWithLength(_ crc: UInt32, _ n: Int) -> UInt32 {
        var b: [UInt8] = []
        if UInt64(n) <= UInt64(UInt32.max) { b.appendFixed32(UInt32(n)) } else { b.appendFixed64(UInt64(n)) }
        return CRC32C.extend(crc, b)
    }
}
