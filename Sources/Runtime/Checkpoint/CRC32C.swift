import CKilnCRC32C

/// CRC-32C (Castagnoli), the checksum of TensorFlow's checkpoints, tables and records, with
/// TensorFlow's mask (a stored CRC of data that itself holds CRCs is masked so it is not the
/// CRC of the enclosing bytes by accident).
public enum CRC32C {
    private static let maskDelta: UInt32 = 0xA282_EAD8

    /// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes. Made once
    /// and kept for the process, behind a plain pointer: a record's checksum reads them without
    /// retaining an array.
    /// Never written after it is made, so any thread may read it.
    nonisolated(unsafe) private static let tables: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        t.initialize(repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let prev = t[(k - 1) * 256 + b]
                t[k * 256 + b] = (prev >> 8) ^ t[Int(prev & 0xFF)]
            }
        }
        return UnsafePointer(t)
    }()

    /// Whether `extend` uses the CPU's crc32 instruction (SSE4.2), else the tables below.
    static let hardware = kiln_crc32c_hardware() != 0

    /// The CRC of `crc`'s data followed by `bytes` (crc32c::Extend).
    public static func extend(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard hardware else { return extendPortable(crc, bytes) }
        guard bytes.count > 0, let p = bytes.baseAddress else { return crc }
        return kiln_crc32c_extend(crc, p, bytes.count)
    }

    /// The same from the slicing-by-8 tables, on any CPU.
    static func extendPortable(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        var n = bytes.count
        guard n > 0, var p = bytes.baseAddress else { return crc }
        let t = tables
        while n >= 8 {
            let lo = c ^ UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
            let hi = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
            p += 8
            n -= 8
        }
        while n > 0 {
            c = (c >> 8) ^ t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1
            n -= 1
        }
        return ~c
    }

    public static func extend<C: Collection>(_ crc: UInt32, _ bytes: C) -> UInt32 where C.Element == UInt8 {
        if let r = bytes.withContiguousStorageIfAvailable({ extend(crc, UnsafeRawBufferPointer($0)) }) { return r }
        return Array(bytes).withUnsafeBytes { extend(crc, $0) }
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { extend(0, bytes) }
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 { extend(0, bytes) }

    public static func mask(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ maskDelta }

    public static func unmask(_ masked: UInt32) -> UInt32 {
        let r = masked &- maskDelta
        return (r >> 17) | (r << 15)
    }
}
