import KilnIR

/// Computes every instruction's result type from its operands, filling types that are missing
/// (hand-written or parsed IR) and rejecting ones that disagree.
public struct ShapeInferencePass: Pass {
    public init() {}
    public var name: String { "shape-inference" }

    public func run(_ f: inout Function) throws {
        var types = f.typeTable()
        for k in f.body.indices {
            let inst = f.body[k]
            let operandTypes = try inst.operands.map { o -> TensorType in
                guard let t = types[o] else {
                    throw KilnError.invalidArgument("%\(inst.id) \(inst.op.mnemonic) uses %\(o), which has no type")
                }
                return t
            }
            let t: TensorType?
            do { t = try inst.op.resultType(operands: operandTypes) } catch let e as KilnError {
                throw KilnError(e.code, "%\(inst.id): \(e.message)")
            }
            if let declared = inst.type, declared != t {
                throw KilnError.invalidArgument("%\(inst.id) \(inst.op.mnemonic) is declared \(declared) but computes \(t?.description ?? "no value")")
            }
            f.body[k].type = t
            if let t { types[inst.id] = t }
        }
    }
}
