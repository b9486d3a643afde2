import KilnIR

/// Ops that move data around: concat, expand_dims, squeeze, transpose, pad, tile, slices, gathers,
/// one_hot, shape queries and constant fills.
public enum ShapeOps {
    /// Shape's, Size's and ShapeN's output dtype.
    public static let outType = Attr<DType>("out_type", default: .int32)
    public enum Squeeze { public static let squeezeDims = Attr<[Int]>("squeeze_dims", default: []) }
    public enum Gather { public static let batchDims = Attr<Int>("batch_dims", default: 0) }
    public enum OneHot { public static let axis = Attr<Int>("axis", default: -1) }
    /// MirrorPad's (and MirrorPadGrad's) mode; TensorFlow's graphs always state it.
    public enum MirrorPad { public static let mode = Attr<String>("mode", default: "REFLECT") }
    /// StridedSlice's (and StridedSliceGrad's) bit masks.
    public enum StridedSlice {
        public static let beginMask = Attr<Int>("begin_mask", default: 0)
        public static let endMask = Attr<Int>("end_mask", default: 0)
        public static let ellipsisMask = Attr<Int>("ellipsis_mask", default: 0)
        public static let newAxisMask = Attr<Int>("new_axis_mask", default: 0)
        public static let shrinkAxisMask = Attr<Int>("shrink_axis_mask", default: 0)
        static let masks = [beginMask, endMask, ellipsisMask, newAxisMask, shrinkAxisMask]
    }

