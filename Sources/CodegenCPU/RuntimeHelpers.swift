/// Small functions compiled code calls for operations that need a loop of their own per element.
enum RuntimeHelpers {
    static var symbols: [(String, UnsafeRawPointer)] {
        [("kiln_ipow_i64", unsafeBitCast(kilnIPow as @convention(c) (Int64, Int64) -> Int64, to: UnsafeRawPointer.self))]
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
