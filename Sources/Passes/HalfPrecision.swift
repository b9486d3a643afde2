import KilnIR

/// Makes float16 and bfloat16 storage types: every primitive that computes on half operands
/// becomes convert-to-float32, the float32 primitive, convert-back, so each op's result is rounded
/// to half once, as TensorFlow's half kernels round each op's result (computing in float, as Eigen's
/// half arithmetic does), and products and reductions accumulate in float32. Data movement stays in
/// half. Kernels then need only half loads, stores and the two conversions (`cast`); fusion keeps
/// the rounding, since the converts are ordinary elementwise casts.
public struct HalfPrecisionPass: Pass {
    public init() {}
    public var name: String { "half-precision" }

    /// Whether `op` takes half operands as they are. Data movement does (it copies bits); so does
    /// `cast` (the kernels convert half to and from float32). A primitive whose kernel computes on
    /// half operands itself (accumulating in float32 and rounding its result once) is listed
    /// here too, and this pass then leaves it alone.
    public static func handlesHalf(_ op: Op) -> Bool {
        switch op {
        case .constant, .select, .cast, .broadcast, .reshape, .transpose, .slice, .pad, .concat, .gather, .patches,
             .iota, .varRead, .varWrite:
            return true
        // Products run Kiln's half kernels (kiln_hgemm: AVX512-BF16, F16C; a loop summing in
        // float32 elsewhere), at the half types' own rate instead of on float32 copies.
        case .dot:
            return true
        case .unary, .binary, .compare, .reduce, .argReduce, .reduceWindow, .unpatches, .random, .check:
            return false
        }
    }

    public func run(_ f: inout Function) throws {
        var types = f.typeTable()
        guard types.values.contains(where: { $0.dtype.isHalf }) else { return }
        var next = f.nextID
        var body: [Instruction] = []
        body.reserveCapacity(f.body.count)
        var producers: [Int: Instruction] = [:]
        func fresh(_ op: Op, _ operands: [Int], _ type: TensorType) -> Int {
            let id = next
            next += 1
            body.append(Instruction(id: id, op: op, operands: operands, type: type))
            types[id] = type
            return id
        }
        /// `o` as float32. Image patches are taken of the converted image instead (the same values:
        /// patches only copy, and pad with zeros), so a convolution's product keeps the planner's
        /// patch-product path; the half patches die if nothing else uses them.
        func widened(_ o: Int) -> Int {
            guard let t = types[o], t.dtype.isHalf else { return o }
            if let p = producers[o], case .patches = p.op {
                return fresh(p.op, [widened(p.operands[0])], TensorType(.float32, t.shape))
            }
            return fresh(.cast(.float32), [o], TensorType(.float32, t.shape))
        }
        for var inst in f.body {
            let halfOperands = inst.operands.contains { types[$0]?.dtype.isHalf == true }
            let result = inst.type
            let halfResult = result?.dtype.isHalf == true
            guard halfOperands || halfResult, !Self.handlesHalf(inst.op) else {
                body.append(inst)
                producers[inst.id] = inst
                continue
            }
            inst.operands = inst.operands.map(widened)
            if case .random(let kind, _, let shape, let seed) = inst.op, halfResult {
                inst.op = .random(kind, dtype: .float32, shape: shape, seed: seed)
            }
            guard let result, halfResult else {
                body.append(inst)
                continue
            }
            // The float32 op gets a new id; the rounding cast keeps the old one, so users are unchanged.
            let wide = fresh(inst.op, inst.operands, TensorType(.float32, result.shape))
            body.append(Instruction(id: inst.id, op: .cast(result.dtype), operands: [wide], type: result))
        }
        f.body = body
    }
}
