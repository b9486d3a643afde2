/// A 64-byte aligned, reference-counted block of memory. Tensors share it copy-on-write; the
/// runtime hands its pointer straight to compiled code.
public final class TensorBuffer: @unchecked Sendable {
    public static let alignment = 64
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    /// Memory the system cannot give is a resourceExhausted error, never a trap (Swift's own
    /// allocator aborts the process).
    public init(byteCount: Int) throws {
        guard byteCount >= 0 else { throw KilnError.invalidArgument("cannot allocate a buffer of \(byteCount) bytes") }
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, Self.alignment, max(byteCount, 1)) == 0, let p else {
            throw KilnError.resourceExhausted("OOM when allocating a host tensor buffer of \(byteCount) bytes")
        }
        self.byteCount = byteCount
        pointer = p
    }

    public convenience init(zeroed byteCount: Int) throws {
        try self.init(byteCount: byteCount)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    public func copy() throws -> TensorBuffer {
        let b = try TensorBuffer(byteCount: byteCount)
        b.pointer.copyMemory(from: pointer, byteCount: byteCount)
        return b
    }

    deinit { free(pointer) }
}

/// A concrete host tensor: dtype, fully known shape and row-major data.
public struct Tensor: Sendable, CustomStringConvertible {
    public let dtype: DType
    public let shape: [Int]
    public private(set) var buffer: TensorBuffer
    /// Elements of a string tensor (bytes, as TensorFlow's strings are); empty otherwise.
    public private(set) var strings: TensorStrings

    /// A tensor exists only with a shape whose size fits (every initialiser checks), so these are exact.
    public var elementCount: Int { Sizes.product(shape) ?? Int.max }
    public var rank: Int { shape.count }
    public var byteCount: Int { Sizes.bytes(elementCount, dtype) ?? Int.max }

    /// The element count of `shape`, or an invalidArgument error when a dimension is negative or
    /// the count (or its bytes) overflows.
    public static func checkedCount(_ shape: [Int], _ dtype: DType) throws -> Int {
        guard let n = Sizes.product(shape), Sizes.bytes(n, dtype) != nil else {
            throw KilnError.invalidArgument("a tensor of shape \(shape) and type \(dtype.name) is impossible: \(shape.contains { $0 < 0 } ? "a dimension is negative" : "its size overflows")")
        }
        return n
    }

    /// Wraps an existing buffer, which must hold `shape`'s elements.
    public init(dtype: DType, shape: [Int], buffer: TensorBuffer) throws {
        guard dtype != .string else { throw KilnError.invalidArgument("string tensors hold their elements in `strings`, not a buffer") }
        let n = try Tensor.checkedCount(shape, dtype)
        guard buffer.byteCount >= n * dtype.byteSize else {
            throw KilnError.invalidArgument("a buffer of \(buffer.byteCount) bytes cannot hold a \(dtype.name) tensor of shape \(shape)")
        }
        self.dtype = dtype
        self.shape = shape
        self.buffer = buffer
        self.strings = TensorStrings()
    }

    /// A tensor of zeros (empty strings for `.string`).
    public init(zeros dtype: DType, shape: [Int]) throws {
        let n = try Tensor.checkedCount(shape, dtype)
        self.dtype = dtype
        self.shape = shape
        self.buffer = try TensorBuffer(zeroed: n * dtype.byteSize)
        self.strings = TensorStrings(empty: dtype == .string ? n : 0)
    }

