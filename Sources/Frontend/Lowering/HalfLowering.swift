import KilnIR

/// TensorFlow's kernels compute an op on float16 or bfloat16 tensors in float32 and round each of
/// its results once: products and reductions accumulate in float32, and a kernel that is several
/// primitives here (Conv2DBackpropInput's product and col2im sum, a cross entropy) rounds only
/// its outputs. So an op with half inputs is lowered on float32 copies of them and its half outputs
/// are rounded back: rounding happens per graph op, not per primitive of its lowering. Ops that
/// only move data stay in half (converting is exact, so this only saves work). HalfPrecisionPass
/// then rounds per primitive whatever still computes on half (IR not lowered from a graph).
enum HalfLowering {
    static let dataMovement: Set<String> = [
        "Identity", "IdentityN", "StopGradient", "PreventGradient", "Snapshot", "Reshape", "Transpose", "ConcatV2", "Concat",
        "Pack", "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "Pad", "PadV2", "MirrorPad", "Tile", "GatherV2", "Gather",
        "GatherNd", "ExpandDims", "Squeeze", "Select", "SelectV2", "Cast", "ZerosLike", "OnesLike", "Shape", "ShapeN", "Size",
        "Rank", "BroadcastTo", "ReverseV2", "Fill",
    ]

    /// Ops whose TensorFlow kernel is an Eigen expression over the half type, so every operation
    /// of it rounds: (x - y) is rounded before it is squared. They are lowered on half inputs and
    /// HalfPrecisionPass rounds each primitive, which is the same thing.
    static let roundedPerPrimitive: Set<String> = ["SquaredDifference"]

    /// Ops lowered on their half inputs as they are because the kernels compute every primitive
    /// of their lowering on half operands natively (accumulating in float32, rounding once; see
    /// `HalfPrecisionPass.handlesHalf`): the products, whose `.dot` runs kiln_hgemm. Only ops whose
    /// lowering has no other computing primitive (MatMul, BatchMatMul: a product; Conv2D,
    /// Conv2DBackpropFilter: patches and a product; not Conv2DBackpropInput, whose product feeds
    /// a col2im sum TensorFlow does not round between).
    static let halfKernels: Set<String> = ["MatMul", "BatchMatMul", "BatchMatMulV2", "Conv2D", "Conv2DBackpropFilter"]

    /// The inputs to lower `op` on: half values converted to float32; nil when `op` moves data,
    /// has a half kernel, has no half input or takes a variable (whose writes must stay in its own type).
    static func widened(_ op: Operation, _ inputs: [LoweredValue], _ b: inout FunctionBuilder) throws -> [LoweredValue]? {
        guard !dataMovement.contains(op.type), !roundedPerPrimitive.contains(op.type), !halfKernels.contains(op.type), op.inputs.contains(where: { $0.dtype.isHalf }),
              !inputs.contains(where: { if case .variable = $0 { return true } else { return false } }) else { return nil }
        return try inputs.map { v in
            guard case .value(let id) = v, b.type(of: id).dtype.isHalf else { return v }
            return .value(try b.emit(.cast(.float32), [id]))
        }
    }

    /// The outputs TensorFlow types as half that the float32 lowering left in float32, rounded.
    static func rounded(_ outs: [LoweredValue], _ op: Operation, _ b: inout FunctionBuilder) throws -> [LoweredValue] {
        try outs.enumerated().map { k, v in
            guard case .value(let id) = v, k < op.outputSpecs.count, op.outputSpecs[k].dtype.isHalf, b.type(of: id).dtype == .float32 else { return v }
            return .value(try b.emit(.cast(op.outputSpecs[k].dtype), [id]))
        }
    }
}
