/// Overflow-checked size arithmetic. Declared shapes come from users and files, so a product of
/// dimensions or a byte count may not fit in an Int: every size Kiln computes from a shape goes
/// through these, and an overflow becomes an error naming the node instead of a trap.
public enum Sizes {
    /// The product of `dims`, or nil when it overflows (or a dimension is negative).
    public static func product<S: Sequence>(_ dims: S) -> Int? where S.Element == Int {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// Bytes of `count` elements of `dtype`, or nil when that overflows.
    public static func bytes(_ count: Int, _ dtype: DType) -> Int? {
        let (b, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
        return o ? nil : b
    }

    /// `a + b`, or nil when that overflows.
    public static func sum(_ a: Int, _ b: Int) -> Int? {
        let (s, o) = a.addingReportingOverflow(b)
        return o ? nil : s
    }

    /// `a * b`, or nil when that overflows.
    public static func product(_ a: Int, _ b: Int) -> Int? {
        let (p, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : p
    }

    /// `shape`'s size as TensorFlow spells it in errors: `[100000,100000]` of float32 is
    /// 40000000000 bytes; "more than 2^63" when it does not fit in an Int.
    public static func describe(_ shape: [Int], _ dtype: DType) -> String {
        guard let n = product(shape), let b = bytes(n, dtype) else { return "shape \(shape) of \(dtype.name): more than 2^63 bytes" }
        return "shape \(shape) of \(dtype.name): \(n) elements, \(b) bytes"
    }
}