    public init<T: TensorScalar>(shape: [Int], scalars: [T]) throws {
        let n = try Tensor.checkedCount(shape, T.dtype)
        guard n == scalars.count else {
            throw KilnError.invalidArgument("shape \(shape) needs \(n) elements, got \(scalars.count)")
        }
        self.dtype = T.dtype
        self.shape = shape
        self.buffer = try TensorBuffer(byteCount: scalars.count * T.dtype.byteSize)
        self.strings = TensorStrings()
        scalars.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// A scalar. Its 64-byte buffer is the one allocation Kiln does not check: a process that
    /// cannot get 64 bytes cannot report an error either.
    public init<T: TensorScalar>(_ scalar: T) {
        self = try! Tensor(shape: [], scalars: [scalar])
    }

    public init(shape: [Int], strings: TensorStrings) throws {
        let n = try Tensor.checkedCount(shape, .string)
        guard n == strings.count else { throw KilnError.invalidArgument("shape \(shape) needs \(n) strings, got \(strings.count)") }
        self.dtype = .string
        self.shape = shape
        self.buffer = try TensorBuffer(byteCount: 0)
        self.strings = strings
    }

    /// From each element's bytes (arrays, slices, UTF-8 views).
    public init<S: Sequence>(shape: [Int], strings: S) throws where S.Element: Collection, S.Element.Element == UInt8 {
        try self.init(shape: shape, strings: TensorStrings(strings))
    }

    public init(_ string: String) {
        self = try! Tensor(shape: [], strings: [Array(string.utf8)])
    }

    /// From a (possibly nested) Swift array such as `[[1, 2], [3, 4]] as [[Float]]`.
    /// Ragged nesting is an invalidArgument error.
    public init<L: TensorLiteral>(literal: L) throws {
        var scalars: [L.Scalar] = []
        let shape = literal.literalShape
        try literal.appendScalars(to: &scalars, expecting: shape[...])
        try self.init(shape: shape, scalars: scalars)
    }

    /// `literal` converted to `dtype`, as TensorFlow converts Python values for a given dtype.
    public init<L: TensorLiteral>(literal: L, dtype: DType) throws {
        let t = try Tensor(literal: literal)
        self = dtype == t.dtype ? t : try t.converted(to: dtype)
    }

    /// The elements, which must be of type T (else an invalidArgument error).
    public func scalars<T: TensorScalar>(as _: T.Type = T.self) throws -> [T] {
        guard T.dtype == dtype else { throw KilnError.invalidArgument("the tensor holds \(dtype.name), not \(T.dtype.name)") }
        let p = buffer.pointer.bindMemory(to: T.self, capacity: elementCount)
        return Array(UnsafeBufferPointer(start: p, count: elementCount))
    }

    /// The only element, of type T; an invalidArgument error for another dtype or element count.
    public func scalar<T: TensorScalar>(as _: T.Type = T.self) throws -> T {
        guard elementCount == 1 else { throw KilnError.invalidArgument("scalar() on a tensor of shape \(shape), which has \(elementCount) elements") }
        return try scalars(as: T.self)[0]
    }

    /// Element `i` (row-major) as a Double, whatever the numeric dtype; for messages and checks.
    public func double(at i: Int) -> Double {
        let p = buffer.pointer
        switch dtype {
        case .float32: return Double(p.load(fromByteOffset: i * 4, as: Float.self))
        case .float64: return p.load(fromByteOffset: i * 8, as: Double.self)
        case .int32: return Double(p.load(fromByteOffset: i * 4, as: Int32.self))
        case .int64: return Double(p.load(fromByteOffset: i * 8, as: Int64.self))
        case .uint8: return Double(p.load(fromByteOffset: i, as: UInt8.self))
        case .int16: return Double(p.load(fromByteOffset: i * 2, as: Int16.self))
        case .float16, .bfloat16: return Double(HalfFloat.float(p.load(fromByteOffset: i * 2, as: UInt16.self), dtype))
        case .bool: return p.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0
        case .string: return .nan
        }
    }

    public var doubles: [Double] { (0..<elementCount).map(double(at:)) }

    /// Mutable access to the bytes; copies first if the buffer is shared.
    public mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
        if !isKnownUniquelyReferenced(&buffer) { buffer = try buffer.copy() }
        return try body(UnsafeMutableRawBufferPointer(start: buffer.pointer, count: byteCount))
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: buffer.pointer, count: byteCount))
    }

    /// The same elements with another shape of equal element count.
    public func reshaped(to newShape: [Int]) throws -> Tensor {
        guard try Tensor.checkedCount(newShape, dtype) == elementCount else {
            throw KilnError.invalidArgument("cannot reshape a tensor of shape \(shape) (\(elementCount) elements) to \(newShape)")
        }
        if dtype == .string { return try Tensor(shape: newShape, strings: strings) }
        return try Tensor(dtype: dtype, shape: newShape, buffer: buffer)
    }

    /// Elementwise conversion with C semantics (truncation toward zero for float to int),
    /// as TensorFlow's Cast does.
    public func converted(to target: DType) throws -> Tensor {
        if target == dtype { return self }
        guard dtype != .string, target != .string else {
            throw KilnError.unimplemented("cannot convert a \(dtype) tensor to \(target)")
        }
        var out = try Tensor(zeros: target, shape: shape)
        let n = elementCount
        let src = buffer.pointer
        // TensorFlow's kernels run flush-to-zero: narrowing to float32 below its normal range gives 0.
        let flush = dtype == .float64 && target == .float32
        try out.withUnsafeMutableBytes { dst in
            for i in 0..<n {
                var v = Tensor.loadValue(src, dtype, i)
                if flush, case .f(let d) = v, abs(Float(d)) < Float.leastNormalMagnitude { v = .f(d.sign == .minus ? -0.0 : 0) }
                Tensor.store(v, into: dst.baseAddress!, target, i)
            }
        }
        return out
    }

    /// Element `i` keeping integer precision.
    public func element(at i: Int) -> ScalarValue { Tensor.loadValue(buffer.pointer, dtype, i) }

    /// Stores `v` at element `i`, converting it to this tensor's dtype as a cast would.
    public mutating func setElement(_ v: ScalarValue, at i: Int) throws {
        if !isKnownUniquelyReferenced(&buffer) { buffer = try buffer.copy() }
        Tensor.store(v, into: buffer.pointer, dtype, i)
    }

    static func loadValue(_ p: UnsafeMutableRawPointer, _ t: DType, _ i: Int) -> ScalarValue {
        switch t {
        case .float32: return .f(Double(p.load(fromByteOffset: i * 4, as: Float.self)))
        case .float64: return .f(p.load(fromByteOffset: i * 8, as: Double.self))
        case .int32: return .i(Int64(p.load(fromByteOffset: i * 4, as: Int32.self)))
        case .int64: return .i(p.load(fromByteOffset: i * 8, as: Int64.self))
        case .uint8: return .i(Int64(p.load(fromByteOffset: i, as: UInt8.self)))
        case .int16: return .i(Int64(p.load(fromByteOffset: i * 2, as: Int16.self)))
        case .float16, .bfloat16: return .f(Double(HalfFloat.float(p.load(fromByteOffset: i * 2, as: UInt16.self), t)))
        case .bool: return .b(p.load(fromByteOffset: i, as: UInt8.self) != 0)
        case .string: return .i(0)
        }
    }

    static func store(_ v: ScalarValue, into p: UnsafeMutableRawPointer, _ t: DType, _ i: Int) {
        func asInt() -> Int64 {
            switch v {
            case .i(let x): return x
            case .b(let b): return b ? 1 : 0
            case .f(let d):
                guard d.isFinite else { return d.isNaN ? 0 : (d > 0 ? Int64.max : Int64.min) }
                return d >= 9.2e18 ? Int64.max : d <= -9.2e18 ? Int64.min : Int64(d)
            }
        }
        func asDouble() -> Double {
            switch v {
            case .i(let x): return Double(x)
            case .b(let b): return b ? 1 : 0
            case .f(let d): return d
            }
        }
        switch t {
        case .float32:
            // Integers round once, straight to float32 (through Double would round twice).
            let f: Float
            if case .i(let x) = v { f = Float(x) } else { f = Float(asDouble()) }
            p.storeBytes(of: f, toByteOffset: i * 4, as: Float.self)
        case .float64: p.storeBytes(of: asDouble(), toByteOffset: i * 8, as: Double.self)
        case .int32: p.storeBytes(of: Int32(truncatingIfNeeded: asInt()), toByteOffset: i * 4, as: Int32.self)
        case .int64: p.storeBytes(of: asInt(), toByteOffset: i * 8, as: Int64.self)
        case .uint8: p.storeBytes(of: UInt8(truncatingIfNeeded: asInt()), toByteOffset: i, as: UInt8.self)
        case .int16: p.storeBytes(of: Int16(truncatingIfNeeded: asInt()), toByteOffset: i * 2, as: Int16.self)
        case .float16, .bfloat16:
            // Through float32, as TensorFlow converts integers and doubles to half.
            let f: Float
            if case .i(let x) = v { f = Float(x) } else { f = Float(asDouble()) }
            p.storeBytes(of: HalfFloat.bits(f, t), toByteOffset: i * 2, as: UInt16.self)
        case .bool:
            let b: Bool
            switch v { case .b(let x): b = x; case .i(let x): b = x != 0; case .f(let d): b = d != 0 }
            p.storeBytes(of: b ? 1 : 0, toByteOffset: i, as: UInt8.self)
        case .string: break
        }
    }

    // MARK: printing

    /// A float as numpy prints its special values: `nan` whatever its sign bit or payload
    /// (x86 makes 0/0 a NaN with the sign set, which Swift spells `-nan`), `inf`, `-inf`.
    public static func text<F: BinaryFloatingPoint & CustomStringConvertible>(_ x: F) -> String {
        x.isNaN ? "nan" : x.description
    }

    /// numpy-like nesting: `[[12.0]]`, `3`, `[true, false]`.
    public var description: String {
        func element(_ i: Int) -> String {
            let p = buffer.pointer
            switch dtype {
            case .float32: return Tensor.text(p.load(fromByteOffset: i * 4, as: Float.self))
            case .float64: return Tensor.text(p.load(fromByteOffset: i * 8, as: Double.self))
            case .int32: return "\(p.load(fromByteOffset: i * 4, as: Int32.self))"
            case .int64: return "\(p.load(fromByteOffset: i * 8, as: Int64.self))"
            case .uint8: return "\(p.load(fromByteOffset: i, as: UInt8.self))"
            case .int16: return "\(p.load(fromByteOffset: i * 2, as: Int16.self))"
            case .float16, .bfloat16: return Tensor.text(HalfFloat.float(p.load(fromByteOffset: i * 2, as: UInt16.self), dtype))
            case .bool: return p.load(fromByteOffset: i, as: UInt8.self) != 0 ? "true" : "false"
            case .string: return String(decoding: strings[i], as: UTF8.self).debugDescription
            }
        }
        func render(_ dim: Int, _ offset: Int) -> String {
            if dim == shape.count { return element(offset) }
            let stride = shape[(dim + 1)...].reduce(1, *)
            let items = (0..<shape[dim]).map { render(dim + 1, offset + $0 * stride) }
            return "[" + items.joined(separator: ", ") + "]"
        }
        return render(0, 0)
    }
}

