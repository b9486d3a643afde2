/// The elements of a string tensor: their bytes one after another in one array, and where each
/// ends. A batch of records or parsed features is then two allocations however many elements it
/// has, and code that reads them in bulk (decode_raw, a batch parse, a checkpoint) works on the
/// bytes in place through `range(_:)` and `bytes`. Reading an element by subscript copies it out.
public struct TensorStrings: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral {
    /// Every element's bytes, in order.
    public private(set) var bytes: [UInt8] = []
    /// ends[i]: where element i ends in `bytes` (it starts where element i - 1 ends, or at 0).
    private var ends: [Int] = []

    public init() {}

    /// `count` empty strings.
    public init(empty count: Int) { ends = Array(repeating: 0, count: count) }

    public init<S: Sequence>(_ elements: S) where S.Element: Collection, S.Element.Element == UInt8 {
        for e in elements { append(e) }
    }

    public init(arrayLiteral elements: [UInt8]...) { self.init(elements) }

    /// The elements of `parts`, one part after another (a batch of string tensors stacked).
    public init<S: Sequence>(concatenating parts: S) where S.Element == TensorStrings {
        for p in parts { append(contentsOf: p) }
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { ends.count }

    /// Where element `i` lies in `bytes`.
    public func range(_ i: Int) -> Range<Int> { (i == 0 ? 0 : ends[i - 1])..<ends[i] }

    /// Element `i`, copied out.
    public subscript(i: Int) -> [UInt8] { Array(bytes[range(i)]) }

    public mutating func append<C: Collection>(_ element: C) where C.Element == UInt8 {
        bytes.append(contentsOf: element)
        ends.append(bytes.count)
    }

    /// A slice of another array (a record in a file's bytes, a value in a record): the bulk
    /// readers' case, copied without going through the generic path from other modules.
    public mutating func append(_ element: ArraySlice<UInt8>) {
        element.withUnsafeBufferPointer { append($0) }
    }

    public mutating func append(_ element: UnsafeBufferPointer<UInt8>) {
        bytes.append(contentsOf: element)
        ends.append(bytes.count)
    }

    /// Appends `count` elements built in place, element `i` the `n` bytes `write(i, at)` writes
    /// at `at` and returns (at most `maxBytes`): one reservation and one access to the storage for
    /// a batch of built elements (a reader's record keys), not an array or a closure call each.
    public mutating func append(count: Int, maxBytes: Int, writing write: (Int, UnsafeMutablePointer<UInt8>) -> Int) {
        guard count > 0 else { return }
        let (room, overflow) = count.multipliedReportingOverflow(by: maxBytes)
        precondition(!overflow && maxBytes >= 0, "TensorStrings.append(count:maxBytes:writing:): \(count) elements of \(maxBytes) bytes")
        let base = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: room))
        var newEnds: [Int] = []
        newEnds.reserveCapacity(count)
        var at = base
        bytes.withUnsafeMutableBufferPointer { p in
            for i in 0..<count {
                let n = write(i, p.baseAddress! + at)
                precondition(n >= 0 && n <= maxBytes, "TensorStrings.append(count:maxBytes:writing:): element \(i) wrote \(n) bytes of \(maxBytes)")
                at += n
                newEnds.append(at)
            }
        }
        bytes.removeLast(base + room - at)
        ends.append(contentsOf: newEnds)
    }

    /// Appends the elements of `other`, in order.
    public mutating func append(contentsOf other: TensorStrings) {
        let base = bytes.count
        bytes.append(contentsOf: other.bytes)
        ends.append(contentsOf: other.ends.lazy.map { $0 + base })
    }

    /// Appends elements `r` of `other`, in order.
    public mutating func append(_ other: TensorStrings, elements r: Range<Int>) {
        guard !r.isEmpty else { return }
        let from = other.range(r.lowerBound).lowerBound, base = bytes.count - from
        bytes.append(contentsOf: other.bytes[from..<other.ends[r.upperBound - 1]])
        ends.append(contentsOf: other.ends[r].lazy.map { $0 + base })
    }

    /// Room for `count` more elements of `bytesEach` bytes without reallocating.
    public mutating func reserve(_ count: Int, bytesEach: Int) {
        ends.reserveCapacity(ends.count + count)
        bytes.reserveCapacity(bytes.count + count * bytesEach)
    }

    /// The byte count of every element when they all have the same one (0 when there are none),
    /// else nil.
    public var commonLength: Int? {
        guard let first = ends.first else { return 0 }
        return bytes.count == first * ends.count && zip(ends, ends.dropFirst()).allSatisfy({ $1 - $0 == first }) ? first : nil
    }
}
