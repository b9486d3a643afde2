import CLLVM
import KilnIR

/// Scalar semantics of the elementwise primitives, matching ReferenceEvaluator exactly.
extension Emitter {
    func unary(_ u: UnaryOp, _ x: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        let t = registerType(d)
        if !d.isFloatingPoint {
            switch u {
            case .neg: return LLVMBuildNeg(b, x, "")
            case .abs:
                let neg = LLVMBuildICmp(b, LLVMIntSLT, x, constValue(0, d), "")
                return d == .uint8 ? x : LLVMBuildSelect(b, neg, LLVMBuildNeg(b, x, ""), x, "")
            case .sign:
                let pos = LLVMBuildICmp(b, d == .uint8 ? LLVMIntUGT : LLVMIntSGT, x, constValue(0, d), "")
                let neg = LLVMBuildICmp(b, LLVMIntSLT, x, constValue(0, d), "")
                let inner = d == .uint8 ? constValue(0, d) : LLVMBuildSelect(b, neg, constValue(-1, d), constValue(0, d), "")
                return LLVMBuildSelect(b, pos, constValue(1, d), inner, "")
            case .not: return LLVMBuildNot(b, x, "")
            default: return x
            }
        }
        switch u {
        case .neg: return LLVMBuildFNeg(b, x, "")
        case .abs: return intrinsic("llvm.fabs", [t], [x])
        case .exp: return d == .float32 ? expF32(x) : intrinsic("llvm.exp", [t], [x])
        case .log: return d == .float32 ? logF32(x) : intrinsic("llvm.log", [t], [x])
        case .log1p:
            guard d == .float32 else { return libm("log1p", x, d) }
            // log1p(x) = log(u) * x / (u - 1) with u = 1 + x corrects u's rounding error.
            let u = LLVMBuildFAdd(b, constValue(1, d), x, "")!
            let um1 = LLVMBuildFSub(b, u, constValue(1, d), "")!
            let exact = LLVMBuildFCmp(b, LLVMRealOEQ, um1, constValue(0, d), "")
            let corrected = LLVMBuildFDiv(b, LLVMBuildFMul(b, logF32(u), x, ""), um1, "")
            return LLVMBuildSelect(b, exact, x, corrected, "")
        case .sqrt: return intrinsic("llvm.sqrt", [t], [x])
        case .rsqrt: return LLVMBuildFDiv(b, constValue(1, d), intrinsic("llvm.sqrt", [t], [x]), "")
        case .tanh: return d == .float32 ? tanhF32(x) : libm("tanh", x, d)
        case .sigmoid:
            let e = intrinsic("llvm.exp", [t], [LLVMBuildFNeg(b, x, "")!])
            return LLVMBuildFDiv(b, constValue(1, d), LLVMBuildFAdd(b, constValue(1, d), e, ""), "")
        case .floor: return intrinsic("llvm.floor", [t], [x])
        case .ceil: return intrinsic("llvm.ceil", [t], [x])
        case .round: return intrinsic("llvm.roundeven", [t], [x])
        case .sign:
            let pos = LLVMBuildFCmp(b, LLVMRealOGT, x, constValue(0, d), "")
            let neg = LLVMBuildFCmp(b, LLVMRealOLT, x, constValue(0, d), "")
            let z = LLVMBuildFCmp(b, LLVMRealOEQ, x, constValue(0, d), "")
            let zero = LLVMBuildSelect(b, z, constValue(0, d), x, "")
            return LLVMBuildSelect(b, pos, constValue(1, d), LLVMBuildSelect(b, neg, constValue(-1, d), zero, ""), "")
        case .sin: return intrinsic("llvm.sin", [t], [x])
        case .cos: return intrinsic("llvm.cos", [t], [x])
        case .not: return x
        }
    }