extension Tensor: Equatable {
    /// Same dtype, shape and bits (so NaN equals an identical NaN).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.dtype == b.dtype, a.shape == b.shape else { return false }
        if a.dtype == .string { return a.strings == b.strings }
        return memcmp(a.buffer.pointer, b.buffer.pointer, a.byteCount) == 0
    }
}

extension Tensor: Hashable {
    public func hash(into h: inout Hasher) {
        h.combine(dtype)
        h.combine(shape)
        if dtype == .string { h.combine(strings) } else {
            h.combine(bytes: UnsafeRawBufferPointer(start: buffer.pointer, count: min(byteCount, 256)))
        }
    }
}

/// Swift values that spell a tensor: scalars and arbitrarily nested arrays of them.
public protocol TensorLiteral {
    associatedtype Scalar: TensorScalar
    var literalShape: [Int] { get }
    func appendScalars(to out: inout [Scalar], expecting shape: ArraySlice<Int>) throws
}

extension TensorLiteral where Self: TensorScalar {
    public var literalShape: [Int] { [] }
    public func appendScalars(to out: inout [Self], expecting shape: ArraySlice<Int>) throws {
        guard shape.isEmpty else {
            throw KilnError.invalidArgument("ragged nested array: found a scalar where a list of \(Array(shape)) was expected")
        }
        out.append(self)
    }
}

