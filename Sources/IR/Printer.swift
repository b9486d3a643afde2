/// The textual form of the IR. `Parser.parse(Printer.print(f)) == f` for every valid function.
///
///     func @main(%0: f32[1,2] feed "x", %1: i32[] var "counter") {
///       %2 = constant i32[] 1
///       %3 = var.read %1 : i32[]
///       %4 = add %3, %2 : i32[]
///       %5 = var.write %1, %4
///       return %4
///     }
public enum Printer {
    public static func print(_ f: Function) -> String {
        var s = "func @\(f.name)("
        s += f.params.enumerated().map { i, p in "%\(i): \(p.type) \(p.kind.rawValue) \(quote(Array(p.name.utf8)))" }
            .joined(separator: ", ")
        s += ") {\n"
        for inst in f.body { s += "  " + print(inst) + "\n" }
        s += "  return" + (f.results.isEmpty ? "" : " " + f.results.map { "%\($0)" }.joined(separator: ", ")) + "\n}\n"
        return s
    }

    public static func print(_ inst: Instruction) -> String {
        var s = "%\(inst.id) = \(inst.op.mnemonic)"
        if case .constant(let t) = inst.op {
            return s + " \(TensorType(t.dtype, t.shape)) \(literal(t))"
        }
        if !inst.operands.isEmpty { s += " " + inst.operands.map { "%\($0)" }.joined(separator: ", ") }
        switch inst.op {
        case .cast(let d): s += " to=\(d.rawValue)"
        case .broadcast(let shape, let dims): s += " shape=\(list(shape)) dims=\(list(dims))"
        case .reshape(let shape): s += " shape=\(list(shape))"
        case .transpose(let perm): s += " perm=\(list(perm))"
        case .reduce(_, let axes): s += " axes=\(list(axes))"
        case .dot(let ta, let tb): s += " transpose_a=\(ta) transpose_b=\(tb)"
        default: break
        }
        if let t = inst.type { s += " : \(t)" }
        return s
    }

    static func list(_ v: [Int]) -> String { "[" + v.map(String.init).joined(separator: ",") + "]" }

    /// Nested brackets with values that parse back bit-exactly (Swift prints the shortest
    /// round-tripping decimal).
    static func literal(_ t: Tensor) -> String {
        func element(_ i: Int) -> String {
            let p = t.buffer.pointer
            switch t.dtype {
            case .float32: return "\(p.load(fromByteOffset: i * 4, as: Float.self))"
            case .float64: return "\(p.load(fromByteOffset: i * 8, as: Double.self))"
            case .string: return quote(t.strings[i])
            default: return t.dtype == .bool ? (t.double(at: i) != 0 ? "true" : "false") : "\(Int64(t.double(at: i)))"
            }
        }
        if t.dtype == .int64 {
            let v = t.scalars(as: Int64.self)
            return nest(t.shape) { "\(v[$0])" }
        }
        return nest(t.shape, element)
    }

    static func nest(_ shape: [Int], _ element: (Int) -> String) -> String {
        func render(_ dim: Int, _ offset: Int) -> String {
            if dim == shape.count { return element(offset) }
            let stride = shape[(dim + 1)...].reduce(1, *)
            return "[" + (0..<shape[dim]).map { render(dim + 1, offset + $0 * stride) }.joined(separator: ", ") + "]"
        }
        return render(0, 0)
    }

    static func quote(_ bytes: [UInt8]) -> String {
        var s = "\""
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): s += "\\\""
            case UInt8(ascii: "\\"): s += "\\\\"
            case 0x20..<0x7f: s.unicodeScalars.append(Unicode.Scalar(b))
            default: s += "\\x" + String(b, radix: 16).leftPadded(to: 2)
            }
        }
        return s + "\""
    }
}

extension String {
    func leftPadded(to n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
