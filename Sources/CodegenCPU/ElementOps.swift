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
        case .exp: return intrinsic("llvm.exp", [t], [x])
        case .log: return intrinsic("llvm.log", [t], [x])
        case .log1p: return libm("log1p", x, d)
        case .sqrt: return intrinsic("llvm.sqrt", [t], [x])
        case .rsqrt: return LLVMBuildFDiv(b, constValue(1, d), intrinsic("llvm.sqrt", [t], [x]), "")
        case .tanh: return libm("tanh", x, d)
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
