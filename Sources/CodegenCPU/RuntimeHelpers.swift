import CKilnRT
/// Small functions compiled code calls for operations that need a loop of their own per element.
enum RuntimeHelpers {
    static var symbols: [(String, UnsafeRawPointer)] {
        [("kiln_parallel_for", unsafeBitCast(kiln_parallel_for as @convention(c) (kiln_range_kernel?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int64) -> Void, to: UnsafeRawPointer.self)),
         ("kiln_sgemm", unsafeBitCast(kiln_sgemm as @convention(c) (Int32, Int32, Int64, Int64, Int64, Float, UnsafePointer<Float>?, Int64, UnsafePointer<Float>?, Int64, UnsafeMutablePointer<Float>?, Int64, Int32) -> Void, to: UnsafeRawPointer.self)),
         ("kiln_fault_record", unsafeBitCast(kiln_fault_record as @convention(c) (UnsafeMutablePointer<kiln_fault>?, Int64, Int64, Int64) -> Void, to: UnsafeRawPointer.self)),
         ("kiln_ipow_i64", unsafeBitCast(kilnIPow as @convention(c) (Int64, Int64) -> Int64, to: UnsafeRawPointer.self)),
         ("kiln_profile_tick", unsafeBitCast(kilnProfileTick as @convention(c) (UnsafeMutablePointer<UInt64>, Int64) -> Void, to: UnsafeRawPointer.self))]
    }
}

/// Integer power by squaring; negative exponents follow integer division (0 unless |base| is 1).
private let kilnIPow: @convention(c) (Int64, Int64) -> Int64 = { base, exp in
    if exp < 0 { return base == 1 ? 1 : base == -1 ? (exp % 2 == 0 ? 1 : -1) : 0 }
    var result: Int64 = 1, b = base, e = exp
    while e > 0 {
        if e & 1 == 1 { result = result &* b }
        b = b &* b
        e >>= 1
    }
    return result
}

/// Nanosecond timestamp into slot `i` (per-kernel times for KILN_DEBUG=2).
private let kilnProfileTick: @convention(c) (UnsafeMutablePointer<UInt64>, Int64) -> Void = { slots, i in
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    slots[Int(i)] = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

#if canImport(Glibc)
import Glibc
#endif
