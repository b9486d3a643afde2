/// Reads the textual IR that `Printer` writes. Type annotations after `:` are optional (shape
/// inference fills them in); errors name the line and column.
public struct Parser {
    enum Token: Equatable {
        case value(Int)          // %3
        case global(String)      // @main
        case word(String)        // add, f32, transpose_a, reduce.sum, true
        case number(String)      // -1.5e3, 7, nan, inf
        case string([UInt8])
        case punct(Character)
        case end
    }

    private var tokens: [(Token, Int, Int)] = []
    private var pos = 0

    public static func parse(_ text: String) throws -> Function {
        var p = Parser()
        p.tokens = try Parser.lex(text)
        return try p.function()
    }

    // MARK: lexing

    static func lex(_ text: String) throws -> [(Token, Int, Int)] {
        let b = Array(text.utf8)
        var out: [(Token, Int, Int)] = []
        var i = 0, line = 1, lineStart = 0
        func isWord(_ c: UInt8) -> Bool {
            (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c == 95 || c == 46
        }
        // Swift prints a NaN with a payload as `nan(0x1)`; the payload belongs to the number.
        func nanPayloadEnd(_ j: Int) -> Int {
            guard j < b.count, b[j] == UInt8(ascii: "("), j >= 3, b[(j - 3)..<j].elementsEqual("nan".utf8) else { return j }
            var k = j + 1
            while k < b.count && isWord(b[k]) { k += 1 }
            return k < b.count && b[k] == UInt8(ascii: ")") ? k + 1 : j
        }
        while i < b.count {
            let c = b[i], col = i - lineStart + 1
            if c == 10 { line += 1; i += 1; lineStart = i; continue }
            if c == 32 || c == 9 || c == 13 { i += 1; continue }
            if c == UInt8(ascii: "#") { while i < b.count && b[i] != 10 { i += 1 }; continue }
            if c == UInt8(ascii: "%") || c == UInt8(ascii: "@") {
                var j = i + 1
                while j < b.count && isWord(b[j]) { j += 1 }
                let name = String(decoding: b[(i + 1)..<j], as: UTF8.self)
                if c == UInt8(ascii: "@") { out.append((.global(name), line, col)) } else {
                    guard let n = Int(name) else { throw err(line, col, "bad value name %\(name)") }
                    out.append((.value(n), line, col))
                }
                i = j
            } else if c == UInt8(ascii: "\"") {
                var bytes: [UInt8] = []
                var j = i + 1
                let startLine = line
                while true {
                    guard j < b.count else { throw err(startLine, col, "unterminated string") }
                    if b[j] == UInt8(ascii: "\"") { break }
                    if b[j] == 10 { line += 1; lineStart = j + 1 }
                    if b[j] == UInt8(ascii: "\\"), j + 1 < b.count {
                        if b[j + 1] == UInt8(ascii: "x"), j + 3 < b.count,
                           let v = UInt8(String(decoding: b[(j + 2)...(j + 3)], as: UTF8.self), radix: 16) {
                            bytes.append(v); j += 4
                        } else { bytes.append(b[j + 1]); j += 2 }
                    } else { bytes.append(b[j]); j += 1 }
                }
                out.append((.string(bytes), startLine, col))
                i = j + 1
            } else if (c >= 48 && c <= 57) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
                var j = i + 1
                while j < b.count && (isWord(b[j]) || ((b[j] == 45 || b[j] == 43) && (b[j - 1] == 101 || b[j - 1] == 69))) { j += 1 }
                j = nanPayloadEnd(j)
                out.append((.number(String(decoding: b[i..<j], as: UTF8.self)), line, col))
                i = j
            } else if isWord(c) {
                var j = i
                while j < b.count && isWord(b[j]) { j += 1 }
                j = nanPayloadEnd(j)
                out.append((.word(String(decoding: b[i..<j], as: UTF8.self)), line, col))
                i = j
            } else if "()[]{},:=".utf8.contains(c) {
                out.append((.punct(Character(Unicode.Scalar(c))), line, col))
                i += 1
            } else {
                throw err(line, col, "unexpected character '\(Character(Unicode.Scalar(c)))'")
            }
        }
        out.append((.end, line, i - lineStart + 1))
        return out
    }

