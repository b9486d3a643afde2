import KilnIR

/// The helper ops TensorFlow's gradient functions (math_grad, array_grad, nn_grad) put into the
/// graphs it writes for training: shape arithmetic (ShapeN, ConcatOffset, BroadcastArgs,
/// InvertPermutation, ListDiff, DynamicStitch), scans (Cumsum, Cumprod), scatters (ScatterNd,
/// TensorScatterUpdate, the unsorted segment reductions), MatrixBandPart, ReverseV2, Unpack,
/// DivNoNan, ReciprocalGrad/InvGrad and FusedBatchNormGrad(V2, V3). Shape-valued ones fold
/// while lowering, as Shape and BroadcastGradientArgs do: their inputs are known once feed
/// shapes are.
public enum GradientHelperOps {
    public enum Scan {
        public static let exclusive = Attr<Bool>("exclusive", default: false)
        public static let reverse = Attr<Bool>("reverse", default: false)
    }
    /// ListDiff's index dtype.
    public static let outIdx = Attr<DType>("out_idx", default: .int32)

    static let defs: [OpDef] = [
        OpDef("ShapeN", arity: .atLeast(1), infer: { ctx in
            let d = try ShapeOps.integerOutType(ctx)
            return ctx.inputs.indices.map { (d, Shape(dims: [ctx.shape($0).rank])) }
        }, lower: { ctx in
            let d = ctx.attrs[ShapeOps.outType]
            return try ctx.op.inputs.indices.map { i in
                let isVariable = OpRegistry.def(ctx.op.inputs[i].op.type)?.isVariable ?? false
                let s = ctx.type(isVariable ? try ctx.variable(i) : try ctx.value(i)).shape
                if d == .int32, let k = s.firstIndex(where: { $0 > Int(Int32.max) }) {
                    throw ctx.error("Shape output type is 32-bit but dim \(k) of input \(i) is \(s[k])")
                }
                return .value(ctx.builder.constant(try Tensor(literal: s.map(Int64.init), dtype: d)))
            }
        }).declaring(ShapeOps.outType).notDifferentiable(),

        // (concat_dim, shape_0, ..., shape_n-1) -> where each input starts in the concatenation.
        OpDef("ConcatOffset", arity: .atLeast(3), infer: { ctx in
            try integerInputs(ctx, Array(ctx.inputs.indices))
            let n = ctx.inputs.count - 1
            let d = try ctx.sameDType(Array(1...n))
            let shapes = (1...n).compactMap { ctx.ints($0) }
            if let axis = ctx.ints(0)?.first, shapes.count == n { _ = try concatOffsets(axis, shapes, ctx.error) }
            return (1...n).map { (d, Shape(dims: [ctx.shape($0).dims?.first ?? nil])) }
        }, lower: { ctx in
            let n = ctx.op.inputs.count - 1
            let shapes = try (1...n).map { try ctx.ints($0) }
            let offsets = try concatOffsets(try ctx.ints(0).first ?? 0, shapes, ctx.error)
            let d = ctx.type(try ctx.value(1)).dtype
            return try offsets.map { .value(ctx.builder.constant(try Tensor(literal: $0.map(Int64.init), dtype: d))) }
        }).notDifferentiable(),

        OpDef("BroadcastArgs", arity: .exactly(2), infer: { ctx in
            try integerInputs(ctx, [0, 1])
            let d = try ctx.sameDType()
            if let a = ctx.ints(0), let b = ctx.ints(1), ShapeFunctions.broadcast(a, b) == nil {
                throw ctx.error("Incompatible shapes: \(a) vs. \(b)")
            }
            let n0 = ctx.shape(0).dims?.first ?? nil, n1 = ctx.shape(1).dims?.first ?? nil
            return [(d, Shape(dims: [n0.flatMap { a in n1.map { max(a, $0) } }]))]
        }, lower: { ctx in
            let a = try ctx.ints(0), b = try ctx.ints(1)
            guard let out = ShapeFunctions.broadcast(a, b) else { throw ctx.error("Incompatible shapes: \(a) vs. \(b)") }
            return [.value(ctx.builder.constant(try Tensor(literal: out.map(Int64.init), dtype: ctx.type(try ctx.value(0)).dtype)))]
        }).notDifferentiable(),

        OpDef("InvertPermutation", arity: .exactly(1), infer: { ctx in
            try integerInputs(ctx, [0])
            if let r = ctx.shape(0).rank, r != 1 { throw ctx.error("invert_permutation expects a 1D vector") }
            if let p = ctx.ints(0) { _ = try inversePermutation(p, ctx.error) }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let d = ctx.type(x).dtype, n = ctx.type(x).elementCount
            guard ctx.type(x).rank == 1 else { throw ctx.error("invert_permutation expects a 1D vector") }
            if let t = try ctx.fold(x) {
                return [.value(ctx.builder.constant(try Tensor(literal: try inversePermutation(ShapeFunctions.ints(t), ctx.error).map(Int64.init), dtype: d)))]
            }
            // A fed permutation: out[j] = the i with x[i] == j, as a one-hot sum (ranks are small).
            let checked = try ctx.check(x, .index(bounds: [n]), "x{index} = {value} is not between 0 and \(n)")
            let hit = try ctx.emit(.compare(.eq), [ctx.emit(.broadcast(shape: [n, n], dims: [0]), [checked]),
                                                   ctx.emit(.iota(dtype: d, shape: [n, n], axis: 1), [])])
            let position = try ctx.emit(.iota(dtype: d, shape: [n, n], axis: 0), [])
            return [.value(try ctx.emit(.reduce(.sum, axes: [0]), [ctx.select(hit, position, ctx.full(0, d, [n, n]))]))]
        }).notDifferentiable(),

        // setdiff1d: the elements of x not in y, in x's order, and their positions in x. The
        // output's length depends on the values, so both inputs must fold (they are shapes and
        // axes in gradient graphs).
        OpDef("ListDiff", arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            guard d == .int32 || d == .int64 || d.isFloatingPoint else { throw ctx.error("ListDiff of \(d.name) is not supported") }
            let idx = ctx.attrs[outIdx]
            guard idx == .int32 || idx == .int64 else {
                throw ctx.error("Value for attr 'out_idx' of \(idx.name) is not in the list of allowed values: int32, int64")
            }
            for i in 0..<2 { if let r = ctx.shape(i).rank, r != 1 { throw ctx.error("\(i == 0 ? "x" : "y") should be a 1D vector") } }
            return [(d, Shape(dims: [nil])), (idx, Shape(dims: [nil]))]
        }, lower: { ctx in
            let x = try ctx.constant(0), y = try ctx.constant(1)
            guard x.rank == 1, y.rank == 1 else { throw ctx.error("x and y should be 1D vectors") }
            let drop = Set((0..<y.elementCount).map { y.element(at: $0) })
            let kept = (0..<x.elementCount).filter { !drop.contains(x.element(at: $0)) }
            var out = try Tensor(zeros: x.dtype, shape: [kept.count])
            var idx = try Tensor(zeros: ctx.attrs[outIdx], shape: [kept.count])
            for (k, i) in kept.enumerated() {
                try out.setElement(x.element(at: i), at: k)
                try idx.setElement(.i(Int64(i)), at: k)
            }
            return [.value(ctx.builder.constant(out)), .value(ctx.builder.constant(idx))]
        }).declaring(outIdx).notDifferentiable(),

