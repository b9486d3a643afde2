/// A static shape as the graph knows it: the rank may be unknown (`dims == nil`) and each
/// dimension may be unknown (`nil`). IR values always have fully known shapes; this type is what
/// the frontend reasons with before feeds make shapes concrete.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dims: [Int?]?

    public init(_ dims: [Int]) { self.dims = dims.map { $0 } }
    public init(dims: [Int?]?) { self.dims = dims }
    public init(arrayLiteral elements: Int?...) { self.dims = elements }

    public static let unknown = Shape(dims: nil)
    public static let scalar = Shape([])

    public var rank: Int? { dims?.count }
    public var isFullyDefined: Bool { dims.map { $0.allSatisfy { $0 != nil } } ?? false }
    /// The dimensions when every one is known.
    public var concrete: [Int]? { isFullyDefined ? dims!.map { $0! } : nil }
    /// nil when a dimension is unknown or the product overflows.
    public var elementCount: Int? { concrete.flatMap { Sizes.product($0) } }

    /// True when some concrete shape could satisfy both.
    public func isCompatible(with other: Shape) -> Bool {
        guard let a = dims, let b = other.dims else { return true }
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { x, y in x == nil || y == nil || x == y }
    }

    /// Whether a value of the concrete shape `dims` fits: `isCompatible(with: Shape(dims))`
    /// without making a Shape (a host pass checks every value it is given).
    public func admits(_ dims: [Int]) -> Bool {
        guard let mine = self.dims else { return true }
        guard mine.count == dims.count else { return false }
        for (x, y) in zip(mine, dims) where x != nil && x != y { return false }
        return true
    }

    /// The most specific shape compatible with both, or nil if they conflict.
    public func merged(with other: Shape) -> Shape? {
        guard let a = dims else { return other }
        guard let b = other.dims else { return self }
        guard a.count == b.count else { return nil }
        var out: [Int?] = []
        for (x, y) in zip(a, b) {
            if let x, let y, x != y { return nil }
            out.append(x ?? y)
        }
        return Shape(dims: out)
    }

    /// TensorFlow's spelling: `[2,?,3]`, `[]` for a scalar, `<unknown>` for unknown rank.
    public var description: String {
        guard let dims else { return "<unknown>" }
        return "[" + dims.map { $0.map(String.init) ?? "?" }.joined(separator: ",") + "]"
    }
}
