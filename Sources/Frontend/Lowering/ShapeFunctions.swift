import KilnIR

/// Shape arithmetic shared by the shape functions of many ops.
enum ShapeFunctions {
    /// numpy broadcasting of two static shapes, unknown dims allowed.
    static func broadcast(_ a: Shape, _ b: Shape, _ ctx: InferenceContext) throws -> Shape {
        guard let x = a.dims, let y = b.dims else { return .unknown }
        let n = max(x.count, y.count)
        var out: [Int?] = []
        for k in 0..<n {
            let p = k - (n - x.count) >= 0 ? x[k - (n - x.count)] : 1
            let q = k - (n - y.count) >= 0 ? y[k - (n - y.count)] : 1
            switch (p, q) {
            case (1, let d), (let d, 1): out.append(d)
            case (nil, nil): out.append(nil)
            case (nil, let d), (let d, nil): out.append(d == 1 ? nil : d)
            case (let d?, let e?):
                if d != e { throw ctx.error("Dimensions must be equal, but are \(d) and \(e)") }
                out.append(d)
            }
        }
        return Shape(dims: out)
    }

    /// numpy broadcasting of concrete shapes, for lowering.
    static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out: [Int] = []
        for k in 0..<n {
            let p = k - (n - a.count) >= 0 ? a[k - (n - a.count)] : 1
            let q = k - (n - b.count) >= 0 ? b[k - (n - b.count)] : 1
            if p != q && p != 1 && q != 1 { return nil }
            out.append(p == 1 ? q : p)
        }
        return out
    }

    /// Axes from a constant tensor, normalised to 0..<rank, sorted and unique.
    static func axes(_ t: Tensor, rank: Int, _ error: (String) -> KilnError) throws -> [Int] {
        var out = Set<Int>()
        for v in ints(t) {
            guard v >= -rank && v < rank else { throw error("Invalid reduction dimension \(v) for input with \(rank) dimensions") }
            out.insert(v < 0 ? v + rank : v)
        }
        return out.sorted()
    }

    /// The elements as Ints, exactly for integer tensors (int64 beyond 2^53 included). Only
    /// integer tensors reach here (`IntegerInput` refuses others where nodes are made and where
    /// lowering folds them); other dtypes still convert without trapping.
    static func ints(_ t: Tensor) -> [Int] {
        (0..<t.elementCount).map { i in
            switch t.element(at: i) {
            case .i(let x): return Int(x)
            case .b(let b): return b ? 1 : 0
            case .f(let d): return d.isNaN ? 0 : d >= 9.2e18 ? Int.max : d <= -9.2e18 ? Int.min : Int(d)
            }
        }
    }
}
