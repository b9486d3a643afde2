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
    public static func print(_ f: Function) -> String { print(f, constantLimit: nil) }

    /// As `print(f)`, but a constant of more than `limit` elements shows only its type and
    /// element count: for logs (KILN_DEBUG=3 prints the IR after every pass, and a 64 MB
    /// initial value was gigabytes of text), not for parsing back.
    public static func print(_ f: Function, elidingConstantsOver limit: Int) -> String { print(f, constantLimit: limit) }

    private static func print(_ f: Function, constantLimit: Int?) -> String {
        var s = "func @\(f.name)("
        s += f.params.enumerated().map { i, p in "%\(i): \(p.type) \(p.kind.rawValue) \(quote(Array(p.name.utf8)))" }
            .joined(separator: ", ")
        s += ") {\n"
        for inst in f.body { s += "  " + print(inst, constantLimit: constantLimit) + "\n" }
        s += "  return" + (f.results.isEmpty ? "" : " " + f.results.map { "%\($0)" }.joined(separator: ", ")) + "\n}\n"
        return s
    }

    public static func print(_ inst: Instruction) -> String { print(inst, constantLimit: nil) }

    private static func print(_ inst: Instruction, constantLimit: Int?) -> String {
        var s = "%\(inst.id) = \(inst.op.mnemonic)"
        if case .constant(let t) = inst.op {
            if let constantLimit, t.elementCount > constantLimit { return s + " \(TensorType(t.dtype, t.shape)) <\(t.elementCount) elements>" }
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
        case .iota(let d, let shape, let axis): s += " dtype=\(d.rawValue) shape=\(list(shape)) axis=\(axis)"
        case .slice(let start, let strides, let shape): s += " start=\(list(start)) strides=\(list(strides)) shape=\(list(shape))"
        case .pad(let low, let high, _): s += " low=\(list(low)) high=\(list(high))"
        case .concat(let axis): s += " axis=\(axis)"
        case .gather(let axis, let batchDims): s += " axis=\(axis) batch_dims=\(batchDims)"
        case .argReduce(_, let axis, let out): s += " axis=\(axis) output_type=\(out.rawValue)"
        case .reduceWindow(_, let window, let strides, let lo, let hi):
            s += " window=\(list(window)) strides=\(list(strides)) pad_low=\(list(lo)) pad_high=\(list(hi))"
        case .patches(let window, let strides, let dilations, let lo, let hi):
            s += " window=\(list(window)) strides=\(list(strides)) dilations=\(list(dilations)) pad_low=\(list(lo)) pad_high=\(list(hi))"
        case .unpatches(let window, let strides, let dilations, let lo, let hi, let image):
            s += " window=\(list(window)) strides=\(list(strides)) dilations=\(list(dilations)) pad_low=\(list(lo)) pad_high=\(list(hi)) image=\(list(image))"
        case .random(_, let d, let shape, let seed): s += " dtype=\(d.rawValue) shape=\(list(shape)) seed=\(seed)"
        case .check(let c):
            switch c.kind {
            case .index(let bounds): s += " bounds=\(list(bounds))"
            case .below(let n): s += " bound=\(n)"
            case .nonzero, .positive, .finite: break
            }
            s += " node=\(quote(Array(c.node.utf8))) op=\(quote(Array(c.opType.utf8))) message=\(quote(Array(c.message.utf8)))"
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
            case .float32: return float(p.load(fromByteOffset: i * 4, as: Float.self))
            case .float64: return float(p.load(fromByteOffset: i * 8, as: Double.self))
            // A half value is a float32 exactly, so its float32 spelling parses back to the same bits.
            case .float16, .bfloat16: return float(HalfFloat.float(p.load(fromByteOffset: i * 2, as: UInt16.self), t.dtype))
            case .string: return quote(t.strings[i])
            default: return t.dtype == .bool ? (t.double(at: i) != 0 ? "true" : "false") : "\(Int64(t.double(at: i)))"
            }
        }
        if t.dtype == .int64 {
            let v = (try? t.scalars(as: Int64.self)) ?? []   // the dtype was just checked
            return nest(t.shape) { "\(v[$0])" }
        }
        return nest(t.shape, element)
    }

    /// Swift's spelling of a NaN drops part of its payload, and Swift cannot read a signaling
    /// NaN's back, so NaNs are spelled here: [-][s]nan[(0xP)], P being the significand without
    /// the quiet bit. `Parser.float` reads it back.
    static func float<F: BinaryFloatingPoint>(_ x: F) -> String where F.RawSignificand: FixedWidthInteger {
        guard x.isNaN else { return "\(x)" }
        let payload = x.significandBitPattern & ~(F.RawSignificand(1) << (F.significandBitCount - 1))
        return (x.sign == .minus ? "-" : "") + (x.isSignalingNaN ? "s" : "") + "nan" + (payload == 0 ? "" : "(0x\(String(payload, radix: 16)))")
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
