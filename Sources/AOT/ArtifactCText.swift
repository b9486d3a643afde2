import KilnIR

/// Spellings the header, the C file and the Swift wrapper share: C literals, comments and the
/// facts about a tensor's type that C and Swift callers see.
enum ArtifactCText {
    /// `text` as a C string literal: printable ASCII as is, quotes and backslashes escaped, a `?`
    /// after a `?` escaped (C99 still reads `??/` as a trigraph), anything else as octal bytes
    /// (UTF-8), so the literal holds exactly `text`'s bytes whatever the compiler's charset.
    static func stringLiteral(_ text: String) -> String {
        var out = "\""
        var previous: UInt8 = 0
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += "\\\""
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "?") where previous == UInt8(ascii: "?"): out += "\\?"
            case 0x20...0x7e: out.append(Character(Unicode.Scalar(b)))
            default:
                let octal = String(b, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - octal.count) + octal
            }
            previous = b
        }
        return out + "\""
    }

    /// `text` safe inside a `/* */` comment on one line: no `*/`, no line breaks, no control bytes.
    static func commentText(_ text: String) -> String {
        var s = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : Character($0) })
        while s.contains("*/") { s = s.replacing("*/", with: "* /") }
        return s
    }

    /// TensorFlow's DataType enum value (types.proto): what `NAME_FEEDk_DTYPE` holds.
    static func dataType(_ t: DType) -> Int {
        switch t {
        case .float32: return 1
        case .float64: return 2
        case .int32: return 3
        case .uint8: return 4
        case .int16: return 5
        case .bfloat16: return 14
        case .float16: return 19
        case .string: return 7
        case .int64: return 9
        case .bool: return 10
        }
    }

    /// `float32[1,784]`, `int32[]` for a scalar.
    static func signature(_ t: TensorType) -> String {
        "\(t.dtype.name)[\(t.shape.map(String.init).joined(separator: ","))]"
    }

    /// The artifact name upper-cased, the prefix of every macro (`MNIST_FEED0_BYTES`).
    static func macroPrefix(_ layout: ArtifactLayout) -> String { layout.spec.name.uppercased() }

    /// Feeds and fetches a caller passes must be dense tensors of these types.
    static func checkPassable(_ layout: ArtifactLayout) throws {
        for (what, tensors) in [("feed", layout.spec.feeds), ("fetch", layout.spec.fetches)] {
            for t in tensors where t.type.dtype == .string {
                throw KilnError.invalidArgument("\(what) '\(t.name)' is a string tensor: an artifact passes only dense numeric and bool tensors")
            }
        }
    }
}
