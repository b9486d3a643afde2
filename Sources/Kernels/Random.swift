import KilnIR

/// Counter-based random numbers, bit-identical to ReferenceEvaluator.randomBits: each element's
/// bits depend only on the seed, the op's counter, its position and the draw.
extension KernelWriter {
    func mix64(_ z0: RValue) -> RValue {
        var z = z0
        z = r.int(.mul, r.int(.xor, z, r.int(.lshr, z, c64(30))), r.constant(int: Int64(bitPattern: 0xBF58_476D_1CE4_E5B9), .i64))
        z = r.int(.mul, r.int(.xor, z, r.int(.lshr, z, c64(27))), r.constant(int: Int64(bitPattern: 0x94D0_49BB_1331_11EB), .i64))
        return r.int(.xor, z, r.int(.lshr, z, c64(31)))
    }

    func randomBits(seed: UInt64, counter: RValue, count: RValue, index: RValue, draw: RValue) -> RValue {
        let golden = r.constant(int: Int64(bitPattern: 0x9E37_79B9_7F4A_7C15), .i64)
        let salt = r.int(.mul, r.int(.add, draw, c64(1)), golden)
        let key = mix64(r.int(.add, r.constant(int: Int64(bitPattern: seed), .i64), salt))
        let ctr = r.int(.add, r.int(.mul, counter, count), index)
        let mixed = mix64(r.int(.mul, ctr, golden))
        return mix64(r.int(.xor, key, mixed))
    }

    /// A standard normal from 48 of the bits (Box-Muller) computed in `t`: Double, or float on a
    /// device without double. u1 and u2 are exact in float (24 bits each), so float's result
    /// differs from Double's rounded to float only by float's log, sqrt and cos (a few ulp; the
    /// device test bounds it at 1e-5 absolute).
    func normal(_ bits: RValue, in t: ScalarType) -> RValue {
        let unit = r.constant(float: 0x1p-24, t)
        let u1 = r.float(.mul, r.convert(.uitofp, r.int(.add, r.int(.lshr, bits, c64(40)), c64(1)), to: t), unit)
        let u2 = r.float(.mul, r.convert(.uitofp, r.int(.and, r.int(.lshr, bits, c64(16)), c64(0xFF_FFFF)), to: t), unit)
        let radius = r.math(.sqrt, [r.float(.mul, r.constant(float: -2, t), r.math(.log, [u1]))])
        let twoPi = t == .f32 ? Double(Float(2 * Double.pi)) : 2 * Double.pi
        return r.float(.mul, radius, r.math(.cos, [r.float(.mul, r.constant(float: twoPi, t), u2)]))
    }

    func random(_ i: Instruction, _ idx: Index, _ kind: RandomKind, _ seed: UInt64) -> RValue {
        let t = i.type!
        let counter = element(i.operands[0], Index(multi: [], linear: c64(0), shape: [], writer: self))
        // The stream is laid out by the element count: the run's, when the shape carries the batch.
        let n = batchExtent(i.id).map { r.int(.mul, $0, c64(t.shape.dropFirst().reduce(1, *))) } ?? c64(t.elementCount)
        let bits = randomBits(seed: seed, counter: counter, count: n, index: idx.linear, draw: c64(0))
        // Normals are drawn in Double, or in float where the target has no double.
        let (normalType, normalDType): (ScalarType, DType) = target.float64 ? (.f64, .float64) : (.f32, .float32)
        switch kind {
        case .bits:
            return r.int(.lshr, bits, c64(1))
        case .uniform:
            if t.dtype == .float32 {
                return r.float(.mul, r.convert(.uitofp, r.int(.lshr, bits, c64(40)), to: .f32), r.constant(float: 0x1p-24, .f32))
            }
            return r.float(.mul, r.convert(.uitofp, r.int(.lshr, bits, c64(11)), to: .f64), r.constant(float: 0x1p-53, .f64))
        case .normal:
            return cast(normal(bits, in: normalType), normalDType, t.dtype)
        case .truncatedNormal:
            // Redraw (draw 1, 2, ...) until within two standard deviations.
            let value = r.slot(normalType, initial: nil), draw = r.slot(.i64, initial: nil)
            r.store(normal(bits, in: normalType), value)
            r.store(c64(1), draw)
            r.whileLoop({ r.fcmp(.ogt, r.math(.fabs, [r.load(value)]), r.constant(float: 2, normalType)) }) {
                let k = r.load(draw)
                r.store(normal(randomBits(seed: seed, counter: counter, count: n, index: idx.linear, draw: k), in: normalType), value)
                r.store(r.int(.add, k, c64(1)), draw)
            }
            return cast(r.load(value), normalDType, t.dtype)
        }
    }
}