        scan("Cumsum", .add, identity: 0).gradient(HelperGradients.cumsum),
        scan("Cumprod", .mul, identity: 1).gradient(HelperGradients.cumprod),

        // merged[indices[m][i]] = data[m][i]; a later (m, i) wins. The output's length is the
        // largest index plus one, so the indices must fold; the data may be anything.
        OpDef("DynamicStitch", arity: .atLeast(2), infer: { ctx in
            let n = ctx.inputs.count / 2
            guard ctx.inputs.count == 2 * n else { throw ctx.error("DynamicStitch takes as many data as indices tensors") }
            for i in 0..<n where ctx.dtype(i) != .int32 { throw ctx.error("indices[\(i)] must be int32, got \(ctx.dtype(i).name)") }
            let d = try ctx.sameDType(Array(n..<(2 * n)))
            var rest: [Int?]? = nil
            for m in 0..<n {
                guard let idx = ctx.shape(m).dims, let data = ctx.shape(n + m).dims else { continue }
                guard data.count >= idx.count, zip(idx, data).allSatisfy({ $0 == nil || $1 == nil || $0 == $1 }) else {
                    throw ctx.error("data[\(m)].shape = \(ctx.shape(n + m)) does not start with indices[\(m)].shape = \(ctx.shape(m))")
                }
                let r = Array(data.dropFirst(idx.count))
                if let rest, rest.count != r.count || zip(rest, r).contains(where: { $0 != nil && $1 != nil && $0 != $1 }) {
                    throw ctx.error("Need data[0].shape[1:] = data[\(m)].shape[\(idx.count):], got \(rest) and \(r)")
                }
                rest = rest ?? r
            }
            let all = (0..<n).compactMap { ctx.ints($0) }
            if all.count == n, let bad = all.joined().first(where: { $0 < 0 }) { throw ctx.error("indices contain \(bad), which is negative") }
            let length: Int? = all.count == n ? (all.joined().max() ?? -1) + 1 : nil
            return [(d, rest.map { Shape(dims: [length] + $0) } ?? .unknown)]
        }, lower: { ctx in
            let n = ctx.op.inputs.count / 2
            let indices = try (0..<n).map { try ctx.ints($0) }
            let data = try (0..<n).map { try ctx.value(n + $0) }
            let rest = Array(ctx.type(data[0]).shape.dropFirst(ctx.type(try ctx.value(0)).rank))
            let width = rest.reduce(1, *)
            // Indices are int32, but a dense table of 2^31 rows is no graph's intent: refuse it.
            let length = (indices.joined().max() ?? -1) + 1
            guard length <= 1 << 28 else { throw ctx.error("the largest index \(length - 1) makes an output of more than 2^28 rows") }
            var rows: [Int] = [], source = [Int](repeating: -1, count: length), offset = 0
            for m in 0..<n {
                let shape = ctx.type(data[m]).shape, idxShape = ctx.type(try ctx.value(m)).shape
                guard shape.count == idxShape.count + rest.count, Array(shape.prefix(idxShape.count)) == idxShape,
                      Array(shape.dropFirst(idxShape.count)) == rest else {
                    throw ctx.error("data[\(m)].shape = \(shape) does not start with indices[\(m)].shape = \(idxShape) followed by \(rest)")
                }
                for (i, k) in indices[m].enumerated() {
                    guard k >= 0 else { throw ctx.error("indices[\(m)][\(i)] = \(k) is negative") }
                    source[k] = offset + i
                }
                offset += indices[m].count
                rows.append(try ctx.reshape(data[m], [indices[m].count, width]))
            }
            // Rows no index names are zeros: one zero row after the data.
            let d = ctx.type(data[0]).dtype
            rows.append(try ctx.full(0, d, [1, width]))
            let table = try ctx.emit(.concat(axis: 0), rows)
            let pick = ctx.builder.constant(try Tensor(literal: source.map { Int64($0 < 0 ? offset : $0) }, dtype: .int64))
            return [.value(try ctx.reshape(ctx.emit(.gather(axis: 0, batchDims: 0), [table, pick]), [source.count] + rest))]
        }).gradient(HelperGradients.dynamicStitch),

