import KilnIR

/// Scalar semantics of the elementwise primitives, matching ReferenceEvaluator exactly.
extension KernelWriter {
    func unary(_ u: UnaryOp, _ x: RValue, _ d: DType) -> RValue {
        if !d.isFloatingPoint {
            switch u {
            case .neg: return r.neg(x)
            case .abs:
                let neg = r.icmp(.slt, x, constValue(0, d))
                return d == .uint8 ? x : r.select(neg, r.neg(x), x)
            case .sign:
                let pos = r.icmp(d == .uint8 ? .ugt : .sgt, x, constValue(0, d))
                let neg = r.icmp(.slt, x, constValue(0, d))
                let inner = d == .uint8 ? constValue(0, d) : r.select(neg, constValue(-1, d), constValue(0, d))
                return r.select(pos, constValue(1, d), inner)
            case .not: return r.not(x)
            default: return x
            }
        }
        switch u {
        case .neg: return r.fneg(x)
        case .abs: return r.math(.fabs, [x])
        case .exp: return d == .float32 ? expF32(x) : r.math(.exp, [x])
        case .log: return d == .float32 ? logF32(x) : r.math(.log, [x])
        case .log1p:
            guard d == .float32 else { return r.math(.log1p, [x]) }
            // log1p(x) = log(u) * x / (u - 1) with u = 1 + x corrects u's rounding error.
            let u = r.float(.add, constValue(1, d), x)
            let um1 = r.float(.sub, u, constValue(1, d))
            let exact = r.fcmp(.oeq, um1, constValue(0, d))
            let corrected = r.float(.div, r.float(.mul, logF32(u), x), um1)
            return r.select(exact, x, corrected)
        case .sqrt: return r.math(.sqrt, [x])
        case .rsqrt: return r.float(.div, constValue(1, d), r.math(.sqrt, [x]))
        case .tanh: return d == .float32 ? tanhF32(x) : r.math(.tanh, [x])
        case .sigmoid:
            let e = r.math(.exp, [r.fneg(x)])
            return r.float(.div, constValue(1, d), r.float(.add, constValue(1, d), e))
        case .floor: return r.math(.floor, [x])
        case .ceil: return r.math(.ceil, [x])
        case .round: return r.math(.roundeven, [x])
        case .sign:
            let pos = r.fcmp(.ogt, x, constValue(0, d))
            let neg = r.fcmp(.olt, x, constValue(0, d))
            let z = r.fcmp(.oeq, x, constValue(0, d))
            let zero = r.select(z, constValue(0, d), x)
            return r.select(pos, constValue(1, d), r.select(neg, constValue(-1, d), zero))
        case .sin: return r.math(.sin, [x])
        case .cos: return r.math(.cos, [x])
        case .erf: return errorFunction(x, d, complement: false)
        case .erfc: return errorFunction(x, d, complement: true)
        case .not: return x
        }
    }

    func binary(_ op: BinaryOp, _ x: RValue, _ y: RValue, _ d: DType) -> RValue {
        if d.isFloatingPoint {
            switch op {
            case .add: return r.float(.add, x, y)
            case .sub: return r.float(.sub, x, y)
            case .mul: return r.float(.mul, x, y)
            case .div: return r.float(.div, x, y)
            case .max, .min:
                // NaN in either operand gives NaN, as TensorFlow's maximum/minimum do.
                let better = r.fcmp(op == .max ? .ogt : .olt, x, y)
                let xNaN = r.fcmp(.uno, x, x)
                return r.select(r.int(.or, better, xNaN), x, y)
            case .pow: return r.math(.pow, [x, y])
            case .floordiv: return r.math(.floor, [r.float(.div, x, y)])
            case .floormod:
                let rem = r.float(.rem, x, y)
                let nonzero = r.fcmp(.une, rem, constValue(0, d))
                let signsDiffer = r.int(.xor, r.fcmp(.olt, rem, constValue(0, d)), r.fcmp(.olt, y, constValue(0, d)))
                let fix = r.int(.and, nonzero, signsDiffer)
                return r.select(fix, r.float(.add, rem, y), rem)
            case .and, .or: return x
            }
        }
        let unsigned = d == .uint8 || d == .bool
        switch op {
        case .add: return r.int(.add, x, y)
        case .sub: return r.int(.sub, x, y)
        case .mul: return r.int(.mul, x, y)
        case .and: return r.int(.and, x, y)
        case .or: return r.int(.or, x, y)
        case .max, .min:
            let pred: IntPredicate = op == .max ? (unsigned ? .ugt : .sgt) : (unsigned ? .ult : .slt)
            return r.select(r.icmp(pred, x, y), x, y)
        case .pow:
            let wide = d == .int64 ? x : r.convert(unsigned ? .zext : .sext, x, to: .i64)
            let wy = d == .int64 ? y : r.convert(unsigned ? .zext : .sext, y, to: .i64)
            let p = r.callRuntime(.ipow, [wide, wy])!
            return d == .int64 ? p : r.convert(.trunc, p, to: .register(d))
        case .div, .floordiv, .floormod:
            // Division by zero gives 0 and MIN / -1 wraps, instead of trapping.
            let zero = r.icmp(.eq, y, constValue(0, d))
            if unsigned {
                let safe = r.select(zero, constValue(1, d), y)
                let q = op == .floormod ? r.int(.urem, x, safe) : r.int(.udiv, x, safe)
                return r.select(zero, constValue(0, d), q)
            }
            let minusOne = r.icmp(.eq, y, constValue(-1, d))
            let safe = r.select(r.int(.or, zero, minusOne), constValue(1, d), y)
            let q = r.int(.sdiv, x, safe)
            let rem = r.int(.srem, x, safe)
            let remNonzero = r.icmp(.ne, rem, constValue(0, d))
            let signsDiffer = r.int(.xor, r.icmp(.slt, rem, constValue(0, d)), r.icmp(.slt, y, constValue(0, d)))
            let adjust = r.int(.and, remNonzero, signsDiffer)
            let result: RValue
            switch op {
            case .div:
                result = r.select(minusOne, r.neg(x), q)
            case .floordiv:
                let fq = r.select(adjust, r.int(.sub, q, constValue(1, d)), q)
                result = r.select(minusOne, r.neg(x), fq)
            default:
                let fm = r.select(adjust, r.int(.add, rem, y), rem)
                result = r.select(minusOne, constValue(0, d), fm)
            }
            return r.select(zero, constValue(0, d), result)
        }
    }