    static func err(_ line: Int, _ col: Int, _ m: String) -> KilnError {
        KilnError.invalidArgument("IR parse error at \(line):\(col): \(m)")
    }

    // MARK: grammar

    /// The token at `p`; past the end it is the end token, so truncated text fails cleanly.
    private func token(_ p: Int) -> (Token, Int, Int) { tokens[min(p, tokens.count - 1)] }

    private var peek: Token { token(pos).0 }

    private func fail(_ m: String) -> KilnError { fail(at: pos, m) }

    private func fail(at p: Int, _ m: String) -> KilnError {
        Parser.err(token(p).1, token(p).2, m)
    }

    private mutating func next() -> Token {
        defer { pos += 1 }
        return token(pos).0
    }

    private mutating func expect(_ c: Character) throws {
        guard peek == .punct(c) else { throw fail("expected '\(c)'") }
        pos += 1
    }

    private mutating func consume(_ c: Character) -> Bool {
        if peek == .punct(c) { pos += 1; return true }
        return false
    }

    private mutating func word() throws -> String {
        guard case .word(let w) = next() else { pos -= 1; throw fail("expected a name") }
        return w
    }

    private mutating func value() throws -> Int {
        guard case .value(let v) = next() else { pos -= 1; throw fail("expected a %value") }
        return v
    }

    private mutating func integer() throws -> Int {
        guard case .number(let s) = next(), let v = Int(s) else { pos -= 1; throw fail("expected an integer") }
        return v
    }

    private mutating func intList() throws -> [Int] {
        try expect("[")
        var v: [Int] = []
        if consume("]") { return v }
        repeat { v.append(try integer()) } while consume(",")
        try expect("]")
        return v
    }

    private mutating func type() throws -> TensorType {
        let name = try word()
        guard let d = DType(rawValue: name) else { pos -= 1; throw fail("unknown element type '\(name)'") }
        return TensorType(d, try intList())
    }

    mutating func function() throws -> Function {
        guard case .word("func") = next() else { pos -= 1; throw fail("expected 'func'") }
        guard case .global(let name) = next() else { pos -= 1; throw fail("expected @name") }
        var f = Function(name: name)
        try expect("(")
        if !consume(")") {
            repeat {
                let id = try value()
                guard id == f.params.count else { pos -= 1; throw fail("parameters must be numbered %0, %1, ... in order") }
                try expect(":")
                let t = try type()
                let kindWord = try word()
                guard let kind = Param.Kind(rawValue: kindWord) else { pos -= 1; throw fail("parameter kind must be feed or var") }
                guard case .string(let n) = next() else { pos -= 1; throw fail("expected the parameter's name") }
                f.params.append(Param(name: String(decoding: n, as: UTF8.self), kind: kind, type: t))
            } while consume(",")
            try expect(")")
        }
        try expect("{")
        while true {
            if case .word("return") = peek {
                pos += 1
                if case .value = peek {
                    repeat { f.results.append(try value()) } while consume(",")
                }
                try expect("}")
                break
            }
            f.body.append(try instruction())
        }
        guard peek == .end else { throw fail("text after the end of the function") }
        return f
    }