        segmentReduction("UnsortedSegmentMax", .max).gradient(HelperGradients.unsortedSegmentMax),
        segmentReduction("UnsortedSegmentMin", .min).gradient(HelperGradients.unsortedSegmentMax),
        segmentReduction("UnsortedSegmentProd", .prod).gradient(HelperGradients.unsortedSegmentProd),

        // zeros(shape) with updates summed in at indices (repeats accumulate).
        OpDef("ScatterNd", arity: .exactly(3), infer: { ctx in
            try integerInputs(ctx, [0, 2])
            let shape = ctx.shapeValue(2)
            try checkScatter(ctx, indices: 0, updates: 1, shape: shape)
            return [(ctx.dtype(1), shape)]
        }, lower: { ctx in
            let shape = try ctx.ints(2)
            guard shape.allSatisfy({ $0 >= 0 }) else { throw ctx.error("Dimensions [\(shape.map(String.init).joined(separator: ","))] must be non-negative") }
            let plan = try scatterPlan(&ctx, indices: try ctx.value(0), updates: try ctx.value(1), shape: shape)
            let d = ctx.type(plan.updates).dtype
            let sum = try ctx.emit(.dot(transposeA: true, transposeB: false), [ctx.cast(plan.hit, d), plan.updates])
            return [.value(try ctx.reshape(sum, shape))]
        }).gradient(HelperGradients.scatterNd),

        // tensor with the rows indices name replaced by updates (a later update wins).
        OpDef("TensorScatterUpdate", arity: .exactly(3), infer: { ctx in
            try integerInputs(ctx, [1])
            let d = try ctx.sameDType([0, 2])
            try checkScatter(ctx, indices: 1, updates: 2, shape: ctx.shape(0))
            return [(d, ctx.shape(0))]
        }, lower: { ctx in
            let tensor = try ctx.value(0)
            let shape = ctx.type(tensor).shape
            let plan = try scatterPlan(&ctx, indices: try ctx.value(1), updates: try ctx.value(2), shape: shape)
            let m = ctx.type(plan.hit).shape[0], p = ctx.type(plan.hit).shape[1], width = ctx.type(plan.updates).shape[1]
            // For each target row: 1 + the last update naming it, 0 when none does.
            let order = try ctx.emit(.iota(dtype: .int64, shape: [m, p], axis: 0), [])
            let last = try ctx.emit(.reduce(.max, axes: [0]), [ctx.select(plan.hit, ctx.binary(.add, order, scalar: 1), ctx.full(0, .int64, [m, p]))])
            let d = ctx.type(tensor).dtype
            let table = try ctx.emit(.concat(axis: 0), [ctx.full(0, d, [1, width]), plan.updates])
            let picked = try ctx.emit(.gather(axis: 0, batchDims: 0), [table, last])
            let covered = try ctx.emit(.broadcast(shape: [p, width], dims: [0]), [ctx.compare(.gt, last, ctx.scalar(0, .int64))])
            let flat = try ctx.reshape(tensor, [p, width])
            return [.value(try ctx.reshape(ctx.emit(.select, [covered, picked, flat]), shape))]
        }).gradient(HelperGradients.tensorScatterUpdate),

