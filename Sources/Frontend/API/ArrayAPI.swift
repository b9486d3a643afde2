import KilnIR

/// TensorFlow's array functions (`tf.concat`, `tf.pad`, `tf.gather`, ...) as Graph methods.
/// Static arguments (axes, paddings, shapes) become Const inputs, as in TensorFlow's graphs.
extension Graph {
    /// A Const of int32 values; a value int32 cannot hold is an error naming the Const, never a trap.
    func int32s(_ v: [Int], name: String) throws -> Output {
        try constant(Tensor(shape: [v.count], scalars: try Graph.narrow(v, name: name)), name: name)
    }

    func int32Scalar(_ v: Int, name: String) throws -> Output {
        try constant(Tensor(shape: [], scalars: try Graph.narrow([v], name: name)), name: name)
    }

    static func narrow(_ v: [Int], name: String) throws -> [Int32] {
        try v.map { x in
            guard let n = Int32(exactly: x) else { throw KilnError.invalidArgument("'\(name)': \(x) does not fit in int32") }
            return n
        }
    }

    public func concat(_ values: [Output], axis: Int, name: String = "concat") throws -> Output {
        guard let first = values.first else { throw KilnError.invalidArgument("concat '\(name)' needs at least one value") }
        if values.count == 1 { return try identity(first, name: name) }
        let a = try int32Scalar(axis, name: name + "/axis")
        return try addOperation("ConcatV2", name: name, inputs: values + [a],
                                attrs: ["N": .int(values.count), "T": .type(first.dtype), "Tidx": .type(.int32)]).output()
    }

    public func expandDims(_ x: some OutputConvertible, axis: Int, name: String = "ExpandDims") throws -> Output {
        let d = try int32Scalar(axis, name: name + "/dim")
        return try apply("ExpandDims", [x.output, d], name: name, attrs: ["Tdim": .type(.int32)])
    }

    /// Removes the given size-1 axes, or all of them when `axes` is nil.
    public func squeeze(_ x: some OutputConvertible, axes: [Int]? = nil, name: String = "Squeeze") throws -> Output {
        try apply("Squeeze", [x.output], name: name, attrs: ["squeeze_dims": .ints(axes ?? [])])
    }

    /// Permutes dimensions; without `perm` they are reversed.
    public func transpose(_ x: some OutputConvertible, perm: [Int]? = nil, name: String = "transpose") throws -> Output {
        let p: [Int]
        if let perm { p = perm } else {
            guard let r = x.output.shape.rank else { throw KilnError.invalidArgument("transpose '\(name)' without perm needs a known rank") }
            p = Array((0..<r).reversed())
        }
        return try apply("Transpose", [x.output, int32s(p, name: name + "/perm")], name: name, attrs: ["Tperm": .type(.int32)])
    }

    public enum PadMode: String, Sendable { case constant = "CONSTANT", reflect = "REFLECT", symmetric = "SYMMETRIC" }

    /// Pads with `paddings[d] = [before, after]` per dimension.
    public func pad(_ x: some OutputConvertible, paddings: [[Int]], mode: PadMode = .constant, constantValue: Double = 0,
                    name: String = "Pad") throws -> Output {
        let t = x.output
        guard paddings.allSatisfy({ $0.count == 2 }) else { throw KilnError.invalidArgument("pad '\(name)': each padding needs [before, after]") }
        let p = try constant(Tensor(shape: [paddings.count, 2], scalars: try Graph.narrow(paddings.flatMap { $0 }, name: name + "/paddings")), name: name + "/paddings")
        switch mode {
        case .constant where constantValue == 0:
            return try apply("Pad", [t, p], name: name, attrs: ["Tpaddings": .type(.int32)])
        case .constant:
            let v = try constant(constantValue, dtype: t.dtype, name: name + "/constant_values")
            return try apply("PadV2", [t, p, v], name: name, attrs: ["Tpaddings": .type(.int32)])
        default:
            return try apply("MirrorPad", [t, p], name: name, attrs: ["Tpaddings": .type(.int32), "mode": .string(mode.rawValue)])
        }
    }

    public func tile(_ x: some OutputConvertible, multiples: [Int], name: String = "Tile") throws -> Output {
        try apply("Tile", [x.output, int32s(multiples, name: name + "/multiples")], name: name, attrs: ["Tmultiples": .type(.int32)])
    }

    /// `size[d] == -1` takes everything from `begin[d]` on.
    public func slice(_ x: some OutputConvertible, begin: [Int], size: [Int], name: String = "Slice") throws -> Output {
        try apply("Slice", [x.output, int32s(begin, name: name + "/begin"), int32s(size, name: name + "/size")], name: name,
                  attrs: ["Index": .type(.int32)])
    }