extension Float: TensorLiteral { public typealias Scalar = Float }
extension Double: TensorLiteral { public typealias Scalar = Double }
extension Int32: TensorLiteral { public typealias Scalar = Int32 }
extension Int64: TensorLiteral { public typealias Scalar = Int64 }
extension Int16: TensorLiteral { public typealias Scalar = Int16 }
extension Float16: TensorLiteral { public typealias Scalar = Float16 }
extension BFloat16: TensorLiteral { public typealias Scalar = BFloat16 }
extension UInt8: TensorLiteral { public typealias Scalar = UInt8 }
extension Bool: TensorLiteral { public typealias Scalar = Bool }

extension Array: TensorLiteral where Element: TensorLiteral {
    public typealias Scalar = Element.Scalar
    public var literalShape: [Int] { [count] + (first?.literalShape ?? []) }
    public func appendScalars(to out: inout [Element.Scalar], expecting shape: ArraySlice<Int>) throws {
        guard let n = shape.first, n == count else {
            throw KilnError.invalidArgument("ragged nested array: a list of \(count) elements where \(shape.first.map(String.init) ?? "a scalar") was expected")
        }
        for e in self { try e.appendScalars(to: &out, expecting: shape.dropFirst()) }
    }
}

/// One element of any non-string dtype, keeping integer precision (Double loses int64 beyond 2^53).
public enum ScalarValue: Hashable, Sendable {
    case f(Double), i(Int64), b(Bool)

    public var asDouble: Double {
        switch self {
        case .f(let d): return d
        case .i(let x): return Double(x)
        case .b(let b): return b ? 1 : 0
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