    static let defs: [OpDef] = [
        OpDef("ConcatV2", arity: .atLeast(2), attrs: ["Tidx": .type(.int32)], infer: { ctx in
            let n = ctx.inputs.count - 1
            let d = try ctx.sameDType(Array(0..<n))
            guard let a = ctx.ints(n)?.first else { return [(d, .unknown)] }
            let known = (0..<n).compactMap { ctx.shape($0).dims }
            guard let rank = known.first?.count else { return [(d, .unknown)] }
            if rank == 0 { throw ctx.error("Can't concatenate scalars (use tf.stack instead)") }
            let axis = try ctx.normalizedAxis(a, rank: rank)
            var out = [Int?](repeating: nil, count: rank)
            var total: Int? = 0
            for (k, dims) in known.enumerated() {
                guard dims.count == rank else { throw ctx.error("Shape must be rank \(rank) but is rank \(dims.count) for input \(k)") }
                for j in 0..<rank where j != axis {
                    if let x = out[j], let y = dims[j], x != y { throw ctx.error("Dimension \(j) in both shapes must be equal, but are \(x) and \(y)") }
                    out[j] = out[j] ?? dims[j]
                }
                if let v = dims[axis], let t = total {
                    guard let s = Sizes.sum(t, v) else { throw ctx.error("Concatenated dimension \(axis) overflows: \(t) + \(v)") }
                    total = s
                } else {
                    total = nil
                }
            }
            out[axis] = known.count == n ? total : nil
            return [(d, Shape(dims: out))]
        }, lower: { ctx in
            let n = ctx.op.inputs.count - 1
            let values = try (0..<n).map { try ctx.value($0) }
            if ctx.type(values[0]).rank == 0 { throw ctx.error("Can't concatenate scalars (use tf.stack instead)") }
            let axis = try ctx.axis(try ctx.ints(n)[0], rank: ctx.type(values[0]).rank)
            return [.value(try ctx.emit(.concat(axis: axis), values))]
        }).integerInputs([IntegerInput(index: -1, attr: "Tidx", form: .scalar)]).gradient(ArrayGradients.concatV2),

        OpDef("ExpandDims", arity: .exactly(2), attrs: ["Tdim": .type(.int32)], infer: { ctx in
            guard var dims = ctx.shape(0).dims, let a = ctx.ints(1)?.first else { return [(ctx.dtype(0), .unknown)] }
            guard a >= -dims.count - 1 && a <= dims.count else { throw ctx.error("dim \(a) is out of range for rank \(dims.count)") }
            dims.insert(1, at: a < 0 ? a + dims.count + 1 : a)
            return [(ctx.dtype(0), Shape(dims: dims))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            var s = ctx.type(x).shape
            let a = try ctx.ints(1)[0]
            s.insert(1, at: a < 0 ? a + s.count + 1 : a)
            return [.value(try ctx.reshape(x, s))]
        }).integerInputs([IntegerInput(index: 1, attr: "Tdim", form: .single)]).gradient(ArrayGradients.reshape),

        OpDef("Squeeze", arity: .exactly(1), infer: { ctx in
            guard let dims = ctx.shape(0).dims else { return [(ctx.dtype(0), .unknown)] }
            let axes = try ctx.attrs[Squeeze.squeezeDims].map { try ctx.normalizedAxis($0, rank: dims.count) }
            if axes.isEmpty {
                if dims.contains(where: { $0 == nil }) { return [(ctx.dtype(0), .unknown)] }
                return [(ctx.dtype(0), Shape(dims: dims.filter { $0 != 1 }))]
            }
            for a in axes where dims[a] != nil && dims[a] != 1 {
                throw ctx.error("Can not squeeze dim[\(a)], expected a dimension of 1, got \(dims[a]!)")
            }
            return [(ctx.dtype(0), Shape(dims: dims.enumerated().filter { !axes.contains($0.offset) }.map(\.element)))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape
            let axes = try ctx.attrs[Squeeze.squeezeDims].map { try ctx.axis($0, rank: s.count) }
            let kept = s.enumerated().filter { axes.isEmpty ? $0.element != 1 : !axes.contains($0.offset) }.map(\.element)
            return [.value(try ctx.reshape(x, kept))]
        }).declaring(Squeeze.squeezeDims).gradient(ArrayGradients.squeeze),

        OpDef("Transpose", arity: .exactly(2), attrs: ["Tperm": .type(.int32)], infer: { ctx in
            guard let perm = ctx.ints(1) else { return [(ctx.dtype(0), .unknown)] }
            guard let dims = ctx.shape(0).dims else { return [(ctx.dtype(0), Shape(dims: perm.map { _ in nil }))] }
            guard perm.sorted() == Array(0..<dims.count) else { throw ctx.error("perm \(perm) is not a permutation of 0..<\(dims.count)") }
            return [(ctx.dtype(0), Shape(dims: perm.map { dims[$0] }))]
        }, lower: { ctx in
            [.value(try ctx.emit(.transpose(perm: try ctx.ints(1)), [try ctx.value(0)]))]
        }).integerInputs([IntegerInput(index: 1, attr: "Tperm", form: .vector)]).gradient(ArrayGradients.transpose),

        pad("Pad", hasValue: false).integerInputs(IntegerInput.paddings).gradient(ArrayGradients.pad), pad("PadV2", hasValue: true).integerInputs(IntegerInput.paddings).gradient(ArrayGradients.padV2),
        pad("MirrorPad", hasValue: false, mirror: true).integerInputs(IntegerInput.paddings).declaring(MirrorPad.mode).gradient(ArrayGradients.mirrorPad),

        OpDef("Tile", arity: .exactly(2), attrs: ["Tmultiples": .type(.int32)], infer: { ctx in
            guard let m = ctx.ints(1) else { return [(ctx.dtype(0), .unknown)] }
            guard let dims = ctx.shape(0).dims else { return [(ctx.dtype(0), Shape(dims: m.map { _ in nil }))] }
            guard m.count == dims.count, m.allSatisfy({ $0 >= 0 }) else { throw ctx.error("multiples \(m) must be non-negative, one per dimension") }
            return [(ctx.dtype(0), Shape(dims: try zip(dims, m).map { d, k in
                try d.map { n in
                    guard let p = Sizes.product(n, k) else { throw ctx.error("Tiling dimension \(n) by \(k) overflows") }
                    return p
                }
            }))]
        }, lower: { ctx in
            // [d0, d1] tiled by [m0, m1] = reshape(broadcast(reshape(x, [1, d0, 1, d1]), [m0, d0, m1, d1])).
            let x = try ctx.value(0)
            let s = ctx.type(x).shape, m = try ctx.ints(1)
            guard m.count == s.count, m.allSatisfy({ $0 >= 0 }) else { throw ctx.error("multiples \(m) must be non-negative, one per dimension of \(s)") }
            for (n, k) in zip(s, m) where Sizes.product(n, k) == nil { throw ctx.error("Tiling dimension \(n) by \(k) overflows") }
            let spread = try ctx.reshape(x, s.flatMap { [1, $0] })
            let b = try ctx.broadcast(spread, to: zip(m, s).flatMap { [$0, $1] })
            return [.value(try ctx.reshape(b, zip(m, s).map { $0 * $1 }))]
        }).integerInputs([IntegerInput(index: 1, attr: "Tmultiples", form: .vector)]).gradient(ArrayGradients.tile),

        OpDef("Slice", arity: .exactly(3), attrs: ["Index": .type(.int32)], infer: { ctx in
            guard let begin = ctx.ints(1), let size = ctx.ints(2) else { return [(ctx.dtype(0), .unknown)] }
            let dims = ctx.shape(0).dims ?? begin.map { _ in nil }
            guard begin.count == dims.count, size.count == dims.count else { throw ctx.error("begin and size must have one entry per dimension") }
            let out = try (0..<dims.count).map { d -> Int? in
                if let n = dims[d], begin[d] < 0 || size[d] < -1 || (Sizes.sum(begin[d], max(size[d], 0)) ?? Int.max) > n || (size[d] == -1 && begin[d] > n) {
                    throw ctx.error("Expected begin \(begin[d]) and size \(size[d]) to fit dimension \(d) of size \(n)")
                }
                return size[d] == -1 ? dims[d].map { $0 - begin[d] } : size[d]
            }
            return [(ctx.dtype(0), Shape(dims: out))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape, begin = try ctx.ints(1), size = try ctx.ints(2)
            guard begin.count == s.count, size.count == s.count else { throw ctx.error("begin and size must have one entry per dimension of \(s)") }
            for d in s.indices where begin[d] < 0 || size[d] < -1 || begin[d] > s[d] || (Sizes.sum(begin[d], max(size[d], 0)) ?? Int.max) > s[d] {
                throw ctx.error("Expected begin \(begin[d]) and size \(size[d]) to fit dimension \(d) of size \(s[d])")
            }
            let shape = (0..<s.count).map { size[$0] == -1 ? s[$0] - begin[$0] : size[$0] }
            return [.value(try ctx.emit(.slice(start: begin, strides: s.map { _ in 1 }, shape: shape), [x]))]
        }).integerInputs([IntegerInput(index: 1, attr: "Index", form: .vector), IntegerInput(index: 2, attr: "Index", form: .vector)]).gradient(ArrayGradients.slice),

        OpDef("StridedSlice", arity: .exactly(4), infer: { ctx in
            guard let b = ctx.ints(1), let e = ctx.ints(2), let st = ctx.ints(3), let dims = ctx.shape(0).dims else {
                return [(ctx.dtype(0), .unknown)]
            }
            let spec = try StridedSliceSpec(dims: dims, begin: b, end: e, strides: st, attrs: ctx.attrs, error: ctx.error)
            return [(ctx.dtype(0), Shape(dims: spec.finalShape))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape
            let spec = try StridedSliceSpec(dims: s, begin: try ctx.ints(1), end: try ctx.ints(2), strides: try ctx.ints(3), attrs: ctx.attrs, error: ctx.error)
            let sizes = spec.sizes.map { $0! }
            var v = x
            if sizes.contains(0) || (spec.starts.map { $0! } != s.map { _ in 0 } || spec.strides != s.map { _ in 1 } || sizes != s) {
                v = try ctx.emit(.slice(start: spec.starts.map { $0! }, strides: spec.strides, shape: sizes), [x])
            }
            return [.value(try ctx.reshape(v, spec.finalShape.map { $0! }))]
        }).integerInputs((1...3).map { IntegerInput(index: $0, attr: "Index", form: .vector) }).declaring(StridedSlice.masks).gradient(ArrayGradients.stridedSlice),

        OpDef("GatherV2", arity: .exactly(3), attrs: ["Taxis": .type(.int32)], infer: { ctx in
            guard ctx.dtype(1) == .int32 || ctx.dtype(1) == .int64 else { throw ctx.error("indices must be int32 or int64, got \(ctx.dtype(1))") }
            guard let p = ctx.shape(0).dims, let i = ctx.shape(1).dims, let a = ctx.ints(2)?.first else { return [(ctx.dtype(0), .unknown)] }
            let axis = try ctx.normalizedAxis(a, rank: p.count)
            var bd = ctx.attrs[Gather.batchDims]
            if bd < 0 { bd += i.count }
            guard bd <= axis, bd <= i.count else { throw ctx.error("batch_dims \(bd) must be at most axis \(axis) and the indices' rank \(i.count)") }
            return [(ctx.dtype(0), Shape(dims: Array(p.prefix(axis)) + Array(i.dropFirst(bd)) + Array(p.dropFirst(axis + 1))))]
        }, lower: { ctx in
            let (p, i) = (try ctx.value(0), try ctx.value(1))
            let axis = try ctx.axis(try ctx.ints(2)[0], rank: ctx.type(p).rank)
            var bd = ctx.attrs[Gather.batchDims]
            if bd < 0 { bd += ctx.type(i).rank }
            let n = ctx.type(p).shape[axis]
            let checked = try ctx.check(i, .index(bounds: [n]), "indices{index} = {value} is not in [0, \(n))")
            return [.value(try ctx.emit(.gather(axis: axis, batchDims: bd), [p, checked]))]
        }).integerInputs([IntegerInput(index: 2, attr: "Taxis", form: .scalar)]).declaring(Gather.batchDims).gradient(ArrayGradients.gatherV2),

        OpDef("GatherNd", arity: .exactly(2), infer: { ctx in
            if let r = ctx.shape(1).rank, r < 1 { throw ctx.error("indices must be at least a vector: Shape must be at least rank 1 but is rank 0") }
            guard let p = ctx.shape(0).dims, let i = ctx.shape(1).dims, let k = i.last ?? nil else { return [(ctx.dtype(0), .unknown)] }
            guard k <= p.count else { throw ctx.error("index depth \(k) exceeds the params' rank \(p.count)") }
            return [(ctx.dtype(0), Shape(dims: Array(i.dropLast()) + Array(p.dropFirst(k))))]
        }, lower: { ctx in
            // The K index components become one linear index into params flattened over its first K dims.
            let (p, unchecked) = (try ctx.value(0), try ctx.value(1))
            let ps = ctx.type(p).shape, isShape = ctx.type(unchecked).shape
            let k = isShape.last!, outer = Array(isShape.dropLast())
            // Each component against its own dimension: a bad component can still give a linear
            // index in range. The error names the component's own position in the indices.
            let i = k == 0 ? unchecked : try ctx.check(unchecked, .index(bounds: Array(ps.prefix(k))),
                                                       "indices{index} = {value} does not index into param shape \(Shape(ps))")
            let itype = ctx.type(i).dtype
            var linear = try ctx.full(0, itype, outer)
            for c in 0..<k {
                let start = outer.map { _ in 0 } + [c]
                let comp = try ctx.emit(.slice(start: start, strides: isShape.map { _ in 1 }, shape: outer + [1]), [i])
                let stride = ps[(c + 1)..<k].reduce(1, *)
                linear = try ctx.binary(.add, linear, ctx.binary(.mul, ctx.reshape(comp, outer), scalar: Double(stride)))
            }
            let flat = try ctx.reshape(p, [ps.prefix(k).reduce(1, *)] + Array(ps.dropFirst(k)))
            return [.value(try ctx.emit(.gather(axis: 0, batchDims: 0), [flat, linear]))]
        }).gradient(ArrayGradients.gatherNd),

        OpDef("OneHot", arity: .exactly(4), attrs: ["TI": .type(.int64)], infer: { ctx in
            let d = try ctx.sameDType([2, 3])
            guard ctx.dtype(0) == .int32 || ctx.dtype(0) == .int64 || ctx.dtype(0) == .uint8 else { throw ctx.error("indices must be integers") }
            guard var dims = ctx.shape(0).dims else { return [(d, .unknown)] }
            let axis = ctx.attrs[OneHot.axis]
            guard axis >= -1 && axis <= dims.count else { throw ctx.error("axis \(axis) is out of range") }
            if let depth = ctx.ints(1)?.first, depth < 0 { throw ctx.error("depth must be non-negative, got: \(depth)") }
            dims.insert(ctx.ints(1)?.first, at: axis == -1 ? dims.count : axis)
            return [(d, Shape(dims: dims))]
        }, lower: { ctx in
            let idx = try ctx.value(0)
            let depth = try ctx.ints(1)[0]
            if depth < 0 { throw ctx.error("depth must be non-negative, got: \(depth)") }
            let (on, off) = (try ctx.value(2), try ctx.value(3))
            var s = ctx.type(idx).shape
            let a = ctx.attrs[OneHot.axis]
            let axis = a == -1 ? s.count : a
            let dims = (0..<s.count).map { $0 < axis ? $0 : $0 + 1 }
            s.insert(depth, at: axis)
            let wide = try ctx.cast(idx, .int64)
            let position = try ctx.emit(.iota(dtype: .int64, shape: s, axis: axis), [])
            let spread = try ctx.emit(.broadcast(shape: s, dims: dims), [wide])
            let hit = try ctx.emit(.compare(.eq), [position, spread])
            return [.value(try ctx.select(hit, on, off))]
        }).integerInputs([IntegerInput(index: 1, attr: "depth", form: .scalar, allowed: [.int32])]).declaring(OneHot.axis).notDifferentiable(),

        OpDef("Shape", arity: .exactly(1), infer: { ctx in
            [(try integerOutType(ctx), Shape(dims: [ctx.shape(0).rank]))]
        }, lower: { ctx in
            let s = (OpRegistry.def(ctx.op.inputs[0].op.type)?.isVariable ?? false) ? ctx.type(try ctx.variable(0)).shape : ctx.type(try ctx.value(0)).shape
            let outType = ctx.attrs[ShapeOps.outType]
            if outType == .int32, let k = s.firstIndex(where: { $0 > Int(Int32.max) }) {
                throw ctx.error("Shape output type is 32-bit but dim \(k) is \(s[k])")
            }
            let t = try Tensor(literal: s.map(Int64.init), dtype: outType)
            return [.value(ctx.builder.constant(t))]
        }).declaring(outType).notDifferentiable(),
        OpDef("Rank", arity: .exactly(1), infer: { _ in [(.int32, .scalar)] }, lower: { ctx in
            [.value(ctx.builder.constant(Tensor(Int32(ctx.type(try ctx.value(0)).rank))))]
        }).notDifferentiable(),
        OpDef("Size", arity: .exactly(1), infer: { ctx in
            [(try integerOutType(ctx), .scalar)]
        }, lower: { ctx in
            let n = ctx.type(try ctx.value(0)).elementCount
            if ctx.attrs[outType] == .int32 && n > Int(Int32.max) {
                throw ctx.error("Number of elements was larger than representable by 32-bit output type: \(n)")
            }
            return [.value(ctx.builder.constant(try Tensor(literal: Int64(n), dtype: ctx.attrs[outType])))]
        }).declaring(outType).notDifferentiable(),

        OpDef("Range", arity: .exactly(3), infer: { ctx in
            let d = try ctx.sameDType()
            guard d.isNumeric && d != .bool && d != .uint8 && d != .int16 else {
                throw ctx.error("Value for attr 'Tidx' of \(d.name) is not in the list of allowed values: float32, float64, int32, int64")
            }
            for i in 0..<3 where (ctx.shape(i).rank ?? 0) != 0 { throw ctx.error("start, limit and delta must be scalars: input \(i) has shape \(ctx.shape(i))") }
            guard let s = ctx.constantValue(0)?.doubles.first, let l = ctx.constantValue(1)?.doubles.first,
                  let dl = ctx.constantValue(2)?.doubles.first else { return [(d, Shape(dims: [nil]))] }
            return [(d, Shape([try rangeCount(s, l, dl, ctx.error)]))]
        }, lower: { ctx in
            let s = try ctx.constant(0).doubles[0], l = try ctx.constant(1).doubles[0], dl = try ctx.constant(2).doubles[0]
            let d = ctx.type(try ctx.value(0)).dtype
            let n = try rangeCount(s, l, dl, ctx.error)
            let i = try ctx.emit(.iota(dtype: d, shape: [n], axis: 0), [])
            return [.value(try ctx.binary(.add, ctx.binary(.mul, i, scalar: dl), scalar: s))]
        }).notDifferentiable(),

        OpDef("Fill", arity: .exactly(2), attrs: ["index_type": .type(.int32)], infer: { ctx in
            guard ctx.shape(1).rank ?? 0 == 0 else { throw ctx.error("value must be a scalar") }
            return [(ctx.dtype(1), ctx.shapeValue(0))]
        }, lower: { ctx in [.value(try ctx.broadcast(try ctx.value(1), to: try ctx.ints(0)))] }).integerInputs([IntegerInput(index: 0, attr: "index_type", form: .vector)]).gradient(ArrayGradients.fill),

        like("ZerosLike", 0).notDifferentiable(), like("OnesLike", 1).notDifferentiable(),
    ]

    /// Shape and Size count in int32 or int64 only.
    static func integerOutType(_ ctx: InferenceContext) throws -> DType {
        let d = ctx.attrs[outType]
        guard d == .int32 || d == .int64 else {
            throw ctx.error("Value for attr 'out_type' of \(d.name) is not in the list of allowed values: int32, int64")
        }
        return d
    }

    static func like(_ name: String, _ v: Double) -> OpDef {
        OpDef(name, arity: .exactly(1), infer: { ctx in [(ctx.dtype(0), ctx.shape(0))] }, lower: { ctx in
            let t = ctx.type(try ctx.value(0))
            return [.value(try ctx.full(v, t.dtype, t.shape))]
        })
    }

    static func rangeCount(_ s: Double, _ l: Double, _ d: Double, _ error: (String) -> KilnError) throws -> Int {
        guard d != 0 else { throw error("Requires delta != 0") }
        guard s.isFinite, l.isFinite, d.isFinite else { throw error("Requires start, limit and delta to be finite: \(s)/\(l)/\(d)") }
        guard (d > 0 && l >= s) || (d < 0 && l <= s) else {
            throw error("Requires start <= limit when delta > 0 (or start >= limit when delta < 0): \(s)/\(l)/\(d)")
        }
        let n = ((l - s) / d).rounded(.up)
        // 2^62 elements is beyond any memory; it also keeps the conversion below exact and safe.
        guard n.isFinite, n < 0x1p62 else { throw error("Requires the number of elements to be finite and addressable: (\(l) - \(s)) / \(d) elements") }
        return Int(n)
    }

    /// `n + low + high`, or an error when that overflows.
    static func paddedSize(_ n: Int, _ low: Int, _ high: Int, _ error: (String) -> KilnError) throws -> Int {
        guard let a = Sizes.sum(n, low), let b = Sizes.sum(a, high) else { throw error("Padding dimension \(n) by \(low) and \(high) overflows") }
        return b
    }

    /// Pad (zeros), PadV2 (a given value) and MirrorPad (REFLECT or SYMMETRIC).
    static func pad(_ name: String, hasValue: Bool, mirror: Bool = false) -> OpDef {
        OpDef(name, arity: .exactly(hasValue ? 3 : 2), attrs: ["Tpaddings": .type(.int32)], infer: { ctx in
            guard let p = ctx.ints(1) else { return [(ctx.dtype(0), ctx.shape(0).rank.map { Shape(dims: Array(repeating: nil, count: $0)) } ?? .unknown)] }
            let rank = p.count / 2
            let dims = ctx.shape(0).dims ?? Array(repeating: nil, count: rank)
            guard dims.count == rank, p.allSatisfy({ $0 >= 0 }) else {
                throw ctx.error("paddings must be a non-negative [\(dims.count), 2] matrix, got \(p)")
            }
            let mode = mirror ? ctx.attrs[MirrorPad.mode] : "CONSTANT"
            guard ["CONSTANT", "REFLECT", "SYMMETRIC"].contains(mode) else { throw ctx.error("unknown padding mode '\(mode)'") }
            for d in 0..<rank {
                guard let n = dims[d], mode != "CONSTANT" else { continue }
                let limit = mode == "REFLECT" ? n - 1 : n
                if p[2 * d] > limit || p[2 * d + 1] > limit {
                    throw ctx.error("paddings must be \(mode == "REFLECT" ? "less than" : "no greater than") the dimension size: \(p[2 * d]), \(p[2 * d + 1]) not \(mode == "REFLECT" ? "less than" : "greater than") \(n)")
                }
            }
            return [(ctx.dtype(0), Shape(dims: try (0..<rank).map { d in try dims[d].map { try paddedSize($0, p[2 * d], p[2 * d + 1], ctx.error) } }))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let p = try ctx.ints(1)
            let rank = p.count / 2
            let low = (0..<rank).map { p[2 * $0] }, high = (0..<rank).map { p[2 * $0 + 1] }
            let s = ctx.type(x).shape
            guard p.count == 2 * s.count, p.allSatisfy({ $0 >= 0 }) else { throw ctx.error("paddings must be a non-negative [\(s.count), 2] matrix, got \(p)") }
            for d in s.indices { _ = try paddedSize(s[d], low[d], high[d], ctx.error) }
            let modeName = mirror ? ctx.attrs[MirrorPad.mode] : "CONSTANT"
            let mode: PadMode = modeName == "REFLECT" ? .reflect : modeName == "SYMMETRIC" ? .symmetric : .constant
            let border = hasValue ? try ctx.value(2) : ctx.scalar(0, ctx.type(x).dtype)
            return [.value(try ctx.emit(.pad(low: low, high: high, mode: mode), [x, border]))]
        })
    }
}

/// TensorFlow's strided-slice canonicalisation: masks, ellipsis, new and shrunk axes resolved
/// into one start/stride/size per input dimension plus the final shape.
struct StridedSliceSpec {
    var starts: [Int?] = []
    var strides: [Int] = []
    var sizes: [Int?] = []
    var finalShape: [Int?] = []

    init(dims: [Int?], begin: [Int], end: [Int], strides st: [Int], attrs: [String: AttrValue], error: (String) -> KilnError) throws {
        let bm = attrs[ShapeOps.StridedSlice.beginMask], em = attrs[ShapeOps.StridedSlice.endMask]
        var ellipsis = attrs[ShapeOps.StridedSlice.ellipsisMask]
        let newAxis = attrs[ShapeOps.StridedSlice.newAxisMask], shrink = attrs[ShapeOps.StridedSlice.shrinkAxisMask]
        var n = begin.count
        guard end.count == n, st.count == n else { throw error("begin, end and strides must have the same length") }
        if ellipsis & (ellipsis - 1) != 0 { throw error("Multiple ellipses in slice spec not allowed") }
        if ellipsis == 0 { ellipsis = 1 << n; n += 1 }
        func bit(_ m: Int, _ i: Int) -> Bool { m & (1 << i) != 0 }
        // Dense spec over the input's dimensions; `gather` says where each output axis comes from.
        enum Axis { case input(Int, shrink: Bool), newAxis }
        var dense: [(b: Int, e: Int, s: Int, bMasked: Bool, eMasked: Bool, shrink: Bool)] = []
        var order: [Axis] = []
        for i in 0..<n {
            if bit(ellipsis, i) {
                let after = ((i + 1)..<n).filter { bit(newAxis, $0) }.count
                let next = min(dims.count - (n - i) + 1 + after, dims.count)
                while dense.count < next {
                    order.append(.input(dense.count, shrink: false))
                    dense.append((0, 0, 1, true, true, false))
                }
            } else if bit(newAxis, i) {
                order.append(.newAxis)
            } else {
                guard dense.count < dims.count else { throw error("Index out of range using input dim \(dense.count); input has only \(dims.count) dims") }
                guard st[i] != 0 else { throw error("strides[\(i)] must be non-zero") }
                order.append(.input(dense.count, shrink: bit(shrink, i)))
                dense.append((begin[i], end[i], st[i], bit(bm, i), bit(em, i), bit(shrink, i)))
            }
        }
        guard dense.count == dims.count else { throw error("slice spec covers \(dense.count) of \(dims.count) dimensions") }
        for (d, spec) in dense.enumerated() {
            let s = spec.s
            strides.append(spec.shrink ? 1 : s)
            guard let size = dims[d] else {
                starts.append(nil)
                sizes.append(spec.shrink ? 1 : nil)
                continue
            }
            if spec.shrink {
                let b = spec.b < 0 ? spec.b + size : spec.b
                guard b >= 0 && b < size else { throw error("slice index \(spec.b) of dimension \(d) out of bounds") }
                starts.append(b)
                sizes.append(1)
                continue
            }
            // Negative indices count from the end; then clamp to what the stride direction can reach.
            func canonical(_ x: Int) -> Int {
                let v = x < 0 ? x + size : x
                return s > 0 ? Swift.min(Swift.max(v, 0), size) : Swift.min(Swift.max(v, -1), size - 1)
            }
            let b = spec.bMasked ? (s > 0 ? 0 : size - 1) : canonical(spec.b)
            let e = spec.eMasked ? (s > 0 ? size : -1) : canonical(spec.e)
            let count = s > 0 ? (e - b + s - 1) / s : (b - e + (-s) - 1) / (-s)
            starts.append(Swift.max(count, 0) == 0 ? 0 : b)
            sizes.append(Swift.max(count, 0))
        }
        for a in order {
            switch a {
            case .newAxis: finalShape.append(1)
            case .input(let d, let shrunk): if !shrunk { finalShape.append(sizes[d]) }
            }
        }
    }
}
