import Foundation
import KilnIR

/// Where a HostQueue keeps its elements: each in a slot of the store, the queue keeping the
/// slots' order. Called with the queue's lock held (a store is not thread-safe itself).
protocol QueueElementStore: AnyObject {
    /// Stores one element (its components) and gives its slot.
    func store(_ tuple: [Tensor]) throws -> Int
    /// Stores elements `rows` along dimension 0 of `batch` (components stacked) and gives their slots.
    func store(_ batch: [Tensor], rows: Range<Int>) throws -> [Int]
    /// The element in `slot`, as tensors of its own.
    func element(_ slot: Int) throws -> [Tensor]
    /// The elements in `slots` (at least one), each component stacked along a new dimension 0.
    func stack(_ slots: [Int]) throws -> [Tensor]
    /// Frees the slots for later elements.
    func free(_ slots: [Int])
}

/// Elements whose components all have declared shapes and numeric types, as rows of one slab per
/// component: an enqueue copies rows in, a dequeue copies them out into its batch, and a freed
/// row takes the next element, so no element is an allocation of its own. (Each element as
/// tensors of its own made a batch of 64 digits 128 allocations on the reader's thread, freed on
/// the training step's.)
final class QueueRowStore: QueueElementStore {
    let dtypes: [DType]
    let shapes: [[Int]]
    /// Bytes of a row of each component.
    let rowBytes: [Int]
    private var slabs: [UnsafeMutableRawPointer?]
    private var allocatedRows = 0
    private var usedRows = 0
    private var freeRows: [Int] = []

    /// Nil when some component is a string or has a shape whose size overflows.
    init?(dtypes: [DType], shapes: [[Int]]) {
        guard !dtypes.contains(.string) else { return nil }
        var bytes: [Int] = []
        for (t, s) in zip(dtypes, shapes) {
            guard let n = Sizes.product(s), case let (b, o) = n.multipliedReportingOverflow(by: t.byteSize), !o else { return nil }
            bytes.append(b)
        }
        self.dtypes = dtypes
        self.shapes = shapes
        rowBytes = bytes
        slabs = Array(repeating: nil, count: dtypes.count)
    }

    deinit { for s in slabs { Foundation.free(s) } }

    func store(_ tuple: [Tensor]) throws -> Int {
        let row = try takeRow()
        for c in tuple.indices where rowBytes[c] > 0 {
            tuple[c].withUnsafeBytes { (slabs[c]! + row * rowBytes[c]).copyMemory(from: $0.baseAddress!, byteCount: rowBytes[c]) }
        }
        return row
    }

    func store(_ batch: [Tensor], rows: Range<Int>) throws -> [Int] {
        let slots = try rows.map { _ in try takeRow() }
        for c in batch.indices where rowBytes[c] > 0 {
            let n = rowBytes[c], slab = slabs[c]!
            batch[c].withUnsafeBytes { src in
                for (k, row) in slots.enumerated() { (slab + row * n).copyMemory(from: src.baseAddress! + (rows.lowerBound + k) * n, byteCount: n) }
            }
        }
        return slots
    }

    func element(_ slot: Int) throws -> [Tensor] {
        try dtypes.indices.map { c in try gather(c, [slot], shape: shapes[c]) }
    }

    func stack(_ slots: [Int]) throws -> [Tensor] {
        try dtypes.indices.map { c in try gather(c, slots, shape: [slots.count] + shapes[c]) }
    }

    func free(_ slots: [Int]) { freeRows.append(contentsOf: slots) }

    /// Component `c` of the elements in `slots`, one after another, as a tensor of `shape`.
    private func gather(_ c: Int, _ slots: [Int], shape: [Int]) throws -> Tensor {
        let n = rowBytes[c]
        // Every byte is copied over: no zeroing first.
        let buffer = try TensorBuffer(byteCount: n * slots.count)
        if n > 0 { for (k, row) in slots.enumerated() { (buffer.pointer + k * n).copyMemory(from: slabs[c]! + row * n, byteCount: n) } }
        return try Tensor(dtype: dtypes[c], shape: shape, buffer: buffer)
    }