    /// Python's `x[b:e:s, ...]` in TensorFlow's encoding (bit i of a mask applies to entry i).
    public func stridedSlice(_ x: some OutputConvertible, begin: [Int], end: [Int], strides: [Int]? = nil,
                             beginMask: Int = ShapeOps.StridedSlice.beginMask.defaultValue, endMask: Int = ShapeOps.StridedSlice.endMask.defaultValue,
                             ellipsisMask: Int = ShapeOps.StridedSlice.ellipsisMask.defaultValue,
                             newAxisMask: Int = ShapeOps.StridedSlice.newAxisMask.defaultValue,
                             shrinkAxisMask: Int = ShapeOps.StridedSlice.shrinkAxisMask.defaultValue,
                             name: String = "strided_slice") throws -> Output {
        let s = strides ?? begin.map { _ in 1 }
        return try apply("StridedSlice", [x.output, int32s(begin, name: name + "/stack"), int32s(end, name: name + "/stack_1"),
                                          int32s(s, name: name + "/stack_2")], name: name,
                         attrs: ["Index": .type(.int32), "begin_mask": .int(beginMask), "end_mask": .int(endMask),
                                 "ellipsis_mask": .int(ellipsisMask), "new_axis_mask": .int(newAxisMask), "shrink_axis_mask": .int(shrinkAxisMask)])
    }

    public func gather(_ params: some OutputConvertible, _ indices: some OutputConvertible, axis: Int = 0, batchDims: Int = ShapeOps.Gather.batchDims.defaultValue,
                       name: String = "GatherV2") throws -> Output {
        let a = try int32Scalar(axis, name: name + "/axis")
        return try addOperation("GatherV2", name: name, inputs: [params.output, indices.output, a],
                                attrs: ["Tparams": .type(params.output.dtype), "Tindices": .type(indices.output.dtype),
                                        "Taxis": .type(.int32), "batch_dims": .int(batchDims)]).output()
    }

    public func gatherNd(_ params: some OutputConvertible, _ indices: some OutputConvertible, name: String = "GatherNd") throws -> Output {
        try addOperation("GatherNd", name: name, inputs: [params.output, indices.output],
                         attrs: ["Tparams": .type(params.output.dtype), "Tindices": .type(indices.output.dtype)]).output()
    }

    public func oneHot(_ indices: some OutputConvertible, depth: Int, onValue: Double = 1, offValue: Double = 0, axis: Int = ShapeOps.OneHot.axis.defaultValue,
                       dtype: DType = .float32, name: String = "one_hot") throws -> Output {
        let d = try int32Scalar(depth, name: name + "/depth")
        let on = try constant(onValue, dtype: dtype, name: name + "/on_value")
        let off = try constant(offValue, dtype: dtype, name: name + "/off_value")
        return try addOperation("OneHot", name: name, inputs: [indices.output, d, on, off],
                                attrs: ["T": .type(dtype), "TI": .type(indices.output.dtype), "axis": .int(axis)]).output()
    }

    public func shape(_ x: some OutputConvertible, outType: DType = ShapeOps.outType.defaultValue, name: String = "Shape") throws -> Output {
        try apply("Shape", [x.output], name: name, attrs: ShapeOps.outType(outType))
    }
    public func rank(_ x: some OutputConvertible, name: String = "Rank") throws -> Output { try apply("Rank", [x.output], name: name) }
    public func size(_ x: some OutputConvertible, outType: DType = ShapeOps.outType.defaultValue, name: String = "Size") throws -> Output {
        try apply("Size", [x.output], name: name, attrs: ShapeOps.outType(outType))
    }

    /// `start, start + delta, ...` up to (not including) `limit`.
    public func range(_ start: Double, _ limit: Double, _ delta: Double = 1, dtype: DType = .int32, name: String = "range") throws -> Output {
        let s = try constant(start, dtype: dtype, name: name + "/start")
        let l = try constant(limit, dtype: dtype, name: name + "/limit")
        let d = try constant(delta, dtype: dtype, name: name + "/delta")
        return try addOperation("Range", name: name, inputs: [s, l, d], attrs: ["Tidx": .type(dtype)]).output()
    }

    public func fill(_ dims: [Int], _ value: Double, dtype: DType = .float32, name: String = "Fill") throws -> Output {
        let v = try constant(value, dtype: dtype, name: name + "/value")
        return try addOperation("Fill", name: name, inputs: [int32s(dims, name: name + "/dims"), v],
                                attrs: ["T": .type(dtype), "index_type": .type(.int32)]).output()
    }
    public func zeros(_ shape: [Int], dtype: DType = .float32, name: String = "zeros") throws -> Output {
        try filled(0, shape, dtype, name)
    }
    public func ones(_ shape: [Int], dtype: DType = .float32, name: String = "ones") throws -> Output {
        try filled(1, shape, dtype, name)
    }

    /// TensorFlow's zeros and ones: a Const below 1000 elements, a Fill from there on, so a large
    /// shape costs nothing until a session runs it (under its memory limit).
    private func filled(_ v: Double, _ shape: [Int], _ dtype: DType, _ name: String) throws -> Output {
        let n = try Tensor.checkedCount(shape, dtype)
        return n < 1000 ? try constant(v, dtype: dtype, shape: shape, name: name) : try fill(shape, v, dtype: dtype, name: name)
    }
    public func zerosLike(_ x: some OutputConvertible, name: String = "zeros_like") throws -> Output { try apply("ZerosLike", [x.output], name: name) }
    public func onesLike(_ x: some OutputConvertible, name: String = "ones_like") throws -> Output { try apply("OnesLike", [x.output], name: name) }
}

extension Graph {
    /// Coordinates (int64, one row per true element) of `condition`; its row count depends on the
    /// data, so it runs on the host between compiled segments.
    public func whereIndices(_ condition: some OutputConvertible, name: String = "Where") throws -> Output {
        try apply("Where", [condition.output], name: name)
    }
}
