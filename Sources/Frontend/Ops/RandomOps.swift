import KilnIR

/// Random ops. Numbers come from a counter-based generator keyed by the op's seed and a hidden
/// per-session counter that each run advances, so the same seeds give the same sequence in every
/// session and process, while unseeded ops differ between sessions.
public enum RandomOps {
    public static let seed = Attr<Int>("seed", default: 0)
    public static let seed2 = Attr<Int>("seed2", default: 0)
    /// The float ops' output dtype.
    public static let dtype = Attr<DType>("dtype", default: .float32)

    static func shapeInfer(_ ctx: InferenceContext, dtype: DType) throws -> [(DType, Shape)] {
        guard ctx.dtype(0) == .int32 || ctx.dtype(0) == .int64 else { throw ctx.error("shape must be int32 or int64") }
        guard let dims = ctx.ints(0) else { return [(dtype, ctx.shapeValue(0))] }
        guard dims.allSatisfy({ $0 >= 0 }) else { throw ctx.error("shape \(dims) must be non-negative") }
        return [(dtype, Shape(dims))]
    }

    /// Draws `kind` numbers of `shape`, advancing the op's counter.
    static func draw(_ ctx: inout LoweringContext, _ kind: RandomKind, _ dtype: DType, _ shape: [Int]) throws -> Int {
        guard let counter = ctx.counter else { throw KilnError.internalError("random op '\(ctx.op.name)' has no counter") }
        let c = try ctx.emit(.varRead, [counter])
        let v = try ctx.emit(.random(kind, dtype: dtype, shape: shape, seed: ctx.seed), [c])
        try ctx.emit(.varWrite, [counter, ctx.binary(.add, c, scalar: 1)])
        return v
    }

    static func floatOp(_ name: String, _ kind: RandomKind) -> OpDef {
        OpDef(name, arity: .exactly(1), counter: true, infer: { ctx in
            let d = ctx.attrs[dtype]
            guard d.isFloatingPoint else { throw ctx.error("\(name) produces floats, not \(d)") }
            return try shapeInfer(ctx, dtype: d)
        }, lower: { ctx in
            [.value(try draw(&ctx, kind, ctx.attrs[dtype], try ctx.ints(0)))]
        }).declaring(seed, seed2, dtype)
    }

    static let defs: [OpDef] = [
        floatOp("RandomStandardNormal", .normal).integerInputs(IntegerInput.shape).notDifferentiable(),
        floatOp("TruncatedNormal", .truncatedNormal).integerInputs(IntegerInput.shape).notDifferentiable(),
        floatOp("RandomUniform", .uniform).integerInputs(IntegerInput.shape).notDifferentiable(),
        OpDef("RandomUniformInt", arity: .exactly(3), counter: true, infer: { ctx in
            let d = try ctx.sameDType([1, 2])
            guard d == .int32 || d == .int64 else { throw ctx.error("RandomUniformInt produces int32 or int64, not \(d)") }
            if let lo = ctx.ints(1)?.first, let hi = ctx.ints(2)?.first, lo >= hi {
                throw ctx.error("Need minval < maxval: \(lo) >= \(hi)")
            }
            return try shapeInfer(ctx, dtype: d)
        }, lower: { ctx in
            let lo = try ctx.value(1), hi = try ctx.value(2)
            let d = ctx.type(lo).dtype
            let bits = try draw(&ctx, .bits, .int64, try ctx.ints(0))
            // Fed bounds are checked when the op runs, as TensorFlow's kernel checks them.
            let range = try ctx.check(try ctx.binary(.sub, ctx.cast(hi, .int64), ctx.cast(lo, .int64)), .positive,
                                      "Need minval < maxval: maxval - minval = {value}")
            let r = try ctx.binary(.add, ctx.binary(.floormod, bits, range), ctx.cast(lo, .int64))
            return [.value(try ctx.cast(r, d))]
        }).integerInputs([IntegerInput(index: 0, attr: "T", form: .vector)]).declaring(seed, seed2).notDifferentiable(),
        // Shuffles along dimension 0: each row gets a random key; a row's rank among the keys
        // (ties broken by position) is its new place. Quadratic in the row count.
        OpDef("RandomShuffle", arity: .exactly(1), counter: true, infer: { ctx in
            [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape
            guard let n = s.first, n > 1 else { return [.value(x)] }
            let keys = try draw(&ctx, .bits, .int64, [n])
            let ki = try ctx.emit(.broadcast(shape: [n, n], dims: [0]), [keys])     // [i, j] = key i
            let kj = try ctx.emit(.broadcast(shape: [n, n], dims: [1]), [keys])     // [i, j] = key j
            let ii = try ctx.emit(.iota(dtype: .int64, shape: [n, n], axis: 0), [])
            let jj = try ctx.emit(.iota(dtype: .int64, shape: [n, n], axis: 1), [])
            let before = try ctx.emit(.binary(.or), [ctx.emit(.compare(.lt), [kj, ki]),
                                                    ctx.emit(.binary(.and), [ctx.emit(.compare(.eq), [kj, ki]), ctx.emit(.compare(.lt), [jj, ii])])])
            let rank = try ctx.reduce(.sum, ctx.cast(before, .int64), axes: [1], keepDims: false)       // rank of row i
            let hit = try ctx.emit(.compare(.eq), [ctx.emit(.broadcast(shape: [n, n], dims: [0]), [rank]), jj])  // [i, r]
            let perm = try ctx.reduce(.sum, ctx.emit(.select, [hit, ii, ctx.full(0, .int64, [n, n])]), axes: [0], keepDims: false)
            return [.value(try ctx.emit(.gather(axis: 0, batchDims: 0), [x, perm]))]
        }).declaring(seed, seed2).notDifferentiable(),
    ]
}

extension LoweringContext {
    /// The op's 64-bit seed from its (seed, seed2) attributes, or the session's when both are 0.
    public var seed: UInt64 {
        let s = UInt64(bitPattern: Int64(attrs[RandomOps.seed])), s2 = UInt64(bitPattern: Int64(attrs[RandomOps.seed2]))
        if s == 0 && s2 == 0 { return mixSeed(sessionSeed ^ mixSeed(UInt64(op.id) &+ 1)) }
        return mixSeed(s &* 0x9E37_79B9_7F4A_7C15 ^ mixSeed(s2 &+ 1))
    }
}

func mixSeed(_ z0: UInt64) -> UInt64 {
    var z = z0 &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}