        // Keeps the band of each innermost matrix: num_lower diagonals below, num_upper above
        // (negative: all of them).
        OpDef("MatrixBandPart", arity: .exactly(3), attrs: ["Tindex": .type(.int64)], infer: { ctx in
            try integerInputs(ctx, [1, 2])
            for i in 1...2 { if let r = ctx.shape(i).rank, r != 0 { throw ctx.error("\(i == 1 ? "num_lower" : "num_upper") must be scalar, got shape \(ctx.shape(i))") } }
            guard let dims = ctx.shape(0).dims else { return [(ctx.dtype(0), .unknown)] }
            guard dims.count >= 2 else { throw ctx.error("input must be at least 2-dim, received shape: \(ctx.shape(0))") }
            for (i, n) in [(1, dims[dims.count - 2]), (2, dims[dims.count - 1])] {
                if let k = ctx.ints(i)?.first, let n, k > n {
                    throw ctx.error("\(i == 1 ? "num_lower" : "num_upper") must be negative or less or equal to number of \(i == 1 ? "rows" : "columns") (\(n)) got: \(k)")
                }
            }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape
            guard s.count >= 2 else { throw ctx.error("input must be at least 2-dim, received shape: \(s)") }
            let r = s.count
            let row = try ctx.emit(.iota(dtype: .int64, shape: s, axis: r - 2), []), col = try ctx.emit(.iota(dtype: .int64, shape: s, axis: r - 1), [])
            // Fed bounds are values like any other: (k < 0) | (distance <= k).
            func within(_ input: Int, _ distance: Int) throws -> Int {
                let k = try ctx.cast(ctx.value(input), .int64)
                let all = try ctx.compare(.lt, k, ctx.scalar(0, .int64))
                return try ctx.binary(.or, try ctx.broadcast(all, to: s), ctx.compare(.le, distance, k))
            }
            let keep = try ctx.binary(.and, within(1, ctx.binary(.sub, row, col)), within(2, ctx.binary(.sub, col, row)))
            return [.value(try ctx.select(keep, x, ctx.full(0, ctx.type(x).dtype, s)))]
        }).gradient(HelperGradients.matrixBandPart),