    func compare(_ c: CompareOp, _ x: RValue, _ y: RValue, _ d: DType) -> RValue {
        if d.isFloatingPoint {
            let p: FloatPredicate
            switch c {
            case .eq: p = .oeq
            case .ne: p = .une
            case .lt: p = .olt
            case .le: p = .ole
            case .gt: p = .ogt
            case .ge: p = .oge
            }
            return r.fcmp(p, x, y)
        }
        let unsigned = d == .uint8 || d == .bool
        let p: IntPredicate
        switch c {
        case .eq: p = .eq
        case .ne: p = .ne
        case .lt: p = unsigned ? .ult : .slt
        case .le: p = unsigned ? .ule : .sle
        case .gt: p = unsigned ? .ugt : .sgt
        case .ge: p = unsigned ? .uge : .sge
        }
        return r.icmp(p, x, y)
    }

    /// C conversion semantics; float to integer saturates (NaN gives 0) and then wraps to the
    /// target width, exactly as Tensor.converted(to:) does.
    func cast(_ x: RValue, _ from: DType, _ to: DType) -> RValue {
        if from == to { return x }
        // Through float32 both ways, as TensorFlow casts (Eigen converts every type to half via float).
        if from.isHalf {
            let f = halfToFloat(x, from)
            return to == .float32 ? f : cast(f, .float32, to)
        }
        if to.isHalf { return floatToHalf(from == .float32 ? x : cast(x, from, .float32), to) }
        let t = ScalarType.register(to)
        if to == .bool {
            return from.isFloatingPoint ? r.fcmp(.une, x, constValue(0, from)) : r.icmp(.ne, x, constValue(0, from))
        }
        if from == .bool { return r.convert(to.isFloatingPoint ? .uitofp : .zext, x, to: t) }
        switch (from.isFloatingPoint, to.isFloatingPoint) {
        case (true, true):
            if to == .float64 { return r.convert(.fpext, x, to: t) }
            // TensorFlow's kernels run flush-to-zero: a result below float32's normal range is 0.
            let v = r.convert(.fptrunc, x, to: t)
            let tiny = r.fcmp(.olt, r.math(.fabs, [v]), r.constant(float: Double(Float.leastNormalMagnitude), .f32))
            return r.select(tiny, r.math(.copysign, [r.constant(float: 0, .f32), v]), v)
        case (true, false):
            let wide = r.convert(.fptosiSat, x, to: .i64)
            return to == .int64 ? wide : r.convert(.trunc, wide, to: t)
        case (false, true):
            return r.convert(from == .uint8 ? .uitofp : .sitofp, x, to: t)
        case (false, false):
            if to.byteSize > from.byteSize { return r.convert(from == .uint8 ? .zext : .sext, x, to: t) }
            return r.convert(.trunc, x, to: t)
        }
    }
}

