/// Element types. Raw values are the short names used by the textual IR.
public enum DType: String, CaseIterable, Hashable, Sendable, CustomStringConvertible {
    case float32 = "f32", float64 = "f64", int32 = "i32", int64 = "i64", int16 = "i16", bool, uint8 = "u8", string = "str"
    /// IEEE half precision and the brain float (float32's exponent, 7 mantissa bits): storage
    /// types. Arithmetic on them computes in float32 and rounds each op's result, as TensorFlow's
    /// kernels do (see HalfPrecisionPass).
    case float16 = "f16", bfloat16 = "bf16"

    /// Bytes per element in a dense buffer; strings are stored out of line.
    public var byteSize: Int {
        switch self {
        case .float32, .int32: return 4
        case .float64, .int64: return 8
        case .int16, .float16, .bfloat16: return 2
        case .bool, .uint8: return 1
        case .string: return 0
        }
    }

    public var isFloatingPoint: Bool { self == .float32 || self == .float64 || isHalf }
    /// float16 or bfloat16: 16-bit storage whose arithmetic computes in float32.
    public var isHalf: Bool { self == .float16 || self == .bfloat16 }
    public var isInteger: Bool { self == .int32 || self == .int64 || self == .int16 || self == .uint8 }
    public var isSignedInteger: Bool { self == .int32 || self == .int64 || self == .int16 }
    public var isNumeric: Bool { isFloatingPoint || isInteger }

    /// TensorFlow's Python name, used in user-facing messages.
    public var name: String {
        switch self {
        case .float32: return "float32"
        case .float64: return "float64"
        case .int32: return "int32"
        case .int64: return "int64"
        case .int16: return "int16"
        case .bool: return "bool"
        case .uint8: return "uint8"
        case .string: return "string"
        case .float16: return "float16"
        case .bfloat16: return "bfloat16"
        }
    }

    public var description: String { name }

    public init?(name: String) {
        if name == "half" { self = .float16; return }
        guard let t = DType.allCases.first(where: { $0.name == name || $0.rawValue == name }) else { return nil }
        self = t
    }
}

/// Swift scalar types that can live in a Tensor.
public protocol TensorScalar: Sendable, Equatable {
    static var dtype: DType { get }
    /// Conversion used when a Swift literal meets a tensor of another dtype.
    init(converting value: Double)
    var asDouble: Double { get }
}

extension Float: TensorScalar {
    public static var dtype: DType { .float32 }
    public init(converting v: Double) { self = Float(v) }
    public var asDouble: Double { Double(self) }
}
extension Double: TensorScalar {
    public static var dtype: DType { .float64 }
    public init(converting v: Double) { self = v }
    public var asDouble: Double { self }
}
extension Int32: TensorScalar {
    public static var dtype: DType { .int32 }
    public init(converting v: Double) { self = Int32(v) }
    public var asDouble: Double { Double(self) }
}
extension Int64: TensorScalar {
    public static var dtype: DType { .int64 }
    public init(converting v: Double) { self = Int64(v) }
    public var asDouble: Double { Double(self) }
}
extension Float16: TensorScalar {
    public static var dtype: DType { .float16 }
    /// Through float32, as TensorFlow converts a double to half (Eigen's half(double)).
    public init(converting v: Double) { self = Float16(Float(v)) }
    public var asDouble: Double { Double(self) }
}
extension BFloat16: TensorScalar {
    public static var dtype: DType { .bfloat16 }
    public init(converting v: Double) { self = BFloat16(Float(v)) }
    public var asDouble: Double { Double(Float(self)) }
}
extension Int16: TensorScalar {
    public static var dtype: DType { .int16 }
    public init(converting v: Double) { self = Int16(v) }
    public var asDouble: Double { Double(self) }
}
extension UInt8: TensorScalar {
    public static var dtype: DType { .uint8 }
    public init(converting v: Double) { self = UInt8(v) }
    public var asDouble: Double { Double(self) }
}
extension Bool: TensorScalar {
    public static var dtype: DType { .bool }
    public init(converting v: Double) { self = v != 0 }
    public var asDouble: Double { self ? 1 : 0 }
}