    func binary(_ op: BinaryOp, _ x: LLVMValueRef, _ y: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        let t = registerType(d)
        if d.isFloatingPoint {
            switch op {
            case .add: return LLVMBuildFAdd(b, x, y, "")
            case .sub: return LLVMBuildFSub(b, x, y, "")
            case .mul: return LLVMBuildFMul(b, x, y, "")
            case .div: return LLVMBuildFDiv(b, x, y, "")
            case .max, .min:
                // NaN in either operand gives NaN, as TensorFlow's maximum/minimum do.
                let better = LLVMBuildFCmp(b, op == .max ? LLVMRealOGT : LLVMRealOLT, x, y, "")
                let xNaN = LLVMBuildFCmp(b, LLVMRealUNO, x, x, "")
                return LLVMBuildSelect(b, LLVMBuildOr(b, better, xNaN, ""), x, y, "")
            case .pow: return intrinsic("llvm.pow", [t], [x, y])
            case .floordiv: return intrinsic("llvm.floor", [t], [LLVMBuildFDiv(b, x, y, "")!])
            case .floormod:
                let r = LLVMBuildFRem(b, x, y, "")!
                let nonzero = LLVMBuildFCmp(b, LLVMRealUNE, r, constValue(0, d), "")
                let signsDiffer = LLVMBuildXor(b, LLVMBuildFCmp(b, LLVMRealOLT, r, constValue(0, d), ""),
                                               LLVMBuildFCmp(b, LLVMRealOLT, y, constValue(0, d), ""), "")
                let fix = LLVMBuildAnd(b, nonzero, signsDiffer, "")
                return LLVMBuildSelect(b, fix, LLVMBuildFAdd(b, r, y, ""), r, "")
            case .and, .or: return x
            }
        }
        let unsigned = d == .uint8 || d == .bool
        switch op {
        case .add: return LLVMBuildAdd(b, x, y, "")
        case .sub: return LLVMBuildSub(b, x, y, "")
        case .mul: return LLVMBuildMul(b, x, y, "")
        case .and: return LLVMBuildAnd(b, x, y, "")
        case .or: return LLVMBuildOr(b, x, y, "")
        case .max, .min:
            let pred = op == .max ? (unsigned ? LLVMIntUGT : LLVMIntSGT) : (unsigned ? LLVMIntULT : LLVMIntSLT)
            return LLVMBuildSelect(b, LLVMBuildICmp(b, pred, x, y, ""), x, y, "")
        case .pow:
            let wide = d == .int64 ? x : (unsigned ? LLVMBuildZExt(b, x, i64, "") : LLVMBuildSExt(b, x, i64, ""))!
            let wy = d == .int64 ? y : (unsigned ? LLVMBuildZExt(b, y, i64, "") : LLVMBuildSExt(b, y, i64, ""))!
            var params: [LLVMTypeRef?] = [i64, i64]
            let ft = LLVMFunctionType(i64, &params, 2, 0)!
            var args: [LLVMValueRef?] = [wide, wy]
            let r = LLVMBuildCall2(b, ft, declare("kiln_ipow_i64", ft), &args, 2, "")!
            return d == .int64 ? r : LLVMBuildTrunc(b, r, t, "")
        case .div, .floordiv, .floormod:
            // Division by zero gives 0 and MIN / -1 wraps, instead of trapping.
            let zero = LLVMBuildICmp(b, LLVMIntEQ, y, constValue(0, d), "")!
            if unsigned {
                let safe = LLVMBuildSelect(b, zero, constValue(1, d), y, "")
                let r = op == .floormod ? LLVMBuildURem(b, x, safe, "") : LLVMBuildUDiv(b, x, safe, "")
                return LLVMBuildSelect(b, zero, constValue(0, d), r, "")
            }
            let minusOne = LLVMBuildICmp(b, LLVMIntEQ, y, constValue(-1, d), "")!
            let safe = LLVMBuildSelect(b, LLVMBuildOr(b, zero, minusOne, ""), constValue(1, d), y, "")!
            let q = LLVMBuildSDiv(b, x, safe, "")!
            let rem = LLVMBuildSRem(b, x, safe, "")!
            let remNonzero = LLVMBuildICmp(b, LLVMIntNE, rem, constValue(0, d), "")
            let signsDiffer = LLVMBuildXor(b, LLVMBuildICmp(b, LLVMIntSLT, rem, constValue(0, d), ""),
                                           LLVMBuildICmp(b, LLVMIntSLT, y, constValue(0, d), ""), "")
            let adjust = LLVMBuildAnd(b, remNonzero, signsDiffer, "")
            let result: LLVMValueRef
            switch op {
            case .div:
                result = LLVMBuildSelect(b, minusOne, LLVMBuildNeg(b, x, ""), q, "")
            case .floordiv:
                let fq = LLVMBuildSelect(b, adjust, LLVMBuildSub(b, q, constValue(1, d), ""), q, "")
                result = LLVMBuildSelect(b, minusOne, LLVMBuildNeg(b, x, ""), fq, "")
            default:
                let fm = LLVMBuildSelect(b, adjust, LLVMBuildAdd(b, rem, y, ""), rem, "")
                result = LLVMBuildSelect(b, minusOne, constValue(0, d), fm, "")
            }
            return LLVMBuildSelect(b, zero, constValue(0, d), result, "")
        }
    }