    mutating func instruction() throws -> Instruction {
        let id = try value()
        try expect("=")
        let opAt = pos
        let m = try word()
        if m == "constant" {
            let t = try type()
            let tensor = try literal(t)
            return Instruction(id: id, op: .constant(tensor), operands: [], type: t)
        }
        var operands: [Int] = []
        if case .value = peek {
            repeat { operands.append(try value()) } while consume(",")
        }
        var attrs: [String: Token] = [:]
        var lists: [String: [Int]] = [:]
        while case .word(let key) = peek, tokens[pos + 1].0 == .punct("=") {
            pos += 1
            try expect("=")
            if peek == .punct("[") { lists[key] = try intList() } else { attrs[key] = next() }
        }
        func list(_ k: String) throws -> [Int] {
            guard let v = lists[k] else { throw fail(at: opAt, "\(m) needs \(k)=[...]") }
            return v
        }
        func flag(_ k: String) -> Bool { attrs[k] == .word("true") }
        func int(_ k: String) throws -> Int {
            guard case .number(let s)? = attrs[k], let v = Int(s) else { throw fail(at: opAt, "\(m) needs \(k)=<integer>") }
            return v
        }
        func dtype(_ k: String) throws -> DType {
            guard case .word(let d)? = attrs[k], let dt = DType(rawValue: d) else { throw fail(at: opAt, "\(m) needs \(k)=<type>") }
            return dt
        }
        let op: Op
        if let u = UnaryOp(rawValue: m) { op = .unary(u) }
        else if let b = BinaryOp(rawValue: m) { op = .binary(b) }
        else if let c = CompareOp(rawValue: m) { op = .compare(c) }
        else if m.hasPrefix("reduce."), let r = ReduceOp(rawValue: String(m.dropFirst(7))) { op = .reduce(r, axes: try list("axes")) }
        else if m.hasPrefix("reduce_window."), let r = ReduceOp(rawValue: String(m.dropFirst(14))) {
            op = .reduceWindow(r, window: try list("window"), strides: try list("strides"), padLow: try list("pad_low"), padHigh: try list("pad_high"))
        }
        else if m.hasPrefix("pad."), let mode = PadMode(rawValue: String(m.dropFirst(4))) { op = .pad(low: try list("low"), high: try list("high"), mode: mode) }
        else if m.hasPrefix("random."), let k = RandomKind(rawValue: String(m.dropFirst(7))) {
            guard case .number(let s)? = attrs["seed"], let seed = UInt64(s) else { throw fail(at: opAt, "\(m) needs seed=<integer>") }
            op = .random(k, dtype: try dtype("dtype"), shape: try list("shape"), seed: seed)
        }
        else if m.hasPrefix("check.") {
            func text(_ k: String) throws -> String {
                guard case .string(let v)? = attrs[k] else { throw fail(at: opAt, "\(m) needs \(k)=\"...\"") }
                return String(decoding: v, as: UTF8.self)
            }
            let kind: Check.Kind
            switch m.dropFirst(6) {
            case "index": kind = .index(bounds: try list("bounds"))
            case "below": kind = .below(try int("bound"))
            case "nonzero": kind = .nonzero
            case "positive": kind = .positive
            case "finite": kind = .finite
            default: throw fail(at: opAt, "unknown op '\(m)'")
            }
            op = .check(Check(kind, node: try text("node"), opType: try text("op"), message: try text("message")))
        }
        else if let a = ArgReduceOp(rawValue: m) { op = .argReduce(a, axis: try int("axis"), outType: try dtype("output_type")) }
        else {
            switch m {
            case "select": op = .select
            case "cast":
                guard case .word(let d)? = attrs["to"], let dt = DType(rawValue: d) else { throw fail(at: opAt, "cast needs to=<type>") }
                op = .cast(dt)
            case "broadcast": op = .broadcast(shape: try list("shape"), dims: try list("dims"))
            case "reshape": op = .reshape(shape: try list("shape"))
            case "transpose": op = .transpose(perm: try list("perm"))
            case "dot": op = .dot(transposeA: flag("transpose_a"), transposeB: flag("transpose_b"))
            case "iota": op = .iota(dtype: try dtype("dtype"), shape: try list("shape"), axis: try int("axis"))
            case "slice": op = .slice(start: try list("start"), strides: try list("strides"), shape: try list("shape"))
            case "concat": op = .concat(axis: try int("axis"))
            case "gather": op = .gather(axis: try int("axis"), batchDims: try int("batch_dims"))
            case "patches":
                op = .patches(window: try list("window"), strides: try list("strides"), dilations: try list("dilations"),
                              padLow: try list("pad_low"), padHigh: try list("pad_high"))
            case "unpatches":
                op = .unpatches(window: try list("window"), strides: try list("strides"), dilations: try list("dilations"),
                                padLow: try list("pad_low"), padHigh: try list("pad_high"), image: try list("image"))
            case "var.read": op = .varRead
            case "var.write": op = .varWrite
            default: throw fail(at: opAt, "unknown op '\(m)'")
            }
        }
        var t: TensorType? = nil
        if consume(":") { t = try type() }
        return Instruction(id: id, op: op, operands: operands, type: t)
    }