    /// A free row, the slabs doubled when every row holds an element.
    private func takeRow() throws -> Int {
        if let row = freeRows.popLast() { return row }
        if usedRows == allocatedRows {
            let rows = max(64, allocatedRows * 2)
            for c in slabs.indices where rowBytes[c] > 0 {
                let (bytes, overflow) = rows.multipliedReportingOverflow(by: rowBytes[c])
                guard !overflow, let grown = realloc(slabs[c], bytes) else {
                    throw KilnError.resourceExhausted("OOM growing a queue to \(rows) elements of \(rowBytes[c]) bytes (component \(c))")
                }
                slabs[c] = grown
            }
            allocatedRows = rows
        }
        usedRows += 1
        return usedRows - 1
    }
}

/// Elements as tensors of their own: queues made without shapes (elements may differ in shape)
/// or holding strings.
final class QueueTupleStore: QueueElementStore {
    let dtypes: [DType]
    private var tuples: [[Tensor]?] = []
    private var freeSlots: [Int] = []

    init(dtypes: [DType]) { self.dtypes = dtypes }

    func store(_ tuple: [Tensor]) throws -> Int {
        if let slot = freeSlots.popLast() {
            tuples[slot] = tuple
            return slot
        }
        tuples.append(tuple)
        return tuples.count - 1
    }

    func store(_ batch: [Tensor], rows: Range<Int>) throws -> [Int] {
        let slicers = batch.map(Slicer.init)
        return try rows.map { i in try store(try slicers.map { try $0.slice(at: i) }) }
    }

    func element(_ slot: Int) throws -> [Tensor] { tuples[slot]! }

    func stack(_ slots: [Int]) throws -> [Tensor] {
        try dtypes.indices.map { c in
            let element = tuples[slots[0]]![c].shape
            for s in slots where tuples[s]![c].shape != element {
                throw KilnError.invalidArgument("Shape mismatch in tuple component \(c): elements of shapes \(Shape(element)) and \(Shape(tuples[s]![c].shape)) cannot be batched")
            }
            if dtypes[c] == .string {
                return try Tensor(shape: [slots.count] + element, strings: TensorStrings(concatenating: slots.lazy.map { self.tuples[$0]![c].strings }))
            }
            // Every byte is copied over (the elements' shapes match): no zeroing first.
            let bytes = tuples[slots[0]]![c].byteCount
            let buffer = try TensorBuffer(byteCount: bytes * slots.count)
            for (k, s) in slots.enumerated() {
                tuples[s]![c].withUnsafeBytes { src in (buffer.pointer + k * bytes).copyMemory(from: src.baseAddress!, byteCount: bytes) }
            }
            return try Tensor(dtype: dtypes[c], shape: [slots.count] + element, buffer: buffer)
        }
    }

    func free(_ slots: [Int]) {
        for s in slots { tuples[s] = nil }
        freeSlots.append(contentsOf: slots)
    }

    /// The elements of a tensor along dimension 0, each a tensor of its own (an element's shape
    /// and size are worked out once for all of them).
    struct Slicer {
        let tensor: Tensor
        let shape: [Int]
        let width: Int
        let bytes: Int

        init(_ t: Tensor) {
            tensor = t
            shape = Array(t.shape.dropFirst())
            width = t.elementCount / max(t.shape[0], 1)
            bytes = t.byteCount / max(t.shape[0], 1)
        }

        /// Element `i`.
        func slice(at i: Int) throws -> Tensor {
            if tensor.dtype == .string {
                var strings = TensorStrings()
                strings.append(tensor.strings, elements: (i * width)..<((i + 1) * width))
                return try Tensor(shape: shape, strings: strings)
            }
            // Every byte is copied over: no zeroing first.
            let buffer = try TensorBuffer(byteCount: bytes)
            tensor.withUnsafeBytes { src in buffer.pointer.copyMemory(from: src.baseAddress! + i * bytes, byteCount: bytes) }
            return try Tensor(dtype: tensor.dtype, shape: shape, buffer: buffer)
        }
    }
}