    func compare(_ c: CompareOp, _ x: LLVMValueRef, _ y: LLVMValueRef, _ d: DType) -> LLVMValueRef {
        if d.isFloatingPoint {
            let p: LLVMRealPredicate
            switch c {
            case .eq: p = LLVMRealOEQ
            case .ne: p = LLVMRealUNE
            case .lt: p = LLVMRealOLT
            case .le: p = LLVMRealOLE
            case .gt: p = LLVMRealOGT
            case .ge: p = LLVMRealOGE
            }
            return LLVMBuildFCmp(b, p, x, y, "")
        }
        let unsigned = d == .uint8 || d == .bool
        let p: LLVMIntPredicate
        switch c {
        case .eq: p = LLVMIntEQ
        case .ne: p = LLVMIntNE
        case .lt: p = unsigned ? LLVMIntULT : LLVMIntSLT
        case .le: p = unsigned ? LLVMIntULE : LLVMIntSLE
        case .gt: p = unsigned ? LLVMIntUGT : LLVMIntSGT
        case .ge: p = unsigned ? LLVMIntUGE : LLVMIntSGE
        }
        return LLVMBuildICmp(b, p, x, y, "")
    }

    /// C conversion semantics; float to integer saturates (NaN gives 0) and then wraps to the
    /// target width, exactly as Tensor.converted(to:) does.
    func cast(_ x: LLVMValueRef, _ from: DType, _ to: DType) -> LLVMValueRef {
        if from == to { return x }
        let t = registerType(to)
        if to == .bool {
            return from.isFloatingPoint ? LLVMBuildFCmp(b, LLVMRealUNE, x, constValue(0, from), "")
                                        : LLVMBuildICmp(b, LLVMIntNE, x, constValue(0, from), "")
        }
        if from == .bool { return to.isFloatingPoint ? LLVMBuildUIToFP(b, x, t, "") : LLVMBuildZExt(b, x, t, "") }
        switch (from.isFloatingPoint, to.isFloatingPoint) {
        case (true, true):
            if to == .float64 { return LLVMBuildFPExt(b, x, t, "") }
            // TensorFlow's kernels run flush-to-zero: a result below float32's normal range is 0.
            let r = LLVMBuildFPTrunc(b, x, t, "")!
            let tiny = LLVMBuildFCmp(b, LLVMRealOLT, intrinsic("llvm.fabs", [f32], [r]), LLVMConstReal(f32, Double(Float.leastNormalMagnitude)), "")
            return LLVMBuildSelect(b, tiny, intrinsic("llvm.copysign", [f32], [LLVMConstReal(f32, 0), r]), r, "")
        case (true, false):
            let wide = intrinsic("llvm.fptosi.sat", [i64, registerType(from)], [x])
            return to == .int64 ? wide : LLVMBuildTrunc(b, wide, t, "")
        case (false, true):
            return from == .uint8 ? LLVMBuildUIToFP(b, x, t, "") : LLVMBuildSIToFP(b, x, t, "")
        case (false, false):
            if to.byteSize > from.byteSize {
                return from == .uint8 ? LLVMBuildZExt(b, x, t, "") : LLVMBuildSExt(b, x, t, "")
            }
            return LLVMBuildTrunc(b, x, t, "")
        }
    }
}

/// float32 exp, log and tanh as straight-line polynomial code, so loops that use them vectorise
/// (calls to libm's scalar functions would not). Errors are within a few ulp.
extension Emitter {
    func f(_ v: Double) -> LLVMValueRef { LLVMConstReal(f32, v) }
    func fma(_ a: LLVMValueRef, _ b: LLVMValueRef, _ c: LLVMValueRef) -> LLVMValueRef { intrinsic("llvm.fmuladd", [f32], [a, b, c]) }

    /// exp(x) = 2^n · e^r with n = round(x / ln 2) and |r| <= ln2/2 (Cephes' expf polynomial).
    func expF32(_ x0: LLVMValueRef) -> LLVMValueRef {
        let x = intrinsic("llvm.minnum", [f32], [intrinsic("llvm.maxnum", [f32], [x0, f(-88.3762626647949)]), f(88.3762626647950)])
        let n = intrinsic("llvm.rint", [f32], [LLVMBuildFMul(b, x, f(1.44269504088896341), "")!])
        var r = fma(n, f(-0.693359375), x)
        r = fma(n, f(2.12194440e-4), r)
        var p = f(1.9875691500e-4)
        for c in [1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1] { p = fma(p, r, f(c)) }
        let r2 = LLVMBuildFMul(b, r, r, "")!
        let er = LLVMBuildFAdd(b, fma(p, r2, r), f(1), "")!
        let ni = LLVMBuildFPToSI(b, n, i32, "")!
        let scale = LLVMBuildBitCast(b, LLVMBuildShl(b, LLVMBuildAdd(b, ni, constI32(127), ""), constI32(23), ""), f32, "")!
        let y = LLVMBuildFMul(b, er, scale, "")!
        // NaN propagates; +inf and overflow saturate at the clamp (e^88.38 is float32's max).
        let isNaN = LLVMBuildFCmp(b, LLVMRealUNO, x0, x0, "")
        let over = LLVMBuildFCmp(b, LLVMRealOGT, x0, f(88.72283905206835), "")
        let under = LLVMBuildFCmp(b, LLVMRealOLT, x0, f(-103.97), "")
        let y1 = LLVMBuildSelect(b, over, f(.infinity), LLVMBuildSelect(b, under, f(0), y, ""), "")!
        return LLVMBuildSelect(b, isNaN, x0, y1, "")
    }