    /// A float as `Printer.float` spells it: Swift's spelling, or a NaN with its payload.
    static func float<F: BinaryFloatingPoint & LosslessStringConvertible>(_ s: String, as _: F.Type) -> F?
    where F.RawSignificand: FixedWidthInteger {
        var t = Substring(s)
        let sign: FloatingPointSign = t.first == "-" ? .minus : .plus
        if t.first == "-" || t.first == "+" { t = t.dropFirst() }
        let signaling = t.hasPrefix("snan(")
        if signaling { t = t.dropFirst() }
        guard t.hasPrefix("nan(0x"), t.hasSuffix(")"), let payload = F.RawSignificand(t.dropFirst(6).dropLast(), radix: 16) else { return F(s) }
        let quiet = F.RawSignificand(1) << (F.significandBitCount - 1)
        guard payload != 0, payload < quiet else { return nil }
        return F(sign: sign, exponentBitPattern: F.RawExponent((1 << F.exponentBitCount) - 1),
                 significandBitPattern: (signaling ? 0 : quiet) | payload)
    }

    mutating func literal(_ t: TensorType) throws -> Tensor {
        var scalars: [Token] = []
        var scalarAt: [Int] = []
        func nested(_ dim: Int) throws {
            if dim == t.rank { scalarAt.append(pos); scalars.append(next()); return }
            let open = pos
            try expect("[")
            var n = 0
            if !consume("]") {
                repeat { try nested(dim + 1); n += 1 } while consume(",")
                try expect("]")
            }
            if n != t.shape[dim] { throw fail(at: open, "constant has \(n) elements in dimension \(dim), type says \(t.shape[dim])") }
        }
        try nested(0)
        if t.dtype == .string {
            let s = try zip(scalars, scalarAt).map { tok, at -> [UInt8] in
                guard case .string(let v) = tok else { throw fail(at: at, "expected a string element") }
                return v
            }
            return try Tensor(shape: t.shape, strings: s)
        }
        var out = try Tensor(zeros: t.dtype, shape: t.shape)
        for (i, tok) in scalars.enumerated() {
            let at = scalarAt[i]
            let v: ScalarValue
            switch (tok, t.dtype) {
            case (.word("true"), .bool): v = .b(true)
            case (.word("false"), .bool): v = .b(false)
            case (.number(let s), .float32), (.word(let s), .float32):
                guard let x = Parser.float(s, as: Float.self) else { throw fail(at: at, "bad f32 literal '\(s)'") }
                try out.withUnsafeMutableBytes { $0.storeBytes(of: x, toByteOffset: i * 4, as: Float.self) }
                continue
            case (.number(let s), .float16), (.word(let s), .float16), (.number(let s), .bfloat16), (.word(let s), .bfloat16):
                guard let x = Parser.float(s, as: Float.self) else { throw fail(at: at, "bad \(t.dtype.rawValue) literal '\(s)'") }
                v = .f(Double(x))
            case (.number(let s), .float64), (.word(let s), .float64):
                guard let x = Parser.float(s, as: Double.self) else { throw fail(at: at, "bad f64 literal '\(s)'") }
                v = .f(x)
            case (.number(let s), _):
                guard let x = Int64(s) else { throw fail(at: at, "bad \(t.dtype.rawValue) literal '\(s)'") }
                let fits: Bool
                switch t.dtype {
                case .int32: fits = Int32(exactly: x) != nil
                case .uint8: fits = UInt8(exactly: x) != nil
                case .int16: fits = Int16(exactly: x) != nil
                case .int64: fits = true
                default: fits = false
                }
                guard fits else { throw fail(at: at, "\(s) does not fit in \(t.dtype.rawValue)") }
                v = .i(x)
            default: throw fail(at: at, "bad \(t.dtype.rawValue) literal")
            }
            try out.setElement(v, at: i)
        }
        return out
    }
}