        OpDef("ReverseV2", arity: .exactly(2), attrs: ["Tidx": .type(.int32)], infer: { ctx in
            try integerInputs(ctx, [1])
            if let r = ctx.shape(1).rank, r != 1 { throw ctx.error("'axis' must be 1-dimensional") }
            if let axes = ctx.ints(1), let rank = ctx.shape(0).rank { _ = try reversedAxes(axes, rank: rank, ctx.error) }
            return [(ctx.dtype(0), ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape
            let axes = try reversedAxes(try ctx.ints(1), rank: s.count, ctx.error)
            return [.value(try reverse(&ctx, x, axes: axes))]
        }).gradient(HelperGradients.reverseV2),

        OpDef("Unpack", arity: .exactly(1), infer: { ctx in
            guard let dims = ctx.shape(0).dims else {
                guard let n = ctx.attrs["num"]?.int else { throw ctx.error("Unpack needs 'num' or a known input shape") }
                return Array(repeating: (ctx.dtype(0), .unknown), count: n)
            }
            let axis = try ctx.normalizedAxis(ctx.attrs[GradientOps.packAxis], rank: dims.count)
            guard let n = dims[axis] ?? ctx.attrs["num"]?.int else { throw ctx.error("Cannot infer num from shape \(ctx.shape(0))") }
            if let num = ctx.attrs["num"]?.int, let k = dims[axis], num != k { throw ctx.error("Dimension must be \(num) but is \(k)") }
            var rest = dims
            rest.remove(at: axis)
            return Array(repeating: (ctx.dtype(0), Shape(dims: rest)), count: n)
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape
            let axis = try ctx.axis(ctx.attrs[GradientOps.packAxis], rank: s.count)
            var rest = s
            rest.remove(at: axis)
            return try (0..<s[axis]).map { k in
                var start = s.map { _ in 0 }, shape = s
                start[axis] = k
                shape[axis] = 1
                return .value(try ctx.reshape(ctx.emit(.slice(start: start, strides: s.map { _ in 1 }, shape: shape), [x]), rest))
            }
        }).declaring(GradientOps.packAxis).gradient(HelperGradients.unpack),

        // x / y, and 0 where y is 0 (even for x = NaN or infinity), as TensorFlow's kernel.
        OpDef("DivNoNan", arity: .exactly(2), infer: { ctx in
            let d = try ctx.sameDType()
            guard d.isFloatingPoint else { throw ctx.error("Value for attr 'T' of \(d.name) is not in the list of allowed values: float32, float64") }
            return [(d, try ShapeFunctions.broadcast(ctx.shape(0), ctx.shape(1), ctx))]
        }, lower: { ctx in
            let (x, y) = (try ctx.value(0), try ctx.value(1))
            let d = ctx.type(x).dtype
            let zero = try ctx.compare(.eq, y, ctx.scalar(0, d))
            let safe = try ctx.select(zero, ctx.broadcast(ctx.scalar(1, d), to: ctx.type(y).shape), y)
            let q = try ctx.binary(.div, x, safe)
            return [.value(try ctx.select(zero, ctx.full(0, d, ctx.type(q).shape), q))]
        }).gradient(HelperGradients.divNoNan),

        fusedBatchNormGrad("FusedBatchNormGradV3", arity: 6).gradientNotImplemented(),
        fusedBatchNormGrad("FusedBatchNormGrad", arity: 5).gradientNotImplemented(),
        fusedBatchNormGrad("FusedBatchNormGradV2", arity: 5).gradientNotImplemented(),

    ] + ["ReciprocalGrad", "InvGrad"].map { name in
        // (y, dy) -> -dy * y * y: Reciprocal's (and its old name Inv's) gradient in TensorFlow's graphs.
        GradientOps.elementwiseGrad(name) { ctx, y, dy in try ctx.binary(.mul, ctx.binary(.mul, dy, scalar: -1), ctx.binary(.mul, y, y)) }
            .gradientNotImplemented()
    }

    /// FusedBatchNorm's gradient op (NHWC): (dy, x, scale, reserve_space_1, reserve_space_2[,
    /// reserve_space_3]) -> (dx, dscale, doffset, two empty reserve outputs). In training mode
    /// the batch statistics are computed again from x (TensorFlow passes them in as the forward
    /// op's reserve spaces: the same numbers), so the result does not depend on what a
    /// forward op reported there; in inference mode reserve_space_1/2 are the population mean
    /// and variance the forward op used.
    static func fusedBatchNormGrad(_ name: String, arity: Int) -> OpDef {
        OpDef(name, arity: .exactly(arity), infer: { ctx in
            let d = try ctx.sameDType([0, 1])
            guard d.isFloatingPoint else { throw ctx.error("\(name) needs floating-point inputs") }
            try NNOps.checkNHWC(ctx.attrs, ctx.error)
            for i in 0..<2 { if let r = ctx.shape(i).rank, r != 4 { throw ctx.error("\(i == 0 ? "y_backprop" : "x") must be 4-dimensional") } }
            for i in 2..<5 { if let r = ctx.shape(i).rank, r != 1 { throw ctx.error("input \(i) must be 1-dimensional") } }
            guard let shape = ctx.shape(0).merged(with: ctx.shape(1)) else { throw ctx.error("y_backprop and x must have the same shape") }
            let c = Shape(dims: [shape.dims?[3] ?? ctx.shape(2).dims?.first ?? nil])
            if let k = c.dims?[0], let n = ctx.shape(2).dims?[0], k != n { throw ctx.error("scale must have \(k) elements, got \(n)") }
            return [(d, shape), (ctx.dtype(2), c), (ctx.dtype(2), c), (ctx.dtype(2), Shape([0])), (ctx.dtype(2), Shape([0]))]
        }, lower: { ctx in
            let scale = try ctx.value(2)
            // Half y_backprop and x (T) with float32 scale (U): computed in U, dx rounded to T.
            let d = ctx.type(try ctx.value(1)).dtype, u = ctx.type(scale).dtype
            let dy = d == u ? try ctx.value(0) : try ctx.cast(ctx.value(0), u), x = d == u ? try ctx.value(1) : try ctx.cast(ctx.value(1), u)
            let s = ctx.type(x).shape
            guard s.count == 4, ctx.type(dy).shape == s, ctx.type(scale).shape == [s[3]] else {
                throw ctx.error("y_backprop \(ctx.type(dy).shape) and x \(s) must be one 4-D shape, scale [\(s.count == 4 ? s[3] : 0)]")
            }
            let eps = ctx.attrs[NNOps.FusedBatchNorm.epsilon]
            let axes = [0, 1, 2]
            let sumDy = try ctx.reduce(.sum, dy, axes: axes, keepDims: false)
            let empty = try ctx.full(0, ctx.type(scale).dtype, [0])
            if ctx.attrs[NNOps.FusedBatchNorm.isTraining] {
                let m = Double(s[0] * s[1] * s[2])
                let mean = try ctx.mean(x, axes: axes, keepDims: false)
                let centered = try ctx.binary(.sub, x, mean)
                let variance = try ctx.mean(ctx.binary(.mul, centered, centered), axes: axes, keepDims: false)
                let inv = try ctx.unary(.rsqrt, ctx.binary(.add, variance, scalar: eps))
                let xhat = try ctx.binary(.mul, centered, inv)
                let sumDyX = try ctx.reduce(.sum, ctx.binary(.mul, dy, xhat), axes: axes, keepDims: false)
                // dx = scale·σ⁻¹/m · (m·dy - Σdy - x̂·Σ(dy·x̂)).
                let inner = try ctx.binary(.sub, ctx.binary(.sub, ctx.binary(.mul, dy, scalar: m), sumDy), ctx.binary(.mul, xhat, sumDyX))
                let dx = try ctx.binary(.mul, inner, ctx.binary(.mul, ctx.binary(.mul, scale, inv), scalar: 1 / Swift.max(m, 1)))
                return [.value(try ctx.cast(dx, d)), .value(sumDyX), .value(sumDy), .value(empty), .value(empty)]
            }
            let inv = try ctx.unary(.rsqrt, ctx.binary(.add, try ctx.value(4), scalar: eps))
            let xhat = try ctx.binary(.mul, ctx.binary(.sub, x, try ctx.value(3)), inv)
            let dx = try ctx.binary(.mul, dy, ctx.binary(.mul, scale, inv))
            return [.value(try ctx.cast(dx, d)), .value(try ctx.reduce(.sum, ctx.binary(.mul, dy, xhat), axes: axes, keepDims: false)), .value(sumDy), .value(empty), .value(empty)]
        }).declaring(NNOps.dataFormat, NNOps.FusedBatchNorm.epsilon, NNOps.FusedBatchNorm.isTraining)
    }

    /// Inputs TensorFlow types as int32/int64 (shapes, axes, indices): anything else is refused
    /// when the node is made.
    static func integerInputs(_ ctx: InferenceContext, _ inputs: [Int]) throws {
        for i in inputs where ctx.dtype(i) != .int32 && ctx.dtype(i) != .int64 {
            throw ctx.error("input \(i) ('\(ctx.inputs[i].name)') must be int32 or int64, got \(ctx.dtype(i).name)")
        }
    }

    /// ConcatOffset's offsets, checking TensorFlow's conditions.
    static func concatOffsets(_ axis: Int, _ shapes: [[Int]], _ error: (String) -> KilnError) throws -> [[Int]] {
        let rank = shapes[0].count
        guard axis >= -rank && axis < rank else { throw error("Concat dim is out of range: \(axis) vs. \(rank)") }
        let a = axis < 0 ? axis + rank : axis
        var offset = 0
        return try shapes.enumerated().map { i, s in
            guard s.count == rank else { throw error("input \(i) should contain \(rank) elements, but got \(s.count)") }
            for j in 0..<rank where j != a && s[j] != shapes[0][j] {
                throw error("All dimensions except \(a) must match. Input \(i) has shape [\(s.map(String.init).joined(separator: " "))] and doesn't match input 0 with shape [\(shapes[0].map(String.init).joined(separator: " "))].")
            }
            var out = [Int](repeating: 0, count: rank)
            out[a] = offset
            offset += s[a]
            return out
        }
    }

    static func inversePermutation(_ p: [Int], _ error: (String) -> KilnError) throws -> [Int] {
        var inverse = [Int](repeating: -1, count: p.count)
        for (i, x) in p.enumerated() {
            guard x >= 0 && x < p.count else { throw error("\(x) is not between 0 and \(p.count)") }
            guard inverse[x] < 0 else { throw error("\(x) is duplicated in the input.") }
            inverse[x] = i
        }
        return inverse
    }

    static func reversedAxes(_ axes: [Int], rank: Int, _ error: (String) -> KilnError) throws -> [Int] {
        var seen = Set<Int>()
        return try axes.map { a in
            guard a >= -rank && a < rank else { throw error("'axis'[\(a)] = \(a) is out of valid range [\(-rank), \(rank - 1)]") }
            let k = a < 0 ? a + rank : a
            guard seen.insert(k).inserted else { throw error("axis \(k) specified more than once.") }
            return k
        }
    }

    /// `x` read backwards along `axes`: a slice with stride -1 there.
    static func reverse(_ ctx: inout LoweringContext, _ x: Int, axes: [Int]) throws -> Int {
        let s = ctx.type(x).shape
        guard !axes.isEmpty, !s.contains(0) else { return x }
        let start = s.indices.map { axes.contains($0) ? s[$0] - 1 : 0 }, strides = s.indices.map { axes.contains($0) ? -1 : 1 }
        return try ctx.emit(.slice(start: start, strides: strides, shape: s), [x])
    }

    /// Cumsum and Cumprod along a (possibly negative) axis, optionally exclusive (each element
    /// left out of its own result) and reversed (from the end). A Hillis-Steele scan: log2(n)
    /// steps, each combining the running values with themselves shifted by 1, 2, 4, ... along
    /// the axis, so every step is an elementwise op the kernels fuse.
    static func scan(_ name: String, _ combine: BinaryOp, identity: Double) -> OpDef {
        OpDef(name, arity: .exactly(2), attrs: ["Tidx": .type(.int32)], infer: { ctx in
            try integerInputs(ctx, [1])
            let d = ctx.dtype(0)
            guard d.isNumeric, d != .bool else { throw ctx.error("\(name) of \(d.name) is not supported") }
            if let r = ctx.shape(1).rank, r != 0 { throw ctx.error("axis must be a scalar, but received shape: \(ctx.shape(1))") }
            if let a = ctx.ints(1)?.first, let r = ctx.shape(0).rank {
                guard a >= -r && a < r else { throw ctx.error("axis must be in range [\(-r), \(r)), but received: \(a)") }
            }
            return [(d, ctx.shape(0))]
        }, lower: { ctx in
            let x = try ctx.value(0)
            let s = ctx.type(x).shape, d = ctx.type(x).dtype
            let a0 = try ctx.ints(1).first ?? 0
            guard a0 >= -s.count && a0 < s.count else { throw ctx.error("axis must be in range [\(-s.count), \(s.count)), but received: \(a0)") }
            let axis = a0 < 0 ? a0 + s.count : a0
            let reverse = ctx.attrs[Scan.reverse], exclusive = ctx.attrs[Scan.exclusive]
            let n = s[axis]
            guard n > 0 else { return [.value(x)] }
            var v = reverse ? try GradientHelperOps.reverse(&ctx, x, axes: [axis]) : x
            // v shifted by k along the axis, the identity filling the first k places.
            func shifted(_ v: Int, by k: Int) throws -> Int {
                let start = s.map { _ in 0 }
                var low = s.map { _ in 0 }, high = s.map { _ in 0 }, kept = s
                kept[axis] = n - k
                low[axis] = k
                let head = try ctx.emit(.slice(start: start, strides: s.map { _ in 1 }, shape: kept), [v])
                return try ctx.emit(.pad(low: low, high: high, mode: .constant), [head, ctx.scalar(identity, d)])
            }
            if exclusive { v = try shifted(v, by: 1) }
            var k = 1
            while k < n {
                v = try ctx.emit(.binary(combine), [v, shifted(v, by: k)])
                k *= 2
            }
            if reverse { v = try GradientHelperOps.reverse(&ctx, v, axes: [axis]) }
            return [.value(v)]
        }).declaring(Scan.exclusive, Scan.reverse)
    }

    /// The largest (smallest) value of a dtype: what an empty segment of a max (min) holds.
    static func extreme(_ d: DType, largest: Bool) -> Double {
        switch d {
        case .float32: return largest ? Double(Float.greatestFiniteMagnitude) : -Double(Float.greatestFiniteMagnitude)
        case .float64: return largest ? .greatestFiniteMagnitude : -.greatestFiniteMagnitude
        case .int32: return largest ? Double(Int32.max) : Double(Int32.min)
        case .int64: return largest ? Double(Int64.max) : Double(Int64.min)
        case .uint8: return largest ? 255 : 0
        default: return 0
        }
    }

    /// UnsortedSegmentMax/Min/Prod: data [ids..., rest] -> [num_segments, rest]. Every segment
    /// reduces the rows whose id names it (a one-hot mask over ids x segments); an empty segment
    /// holds the reduction's identity (the lowest value for max, as TensorFlow), negative ids
    /// drop their row and ids past the end are TensorFlow's run-time error.
    static func segmentReduction(_ name: String, _ r: ReduceOp) -> OpDef {
        OpDef(name, arity: .exactly(3), infer: { ctx in
            try integerInputs(ctx, [1, 2])
            let d = ctx.dtype(0)
            guard d.isNumeric, d != .bool else { throw ctx.error("\(name) of \(d.name) is not supported") }
            if let r = ctx.shape(2).rank, r != 0 { throw ctx.error("num_segments should be a scalar, not shape \(ctx.shape(2))") }
            if let k = ctx.ints(2)?.first, k < 0 { throw ctx.error("num_segments must be non-negative, got \(k)") }
            let n = ctx.ints(2)?.first
            guard let data = ctx.shape(0).dims, let ids = ctx.shape(1).dims else { return [(d, .unknown)] }
            guard data.count >= ids.count, zip(ids, data).allSatisfy({ $0 == nil || $1 == nil || $0 == $1 }) else {
                throw ctx.error("data.shape = \(ctx.shape(0)) does not start with segment_ids.shape = \(ctx.shape(1))")
            }
            return [(d, Shape(dims: [n] + Array(data.dropFirst(ids.count))))]
        }, lower: { ctx in
            let data = try ctx.value(0), ids = try ctx.value(1)
            let k = try ctx.ints(2)[0]
            let ds = ctx.type(data).shape, idShape = ctx.type(ids).shape, d = ctx.type(data).dtype
            guard k >= 0 else { throw ctx.error("num_segments must be non-negative, got \(k)") }
            guard ds.count >= idShape.count, Array(ds.prefix(idShape.count)) == idShape else {
                throw ctx.error("data.shape = \(ds) does not start with segment_ids.shape = \(idShape)")
            }
            let n = idShape.reduce(1, *), rest = Array(ds.dropFirst(idShape.count)), width = rest.reduce(1, *)
            let checked = try ctx.check(ids, .below(k), "segment_ids{index} = {value} is out of range [0, \(k))")
            let flatIds = try ctx.cast(ctx.reshape(checked, [n]), .int64)
            let hot = try oneHot(&ctx, flatIds, shape: [n, k, width])
            let rows = try ctx.emit(.broadcast(shape: [n, k, width], dims: [0, 2]), [ctx.reshape(data, [n, width])])
            let fill = r == .max ? extreme(d, largest: false) : r == .min ? extreme(d, largest: true) : 1
            let masked = try ctx.select(hot, rows, ctx.full(fill, d, [n, k, width]))
            // With no rows at all, every segment is empty.
            let out = n == 0 ? try ctx.full(fill, d, [k, width]) : try ctx.emit(.reduce(r, axes: [0]), [masked])
            return [.value(try ctx.reshape(out, [k] + rest))]
        })
    }

    /// `shape` [n, k, ...] of bools: whether the int64 `ids` [n] names position k of axis 1.
    static func oneHot(_ ctx: inout LoweringContext, _ ids: Int, shape: [Int]) throws -> Int {
        try ctx.emit(.compare(.eq), [ctx.emit(.broadcast(shape: shape, dims: [0]), [ids]), ctx.emit(.iota(dtype: .int64, shape: shape, axis: 1), [])])
    }

    /// ScatterNd's and TensorScatterUpdate's static checks: indices [..., K] address the first K
    /// dimensions of `shape`; updates are indices.shape[:-1] + shape[K:].
    static func checkScatter(_ ctx: InferenceContext, indices: Int, updates: Int, shape: Shape) throws {
        guard let idx = ctx.shape(indices).dims else { return }
        guard let k = idx.last else { throw ctx.error("Indices must be at least 1-D, got shape \(ctx.shape(indices))") }
        guard let k, let dims = shape.dims, let up = ctx.shape(updates).dims else { return }
        guard k <= dims.count else { throw ctx.error("Index innermost dimension length must be <= output rank; saw: \(k) vs. output rank: \(dims.count)") }
        let want = Array(idx.dropLast()) + Array(dims.dropFirst(k))
        guard want.count == up.count, zip(want, up).allSatisfy({ $0 == nil || $1 == nil || $0 == $1 }) else {
            throw ctx.error("Dimensions of updates \(ctx.shape(updates)) do not match indices.shape[:-1] + shape[\(k):] = \(Shape(dims: want))")
        }
    }

    /// The common part of the scatters: indices checked against `shape` and made one linear row
    /// id each, `hit` [m, rows] saying which update goes to which row of `shape` flattened over
    /// its first K dimensions, and the updates as [m, width].
    static func scatterPlan(_ ctx: inout LoweringContext, indices: Int, updates: Int, shape: [Int]) throws -> (hit: Int, updates: Int) {
        let is_ = ctx.type(indices).shape, us = ctx.type(updates).shape
        guard let k = is_.last, k <= shape.count else { throw ctx.error("Index innermost dimension length must be <= output rank, got indices of shape \(is_) for shape \(shape)") }
        let outer = Array(is_.dropLast()), rest = Array(shape.dropFirst(k))
        guard us == outer + rest else { throw ctx.error("Dimensions of updates \(us) do not match indices.shape[:-1] + shape[\(k):] = \(outer + rest)") }
        let m = outer.reduce(1, *), rows = shape.prefix(k).reduce(1, *), width = rest.reduce(1, *)
        let checked = k == 0 ? indices : try ctx.check(indices, .index(bounds: Array(shape.prefix(k))),
                                                        "indices{index} = {value} does not index into shape \(Shape(shape))")
        let flat = try ctx.cast(ctx.reshape(checked, [m, k]), .int64)
        var strides = [Int](repeating: 1, count: k)
        for d in stride(from: k - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        let weights = ctx.builder.constant(try Tensor(literal: strides.map(Int64.init), dtype: .int64))
        let linear = k == 0 ? try ctx.full(0, .int64, [m]) : try ctx.emit(.reduce(.sum, axes: [1]), [ctx.binary(.mul, flat, weights)])
        let hit = try oneHot(&ctx, linear, shape: [m, rows])
        return (hit, try ctx.reshape(updates, [m, width]))
    }
}