    /// log(x) = e·ln2 + log(m) with m in [sqrt(1/2), sqrt(2)) (Cephes' logf polynomial).
    func logF32(_ x: LLVMValueRef) -> LLVMValueRef {
        // Subnormals are scaled into the normal range first.
        let tiny = LLVMBuildFCmp(b, LLVMRealOLT, x, f(Double(Float.leastNormalMagnitude)), "")
        let xs = LLVMBuildSelect(b, tiny, LLVMBuildFMul(b, x, f(8388608), ""), x, "")!
        let bits = LLVMBuildBitCast(b, xs, i32, "")!
        var e = LLVMBuildSub(b, LLVMBuildLShr(b, bits, constI32(23), ""), constI32(127), "")!
        e = LLVMBuildSelect(b, tiny, LLVMBuildSub(b, e, constI32(23), ""), e, "")!
        var m = LLVMBuildBitCast(b, LLVMBuildOr(b, LLVMBuildAnd(b, bits, constI32(0x007F_FFFF), ""), constI32(0x3F80_0000), ""), f32, "")!
        let big = LLVMBuildFCmp(b, LLVMRealOGT, m, f(1.41421356237), "")
        m = LLVMBuildSelect(b, big, LLVMBuildFMul(b, m, f(0.5), ""), m, "")!
        e = LLVMBuildSelect(b, big, LLVMBuildAdd(b, e, constI32(1), ""), e, "")!
        let z = LLVMBuildFSub(b, m, f(1), "")!
        var p = f(7.0376836292e-2)
        for c in [-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1,
                  -2.4999993993e-1, 3.3333331174e-1] { p = fma(p, z, f(c)) }
        let z2 = LLVMBuildFMul(b, z, z, "")!
        let ef = LLVMBuildSIToFP(b, e, f32, "")!
        var y = LLVMBuildFMul(b, LLVMBuildFMul(b, p, z, ""), z2, "")!
        y = fma(ef, f(-2.12194440e-4), y)
        y = LLVMBuildFAdd(b, y, fma(z2, f(-0.5), z), "")!
        y = fma(ef, f(0.693359375), y)
        // log(0) = -inf, log(negative or NaN) = NaN, log(+inf) = +inf.
        let zero = LLVMBuildFCmp(b, LLVMRealOEQ, x, f(0), "")
        let bad = LLVMBuildFCmp(b, LLVMRealULT, x, f(0), "")
        let inf = LLVMBuildFCmp(b, LLVMRealOEQ, x, f(.infinity), "")
        y = LLVMBuildSelect(b, inf, x, y, "")!
        y = LLVMBuildSelect(b, zero, f(-.infinity), y, "")!
        return LLVMBuildSelect(b, bad, f(.nan), y, "")!
    }

    /// tanh as the rational approximation XLA and Eigen use on [-9, 9] (it is ±1 beyond in float32).
    func tanhF32(_ x0: LLVMValueRef) -> LLVMValueRef {
        let x = intrinsic("llvm.minnum", [f32], [intrinsic("llvm.maxnum", [f32], [x0, f(-7.90531110763549805)]), f(7.90531110763549805)])
        let x2 = LLVMBuildFMul(b, x, x, "")!
        var p = f(-2.76076847742355e-16)
        for c in [2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08, 1.48572235717979e-05,
                  6.37261928875436e-04, 4.89352455891786e-03] { p = fma(x2, p, f(c)) }
        p = LLVMBuildFMul(b, x, p, "")!
        var q = f(1.19825839466702e-06)
        for c in [1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03] { q = fma(x2, q, f(c)) }
        let y = LLVMBuildFDiv(b, p, q, "")!
        // Tiny inputs return themselves (keeps the sign of zero and exactness).
        let small = LLVMBuildFCmp(b, LLVMRealOLT, intrinsic("llvm.fabs", [f32], [x0]), f(0.0004), "")
        let isNaN = LLVMBuildFCmp(b, LLVMRealUNO, x0, x0, "")
        return LLVMBuildSelect(b, LLVMBuildOr(b, small, isNaN, ""), x0, y, "")
    }
}
