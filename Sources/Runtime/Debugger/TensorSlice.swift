import KilnIR

/// A numpy-style slice of a tensor ("[0:2, :]", "[1, ::-1]", "[-1]"): per leading dimension an
/// index (the dimension is dropped) or start:stop:step; dimensions not named are taken whole.
struct TensorSlice {
    enum Part { case index(Int), range([Int]) }
    /// Per dimension of the tensor, the positions taken (and whether the dimension stays).
    let parts: [Part]

    static func parse(_ text: String, shape: [Int]) throws -> TensorSlice {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        var parts = shape.map { Part.range(Array(0..<$0)) }
        if trimmed.isEmpty { return TensorSlice(parts: parts) }
        guard trimmed.hasPrefix("["), trimmed.hasSuffix("]") else {
            throw KilnError.invalidArgument("a slice is written in brackets, as numpy's: '[0:2, :]', got '\(text)'")
        }
        let items = trimmed.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if items == [""] { return TensorSlice(parts: parts) }
        guard items.count <= shape.count else {
            throw KilnError.invalidArgument("slice '\(text)' has \(items.count) indices for a tensor of rank \(shape.count)")
        }
        for (d, item) in items.enumerated() {
            let n = shape[d]
            func int(_ s: Substring) throws -> Int? {
                let s = s.trimmingCharacters(in: .whitespaces)
                if s.isEmpty { return nil }
                guard let v = Int(s) else { throw KilnError.invalidArgument("'\(s)' in slice '\(text)' is not an integer") }
                return v
            }
            let fields = item.split(separator: ":", omittingEmptySubsequences: false)
            if fields.count == 1 {
                guard var i = try int(fields[0]) else { throw KilnError.invalidArgument("empty index in slice '\(text)'") }
                if i < 0 { i += n }
                guard i >= 0 && i < n else { throw KilnError.invalidArgument("index \(item) is out of bounds for dimension \(d) of size \(n)") }
                parts[d] = .index(i)
                continue
            }
            guard fields.count <= 3 else { throw KilnError.invalidArgument("'\(item)' in slice '\(text)' has more than two colons") }
            let step = fields.count == 3 ? try int(fields[2]) ?? 1 : 1
            guard step != 0 else { throw KilnError.invalidArgument("slice step cannot be zero in '\(text)'") }
            // numpy's clamping of out-of-range bounds.
            func bound(_ v: Int?, _ whenNil: Int) -> Int {
                guard var v else { return whenNil }
                if v < 0 { v += n }
                return step > 0 ? min(max(v, 0), n) : min(max(v, -1), n - 1)
            }
            let start = bound(try int(fields[0]), step > 0 ? 0 : n - 1), stop = bound(try int(fields[1]), step > 0 ? n : -1)
            parts[d] = .range(Array(stride(from: start, to: stop, by: step)))
        }
        return TensorSlice(parts: parts)
    }

    /// The slice of `t` printed as numpy prints an array: `array([[1., 2.], [3., 4.]])`.
    func format(_ t: Tensor) -> String {
        var strides = [Int](repeating: 1, count: t.rank)
        for d in stride(from: t.rank - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * t.shape[d + 1] }
        func element(_ i: Int) -> String {
            switch t.element(at: i) {
            case .f(let v):
                if v.isNaN { return "nan" }
                if v.isInfinite { return v < 0 ? "-inf" : "inf" }
                return v == v.rounded() && abs(v) < 1e16 ? "\(Int(v))." : "\(t.dtype == .float32 ? String(Float(v)) : String(v))"
            case .i(let v): return String(v)
            case .b(let v): return v ? "True" : "False"
            default: return "?"
            }
        }
        func render(_ d: Int, _ offset: Int, _ indent: String) -> String {
            if d == parts.count { return element(offset) }
            switch parts[d] {
            case .index(let i): return render(d + 1, offset + i * strides[d], indent)
            case .range(let positions):
                let inner = positions.map { render(d + 1, offset + $0 * strides[d], indent + " ") }
                let nested = parts[(d + 1)...].contains { if case .range = $0 { return true } else { return false } }
                return "[" + inner.joined(separator: nested ? ",\n" + indent + " " : ", ") + "]"
            }
        }
        return "array(" + render(0, 0, "      ") + ")"
    }
}