/// float32 exp, log and tanh as straight-line polynomial code, so loops that use them vectorise
/// (calls to libm's scalar functions would not). Errors are within a few ulp.
extension KernelWriter {
    func f(_ v: Double) -> RValue { r.constant(float: v, .f32) }
    func fma(_ a: RValue, _ b: RValue, _ c: RValue) -> RValue { r.math(.fma, [a, b, c]) }

    /// exp(x) = 2^n · e^r with n = round(x / ln 2) and |r| <= ln2/2 (Cephes' expf polynomial).
    func expF32(_ x0: RValue) -> RValue {
        let x = r.math(.minnum, [r.math(.maxnum, [x0, f(-88.3762626647949)]), f(88.3762626647950)])
        let n = r.math(.rint, [r.float(.mul, x, f(1.44269504088896341))])
        var rr = fma(n, f(-0.693359375), x)
        rr = fma(n, f(2.12194440e-4), rr)
        var p = f(1.9875691500e-4)
        for c in [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1] { p = fma(p, rr, f(c)) }
        let r2 = r.float(.mul, rr, rr)
        let er = r.float(.add, fma(p, r2, rr), f(1))
        let ni = r.convert(.fptosi, n, to: .i32)
        let scale = r.convert(.bitcast, r.int(.shl, r.int(.add, ni, c32(127)), c32(23)), to: .f32)
        let y = r.float(.mul, er, scale)
        // NaN propagates; +inf and overflow saturate at the clamp (e^88.38 is float32's max).
        let isNaN = r.fcmp(.uno, x0, x0)
        let over = r.fcmp(.ogt, x0, f(88.72283905206835))
        let under = r.fcmp(.olt, x0, f(-103.97))
        let y1 = r.select(over, f(.infinity), r.select(under, f(0), y))
        return r.select(isNaN, x0, y1)
    }

    /// log(x) = e·ln2 + log(m) with m in [sqrt(1/2), sqrt(2)) (Cephes' logf polynomial).
    func logF32(_ x: RValue) -> RValue {
        // Subnormals are scaled into the normal range first.
        let tiny = r.fcmp(.olt, x, f(Double(Float.leastNormalMagnitude)))
        let xs = r.select(tiny, r.float(.mul, x, f(8388608)), x)
        let bits = r.convert(.bitcast, xs, to: .i32)
        var e = r.int(.sub, r.int(.lshr, bits, c32(23)), c32(127))
        e = r.select(tiny, r.int(.sub, e, c32(23)), e)
        var m = r.convert(.bitcast, r.int(.or, r.int(.and, bits, c32(0x007F_FFFF)), c32(0x3F80_0000)), to: .f32)
        let big = r.fcmp(.ogt, m, f(1.41421356237))
        m = r.select(big, r.float(.mul, m, f(0.5)), m)
        e = r.select(big, r.int(.add, e, c32(1)), e)
        let z = r.float(.sub, m, f(1))
        var p = f(7.0376836292e-2)
        for c in [-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1,
                  -2.4999993993e-1, 3.3333331174e-1] { p = fma(p, z, f(c)) }
        let z2 = r.float(.mul, z, z)
        let ef = r.convert(.sitofp, e, to: .f32)
        var y = r.float(.mul, r.float(.mul, p, z), z2)
        y = fma(ef, f(-2.12194440e-4), y)
        y = r.float(.add, y, fma(z2, f(-0.5), z))
        y = fma(ef, f(0.693359375), y)
        // log(0) = -inf, log(negative or NaN) = NaN, log(+inf) = +inf.
        let zero = r.fcmp(.oeq, x, f(0))
        let bad = r.fcmp(.ult, x, f(0))
        let inf = r.fcmp(.oeq, x, f(.infinity))
        y = r.select(inf, x, y)
        y = r.select(zero, f(-.infinity), y)
        return r.select(bad, f(.nan), y)
    }

    /// tanh as the rational approximation XLA and Eigen use on [-9, 9] (it is ±1 beyond in float32).
    func tanhF32(_ x0: RValue) -> RValue {
        let x = r.math(.minnum, [r.math(.maxnum, [x0, f(-7.90531110763549805)]), f(7.90531110763549805)])
        let x2 = r.float(.mul, x, x)
        var p = f(-2.76076847742355e-16)
        for c in [2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08, 1.48572235717979e-05,
                  6.37261928875436e-04, 4.89352455891786e-03] { p = fma(x2, p, f(c)) }
        p = r.float(.mul, x, p)
        var q = f(1.19825839466702e-06)
        for c in [1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03] { q = fma(x2, q, f(c)) }
        let y = r.float(.div, p, q)
        // Tiny inputs return themselves (keeps the sign of zero and exactness).
        let small = r.fcmp(.olt, r.math(.fabs, [x0]), f(0.0004))
        let isNaN = r.fcmp(.uno, x0, x0)
        return r.select(r.int(.or, small, isNaN), x0, y)
    }
}

