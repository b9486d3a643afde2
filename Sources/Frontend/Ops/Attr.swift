import KilnIR

/// A value an attribute can hold, typed: `Attr<Double>` reads `.float`, `Attr<Int>` reads `.int`.
public protocol AttrValueConvertible: Sendable {
    init?(attrValue: AttrValue)
    var attrValue: AttrValue { get }
}

extension Double: AttrValueConvertible {
    public init?(attrValue: AttrValue) { guard let v = attrValue.float else { return nil }; self = v }
    public var attrValue: AttrValue { .float(self) }
}
extension Int: AttrValueConvertible {
    public init?(attrValue: AttrValue) { guard let v = attrValue.int else { return nil }; self = v }
    public var attrValue: AttrValue { .int(self) }
}
extension Bool: AttrValueConvertible {
    public init?(attrValue: AttrValue) { guard let v = attrValue.bool else { return nil }; self = v }
    public var attrValue: AttrValue { .bool(self) }
}
extension String: AttrValueConvertible {
    public init?(attrValue: AttrValue) { guard let v = attrValue.string else { return nil }; self = v }
    public var attrValue: AttrValue { .string(self) }
}
extension DType: AttrValueConvertible {
    public init?(attrValue: AttrValue) { guard let v = attrValue.type else { return nil }; self = v }
    public var attrValue: AttrValue { .type(self) }
}
extension Shape: AttrValueConvertible {
    public init?(attrValue: AttrValue) { guard let v = attrValue.shape else { return nil }; self = v }
    public var attrValue: AttrValue { .shape(self) }
}
/// An element of a list attribute (`Attr<[Int]>`, `Attr<[String]>`, ...).
public protocol AttrListElement: Sendable {
    static func list(_ attrValue: AttrValue) -> [Self]?
    static func attrValue(_ list: [Self]) -> AttrValue
}
extension Int: AttrListElement {
    public static func list(_ v: AttrValue) -> [Int]? { v.ints }
    public static func attrValue(_ l: [Int]) -> AttrValue { .ints(l) }
}
extension String: AttrListElement {
    public static func list(_ v: AttrValue) -> [String]? { v.stringList }
    public static func attrValue(_ l: [String]) -> AttrValue { .strings(l) }
}
extension DType: AttrListElement {
    public static func list(_ v: AttrValue) -> [DType]? { if case .types(let l) = v { return l }; return nil }
    public static func attrValue(_ l: [DType]) -> AttrValue { .types(l) }
}
extension Array: AttrValueConvertible where Element: AttrListElement {
    public init?(attrValue: AttrValue) { guard let v = Element.list(attrValue) else { return nil }; self = v }
    public var attrValue: AttrValue { Element.attrValue(self) }
}

/// An attribute an op declares, untyped: what its entry stores and the GraphDef importer fills in.
public protocol AttrDeclaration: Sendable {
    var name: String { get }
    var defaultAttrValue: AttrValue { get }
}

/// A typed attribute of an op with its default, declared once next to the op's entry
/// (`static let alpha = Attr<Double>("alpha", default: 0.2)`). The entry lists it, so nodes
/// built or imported without it get the default; shape functions, lowerings, gradients and the
/// host read it as `attrs[alpha]`; the Swift API takes `alpha.defaultValue` as its parameter's
/// default. Changing the default is then one edit.
public struct Attr<Value: AttrValueConvertible>: AttrDeclaration {
    public let name: String
    public let defaultValue: Value

    public init(_ name: String, default defaultValue: Value) {
        self.name = name
        self.defaultValue = defaultValue
    }

    public var defaultAttrValue: AttrValue { defaultValue.attrValue }

    /// The attribute set to `value`, as node attributes: `apply("LeakyRelu", [x], attrs: alpha(0.3))`.
    public func callAsFunction(_ value: Value) -> [String: AttrValue] { [name: value.attrValue] }
}

extension Dictionary where Key == String, Value == AttrValue {
    /// The typed value of `attr` in a node's attributes; its declared default when absent (or of
    /// another kind, which the importer's checks and the builders' types rule out).
    public subscript<T>(_ attr: Attr<T>) -> T { self[attr.name].flatMap(T.init(attrValue:)) ?? attr.defaultValue }

    /// Both sets of attributes (the right one's value where both have a name): `alpha(a) + ["T": .type(d)]`.
    public static func + (lhs: Self, rhs: Self) -> Self { lhs.merging(rhs) { $1 } }
}
