import Foundation
import KilnIR

// Conversions between Kiln's frontend values and TensorFlow's protobuf messages (DataType,
// TensorShapeProto, AttrValue). Errors name only the value; the GraphDef importer adds the node
// and attribute they belong to.

extension Tensorflow_DataType {
    public init(_ dtype: DType) {
        switch dtype {
        case .float32: self = .dtFloat
        case .float64: self = .dtDouble
        case .int32: self = .dtInt32
        case .int64: self = .dtInt64
        case .bool: self = .dtBool
        case .uint8: self = .dtUint8
        case .int16: self = .dtInt16
        case .float16: self = .dtHalf
        case .bfloat16: self = .dtBfloat16
        case .string: self = .dtString
        }
    }

    /// The Kiln dtype, with `DT_*_REF` mapped to its base type; nil for types Kiln lacks.
    public var kilnDType: DType? {
        let base = rawValue > 100 ? (Tensorflow_DataType(rawValue: rawValue - 100) ?? self) : self
        switch base {
        case .dtFloat: return .float32
        case .dtDouble: return .float64
        case .dtInt32: return .int32
        case .dtInt64: return .int64
        case .dtBool: return .bool
        case .dtUint8: return .uint8
        case .dtInt16: return .int16
        case .dtHalf: return .float16
        case .dtBfloat16: return .bfloat16
        case .dtString: return .string
        default: return nil
        }
    }

    /// TensorFlow's spelling, for messages: "DT_HALF", or the number for values outside the enum.
    public var tensorflowName: String {
        let names = ["DT_INVALID", "DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_UINT8", "DT_INT16", "DT_INT8", "DT_STRING",
                     "DT_COMPLEX64", "DT_INT64", "DT_BOOL", "DT_QINT8", "DT_QUINT8", "DT_QINT32", "DT_BFLOAT16",
                     "DT_QINT16", "DT_QUINT16", "DT_UINT16", "DT_COMPLEX128", "DT_HALF", "DT_RESOURCE", "DT_VARIANT",
                     "DT_UINT32", "DT_UINT64", "DT_FLOAT8_E5M2", "DT_FLOAT8_E4M3FN"]
        let n = rawValue
        if names.indices.contains(n) { return names[n] }
        if n > 100, names.indices.contains(n - 100) { return names[n - 100] + "_REF" }
        return "DataType(\(n))"
    }

    /// The Kiln dtype or an unimplemented error naming the TensorFlow type.
    public func toKiln() throws -> DType {
        guard let d = kilnDType else {
            throw KilnError.unimplemented("\(tensorflowName) is not a dtype Kiln supports (it has float32, float64, float16, bfloat16, int32, int64, int16, bool, uint8, string)")
        }
        return d
    }
}

extension Shape {
    /// From a TensorShapeProto: `unknown_rank` gives an unknown shape, a size of -1 an unknown
    /// dimension.
    public init(proto: Tensorflow_TensorShapeProto) throws {
        if proto.unknownRank {
            self = .unknown
            return
        }
        var dims: [Int?] = []
        for d in proto.dim {
            if d.size == -1 { dims.append(nil); continue }
            guard d.size >= 0 else {
                throw KilnError.invalidArgument("invalid dimension \(d.size) in shape proto \(proto.dim.map(\.size))")
            }
            dims.append(Int(d.size))
        }
        self = Shape(dims: dims)
    }

    public var proto: Tensorflow_TensorShapeProto {
        var p = Tensorflow_TensorShapeProto()
        guard let dims else {
            p.unknownRank = true
            return p
        }
        p.dim = dims.map { d in
            var dim = Tensorflow_TensorShapeProto.Dim()
            dim.size = Int64(d ?? -1)
            return dim
        }
        return p
    }
}

