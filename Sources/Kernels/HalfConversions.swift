import KilnIR

/// Converting float16 and bfloat16 (their bits, an i16 in registers) to and from f32: the only
/// arithmetic a kernel does on the half types, HalfPrecisionPass having rewritten every other op on
/// them to compute in f32. A renderer with native conversions (LLVM's F16C) supplies them through
/// `KernelRenderer.halfToFloat`/`floatToHalf`; the rest get these integer-and-float sequences,
/// which are Eigen's (float_to_half_rtne, half_to_float, float_to_bfloat16_rtne) step for step and
/// so agree with `HalfFloat` bit for bit: nearest even, overflow to infinity, subnormal halves,
/// NaN quiet.
extension KernelWriter {
    func halfToFloat(_ bits: RValue, _ d: DType) -> RValue {
        if let v = r.halfToFloat(bits, brain: d == .bfloat16) { return v }
        let u = r.convert(.zext, bits, to: .i32)
        if d == .bfloat16 { return r.convert(.bitcast, r.int(.shl, u, c32(16)), to: .f32) }
        let shiftedExp = c32(0x7C00 << 13)
        var o = r.int(.shl, r.int(.and, u, c32(0x7FFF)), c32(13))
        let exp = r.int(.and, o, shiftedExp)
        o = r.int(.add, o, c32((127 - 15) << 23))
        // Infinity and NaN: the exponent goes all the way to float32's all-ones.
        let special = r.icmp(.eq, exp, shiftedExp)
        o = r.select(special, r.int(.add, o, c32((128 - 16) << 23)), o)
        // Zero and subnormals: renormalised by a float subtraction (exact).
        let tiny = r.icmp(.eq, exp, c32(0))
        let renormal = r.float(.sub, r.convert(.bitcast, r.int(.add, o, c32(1 << 23)), to: .f32), r.constant(float: 0x1p-14, .f32))
        o = r.select(tiny, r.convert(.bitcast, renormal, to: .i32), o)
        o = r.int(.or, o, r.int(.shl, r.int(.and, u, c32(0x8000)), c32(16)))
        return r.convert(.bitcast, o, to: .f32)
    }

    func floatToHalf(_ x: RValue, _ d: DType) -> RValue {
        if let v = r.floatToHalf(x, brain: d == .bfloat16) { return v }
        let u = r.convert(.bitcast, x, to: .i32)
        if d == .bfloat16 {
            let lsb = r.int(.and, r.int(.lshr, u, c32(16)), c32(1))
            let rounded = r.int(.lshr, r.int(.add, r.int(.add, u, c32(0x7FFF)), lsb), c32(16))
            let quietNaN = r.int(.or, r.int(.and, r.int(.lshr, u, c32(16)), c32(0x8000)), c32(0x7FC0))
            return r.convert(.trunc, r.select(r.fcmp(.uno, x, x), quietNaN, rounded), to: .i16)
        }
        let signBit = r.int(.and, u, c32(Int(Int32.min)))
        let a = r.int(.xor, u, signBit)
        // Beyond float16's range (from 65520 up the rounding carries there): infinity; NaN: quiet NaN.
        let special = r.select(r.icmp(.sgt, a, c32(0x7F80_0000)), c32(0x7E00), c32(0x7C00))
        // Below float16's normal range: adding 0.5 aligns the 10 mantissa bits at the bottom,
        // float addition rounding them to nearest even.
        let aligned = r.float(.add, r.convert(.bitcast, a, to: .f32), r.constant(float: 0.5, .f32))
        let subnormal = r.int(.sub, r.convert(.bitcast, aligned, to: .i32), c32(126 << 23))
        // Normal: rebias the exponent and round to nearest even on the 13 dropped bits.
        let odd = r.int(.and, r.int(.lshr, a, c32(13)), c32(1))
        let rebiased = r.int(.add, r.int(.add, a, c32(Int(Int32(bitPattern: 0xC800_0FFF)))), odd)
        let normal = r.int(.lshr, rebiased, c32(13))
        let magnitude = r.select(r.icmp(.sge, a, c32(143 << 23)), special,
                                 r.select(r.icmp(.slt, a, c32(113 << 23)), subnormal, normal))
        let h = r.int(.or, magnitude, r.int(.lshr, signBit, c32(16)))
        return r.convert(.trunc, h, to: .i16)
    }
}

extension KernelRenderer {
    /// No native conversion: the writer's integer sequence (see HalfConversions.swift).
    public func halfToFloat(_ bits: RValue, brain: Bool) -> RValue? { nil }
    public func floatToHalf(_ x: RValue, brain: Bool) -> RValue? { nil }
}
