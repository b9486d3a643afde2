/// The 16-bit float formats' conversions, bit for bit as TensorFlow (Eigen) does them: to half,
/// round to nearest even, overflow to infinity, underflow to zero through the subnormals, NaN stays
/// NaN (quiet); from half, exact. Every evaluator (tensors, the reference evaluator, compiled code)
/// agrees with these.
public enum HalfFloat {
    /// float32 -> IEEE float16 bits. Swift's Float16 conversion rounds to nearest even with
    /// subnormals, which is Eigen's float_to_half_rtne.
    public static func float16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return f.sign == .minus ? 0xFE00 : 0x7E00 }
        return Float16(f).bitPattern
    }

    public static func float(float16Bits b: UInt16) -> Float { Float(Float16(bitPattern: b)) }

    /// float32 -> bfloat16 bits: the top 16 bits rounded to nearest even (Eigen's
    /// float_to_bfloat16_rtne); a NaN becomes the quiet NaN of its sign.
    public static func bfloat16Bits(_ f: Float) -> UInt16 {
        if f.isNaN { return f.sign == .minus ? 0xFFC0 : 0x7FC0 }
        let u = f.bitPattern
        let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    public static func float(bfloat16Bits b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// The bits of `f` in half type `d` (float16 or bfloat16).
    public static func bits(_ f: Float, _ d: DType) -> UInt16 {
        precondition(d.isHalf, "\(d) is not a half type")
        return d == .float16 ? float16Bits(f) : bfloat16Bits(f)
    }

    /// The value of half bits `b` of type `d`.
    public static func float(_ b: UInt16, _ d: DType) -> Float {
        precondition(d.isHalf, "\(d) is not a half type")
        return d == .float16 ? float(float16Bits: b) : float(bfloat16Bits: b)
    }
}

/// TensorFlow's bfloat16: float32's sign and exponent with 7 mantissa bits. Stored as its bits.
public struct BFloat16: Hashable, Sendable, CustomStringConvertible {
    public var bitPattern: UInt16
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }
    public init(_ f: Float) { bitPattern = HalfFloat.bfloat16Bits(f) }
    public var description: String { Float(self).description }
}

extension Float {
    public init(_ b: BFloat16) { self = HalfFloat.float(bfloat16Bits: b.bitPattern) }
}

extension Tensor {
    /// A float16 or bfloat16 tensor from its elements' bits (how TensorProto's half_val and
    /// checkpoints carry them).
    public init(halfBits bits: [UInt16], dtype: DType, shape: [Int]) throws {
        guard dtype.isHalf else { throw KilnError.invalidArgument("half bits for a \(dtype.name) tensor") }
        let n = try Tensor.checkedCount(shape, dtype)
        guard n == bits.count else { throw KilnError.invalidArgument("shape \(shape) needs \(n) elements, got \(bits.count)") }
        let buffer = try TensorBuffer(byteCount: n * 2)
        bits.withUnsafeBytes { if n > 0 { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        try self.init(dtype: dtype, shape: shape, buffer: buffer)
    }

    /// The bits of a float16 or bfloat16 tensor's elements (empty for other dtypes).
    public var halfBits: [UInt16] {
        guard dtype.isHalf else { return [] }
        let p = buffer.pointer.bindMemory(to: UInt16.self, capacity: elementCount)
        return Array(UnsafeBufferPointer(start: p, count: elementCount))
    }
}