extension AttrValue {
    /// From an AttrValue proto. A list's kind comes from whichever field holds values; an empty
    /// list (`list {}`) carries no kind, so it takes the kind of `emptyListLike` (the op's
    /// default for the attr) when given, else an empty int list.
    public init(proto: Tensorflow_AttrValue, emptyListLike: AttrValue? = nil) throws {
        guard let value = proto.value else {
            throw KilnError.invalidArgument("attribute value has no value set")
        }
        switch value {
        case .s(let bytes): self = .string(String(decoding: bytes, as: UTF8.self))
        case .i(let i): self = .int(Int(i))
        case .f(let f): self = .float(Double(f))
        case .b(let b): self = .bool(b)
        case .type(let t): self = .type(try t.toKiln())
        case .shape(let s): self = .shape(try Shape(proto: s))
        case .tensor(let t): self = .tensor(try Tensor(proto: t))
        case .placeholder(let name):
            throw KilnError.invalidArgument("attribute is a function-body placeholder ('\(name)'), which is only valid inside a FunctionDef")
        case .func(let f): self = try AttrValue(function: f)
        case .list(let l): self = try AttrValue(list: l, emptyListLike: emptyListLike)
        }
    }

    private init(function f: Tensorflow_NameAttrList) throws {
        var attrs: [String: AttrValue] = [:]
        for (k, v) in f.attr { attrs[k] = try AttrValue(proto: v) }
        self = .function(name: f.name, attrs: attrs)
    }

    private init(list l: Tensorflow_AttrValue.ListValue, emptyListLike: AttrValue?) throws {
        var kinds: [String] = []
        if !l.s.isEmpty { kinds.append("s") }
        if !l.i.isEmpty { kinds.append("i") }
        if !l.f.isEmpty { kinds.append("f") }
        if !l.b.isEmpty { kinds.append("b") }
        if !l.type.isEmpty { kinds.append("type") }
        if !l.shape.isEmpty { kinds.append("shape") }
        if !l.tensor.isEmpty { kinds.append("tensor") }
        if !l.func.isEmpty { kinds.append("func") }
        guard kinds.count <= 1 else {
            throw KilnError.invalidArgument("attribute list mixes value kinds (\(kinds.joined(separator: ", ")))")
        }
        switch kinds.first {
        case "s": self = .strings(l.s.map { String(decoding: $0, as: UTF8.self) })
        case "i": self = .ints(l.i.map { Int($0) })
        case "f": self = .floats(l.f.map(Double.init))
        case "b": self = .bools(l.b)
        case "type": self = .types(try l.type.map { try $0.toKiln() })
        case "shape": self = .shapes(try l.shape.map(Shape.init(proto:)))
        case "tensor":
            throw KilnError.unimplemented("list(tensor) attributes are not supported by Kiln")
        case "func":
            throw KilnError.unimplemented("list(func) attributes are not supported by Kiln")
        default:
            switch emptyListLike {
            case .strings?: self = .strings([])
            case .floats?: self = .floats([])
            case .bools?: self = .bools([])
            case .types?: self = .types([])
            case .shapes?: self = .shapes([])
            default: self = .ints([])
            }
        }
    }

    public var proto: Tensorflow_AttrValue {
        var p = Tensorflow_AttrValue()
        var list = Tensorflow_AttrValue.ListValue()
        switch self {
        case .int(let v): p.i = Int64(v)
        case .float(let v): p.f = Float(v)
        case .bool(let v): p.b = v
        case .string(let v): p.s = Data(v.utf8)
        case .type(let v): p.type = Tensorflow_DataType(v)
        case .shape(let v): p.shape = v.proto
        case .tensor(let v): p.tensor = v.proto
        case .function(let name, let attrs):
            var f = Tensorflow_NameAttrList()
            f.name = name
            f.attr = attrs.mapValues(\.proto)
            p.func = f
        case .ints(let v): list.i = v.map { Int64($0) }; p.list = list
        case .floats(let v): list.f = v.map { Float($0) }; p.list = list
        case .bools(let v): list.b = v; p.list = list
        case .strings(let v): list.s = v.map { Data($0.utf8) }; p.list = list
        case .types(let v): list.type = v.map { Tensorflow_DataType($0) }; p.list = list
        case .shapes(let v): list.shape = v.map(\.proto); p.list = list
        }
        return p
    }
}
