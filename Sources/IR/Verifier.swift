/// Checks the invariants every pass and backend relies on. Throws `internal` errors: a function
/// that fails here is a bug in Kiln, not in the user's graph.
public enum Verifier {
    public static func verify(_ f: Function) throws {
        func fail(_ m: String) -> KilnError { KilnError.internalError("IR verification of @\(f.name) failed: \(m)") }
        var types = [Int: TensorType]()
        var defined = Set<Int>()
        for (i, p) in f.params.enumerated() {
            types[i] = p.type
            defined.insert(i)
        }
        for inst in f.body {
            if defined.contains(inst.id) { throw fail("%\(inst.id) is defined twice") }
            for (k, o) in inst.operands.enumerated() {
                guard defined.contains(o) else { throw fail("%\(inst.id) uses %\(o) before it is defined") }
                let isVarParam = f.isParam(o) && f.params[o].kind == .variable
                let wantsVar = (inst.op == .varRead || inst.op == .varWrite) && k == 0
                if isVarParam != wantsVar {
                    throw fail(wantsVar ? "%\(inst.id) \(inst.op.mnemonic) needs a variable parameter, got %\(o)"
                                        : "%\(inst.id) uses variable %\(o) directly; read it with var.read")
                }
                if !f.isParam(o) && types[o] == nil { throw fail("%\(inst.id) uses %\(o), which has no value") }
            }
            let expected: TensorType?
            do { expected = try inst.op.resultType(operands: inst.operands.map { types[$0]! }) } catch let e as KilnError {
                throw fail("%\(inst.id): \(e.message)")
            }
            if inst.type != expected {
                throw fail("%\(inst.id) \(inst.op.mnemonic) has type \(inst.type?.description ?? "none"), expected \(expected?.description ?? "none")")
            }
            defined.insert(inst.id)
            if let t = inst.type { types[inst.id] = t }
        }
        for r in f.results {
            guard defined.contains(r), types[r] != nil else { throw fail("result %\(r) is not a defined value") }
            if f.isParam(r) && f.params[r].kind == .variable { throw fail("result %\(r) is a variable; return a var.read") }
        }
    }
}
