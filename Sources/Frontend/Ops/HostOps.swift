import KilnIR

/// Ops whose output shape depends on the input values. Executables have static shapes, so the
/// session computes these on the host between compiled segments.
enum HostOps {
    static let defs: [OpDef] = [
        // Answered by the session from its variable store (see Session), never compiled.
        OpDef("ReportUninitializedVariables", arity: .exactly(0), attrs: ["var_names": .strings([])], infer: { ctx in
            [(.string, Shape(dims: [nil]))]
        }).notDifferentiable(),
        OpDef("Where", arity: .exactly(1), infer: { ctx in
            guard ctx.dtype(0) != .string else { throw ctx.error("Where does not support strings") }
            return [(.int64, Shape(dims: [nil, ctx.shape(0).rank]))]
        }, hostKernel: { inputs, _ in
            let x = inputs[0]
            var coords: [Int64] = []
            var idx = [Int](repeating: 0, count: x.rank)
            for i in 0..<x.elementCount {
                var r = i
                for d in stride(from: x.rank - 1, through: 0, by: -1) {
                    idx[d] = r % x.shape[d]
                    r /= x.shape[d]
                }
                if x.element(at: i).asDouble != 0 { coords += idx.map(Int64.init) }
            }
            return [Tensor(shape: [coords.count / max(x.rank, 1), x.rank], scalars: coords)]
        }),
    ]
}