/// erf and erfc as straight-line code (no libm call, so loops over them vectorise), computed in
/// double and rounded once: float32 results are within 1 ulp of the correctly rounded value.
extension KernelWriter {
    /// erf's Maclaurin series in z = x^2: erf(x) = 2/sqrt(pi) * x * sum (-1)^n z^n / (n! (2n+1)).
    /// 32 terms reach double rounding below |x| = 2.5, where the alternating terms stay small.
    static let erfSeries: [Double] = {
        var factorial = 1.0
        return (0..<32).map { n in
            if n > 0 { factorial *= Double(n) }
            return (n % 2 == 0 ? 1 : -1) / (factorial * Double(2 * n + 1))
        }
    }()
    /// Below this |x| erf comes from the series, above it erfc from the continued fraction.
    static let erfSeriesLimit = 2.5
    /// Levels of erfc's continued fraction; at |x| >= 2.5 16 levels are exact in double.
    static let erfcFractionLevels = 16

    /// erf(x) (or erfc(x) with `complement`). Near 0 the series gives erf; beyond 2.5 the continued
    /// fraction erfc(a) = exp(-a^2) / (sqrt(pi) (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))) gives
    /// erfc with full relative accuracy in the tail, where 1 - erf would cancel. Both are
    /// evaluated and one selected, so there is no branch.
    func errorFunction(_ x0: RValue, _ d: DType, complement: Bool) -> RValue {
        if !target.float64, let device = r as? any DeviceRenderer {
            // A device without double: its own erf/erfc in float (OpenCL allows 16 ulp; the
            // device-accuracy test holds it to 2e-6 relative against this double series).
            precondition(d == .float32, "\(d) erf on a device without float64")
            return device.errorFunction(x0, complement: complement)
        }
        let x = d == .float32 ? r.convert(.fpext, x0, to: .f64) : x0
        func c(_ v: Double) -> RValue { r.constant(float: v, .f64) }
        let a = r.math(.fabs, [x]), z = r.float(.mul, a, a)
        var p = c(Self.erfSeries.last!)
        for k in Self.erfSeries.indices.dropLast().reversed() { p = r.math(.fma, [p, z, c(Self.erfSeries[k])]) }
        let erfNear = r.float(.mul, r.float(.mul, c(2 / Double.pi.squareRoot()), a), p)
        var t = a
        for k in stride(from: Self.erfcFractionLevels, through: 1, by: -1) { t = r.float(.add, a, r.float(.div, c(Double(k) / 2), t)) }
        let erfcFar = r.float(.div, expF64(r.fneg(z)), r.float(.mul, c(Double.pi.squareRoot()), t))
        let near = r.fcmp(.olt, a, c(Self.erfSeriesLimit))
        let result: RValue
        if complement {
            // erfc(-a) = 2 - erfc(a); NaN stays NaN through the far side.
            let e = r.select(near, r.float(.sub, c(1), erfNear), erfcFar)
            result = r.select(r.fcmp(.olt, x, c(0)), r.float(.sub, c(2), e), e)
        } else {
            // erf is odd: the sign of x (and of zero) carries over.
            result = r.math(.copysign, [r.select(near, erfNear, r.float(.sub, c(1), erfcFar)), x])
        }
        return d == .float32 ? r.convert(.fptrunc, result, to: .f32) : result
    }

    /// exp(x) in double for x <= 0 as straight-line code: x = n ln2 + r with |r| <= ln2/2
    /// (ln2 split in two so n ln2 is exact), e^r by its Taylor polynomial to r^13 (error below
    /// 1e-16), scaled by 2^n through the exponent bits; below -708 the result is 0.
    func expF64(_ x: RValue) -> RValue {
        func c(_ v: Double) -> RValue { r.constant(float: v, .f64) }
        let clamped = r.math(.maxnum, [x, c(-708)])
        let n = r.math(.rint, [r.float(.mul, clamped, c(1.4426950408889634))])
        let rest = r.math(.fma, [n, c(-1.42860682030941723212e-06), r.math(.fma, [n, c(-6.93145751953125e-1), clamped])])
        var p = c(1 / 6_227_020_800.0)   // 1/13!
        var factorial = 6_227_020_800.0
        for k in stride(from: 12, through: 0, by: -1) {
            factorial /= Double(k + 1)
            p = r.math(.fma, [p, rest, c(1 / factorial)])
        }
        let bits = r.int(.shl, r.int(.add, r.convert(.fptosi, n, to: .i64), r.constant(int: 1023, .i64)), r.constant(int: 52, .i64))
        let scaled = r.float(.mul, p, r.convert(.bitcast, bits, to: .f64))
        return r.select(r.fcmp(.olt, x, c(-708)), c(0), scaled)
    }
}

