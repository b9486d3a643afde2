import Foundation
import KilnIR

extension Tensor {
    /// Largest element count built by repeating a TensorProto's last typed value: a tiny Const
    /// claiming an enormous shape must be an error, not an allocation that kills the process.
    static let maxFilledElements = 1 << 28

    /// Decodes a TensorProto as TensorFlow does (tensor.cc): `tensor_content` when non-empty,
    /// otherwise the typed field of the dtype, its last value repeated to fill the shape (zeros
    /// when it is empty); surplus typed values are ignored.
    public init(proto p: Tensorflow_TensorProto) throws {
        let dtype = try p.dtype.toKiln()
        let shape = try Shape(proto: p.tensorShape)
        guard let dims = shape.concrete else {
            throw KilnError.invalidArgument("a TensorProto needs a fully known shape, got \(shape)")
        }
        guard let count = Sizes.product(dims) else { throw KilnError.invalidArgument("TensorProto shape \(shape) has too many elements") }

        if dtype != .string && !p.tensorContent.isEmpty {
            let (need, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, p.tensorContent.count == need else {
                throw KilnError.invalidArgument("TensorProto of \(dtype) shape \(shape) needs \(overflow ? "more than Int.max" : String(need)) bytes of tensor_content, got \(p.tensorContent.count)")
            }
            let buffer = try TensorBuffer(byteCount: need)
            p.tensorContent.withUnsafeBytes { src in
                if need > 0 { buffer.pointer.copyMemory(from: src.baseAddress!, byteCount: need) }
            }
            if dtype == .bool {
                // Any non-zero byte is true; Kiln's kernels expect exactly 0 or 1.
                let b = buffer.pointer.assumingMemoryBound(to: UInt8.self)
                for i in 0..<need where b[i] > 1 { b[i] = 1 }
            }
            try self.init(dtype: dtype, shape: dims, buffer: buffer)
            return
        }

        switch dtype {
        case .float32:
            try Tensor.checkFill(count, p.floatVal.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.floatVal, count: count, zero: 0))
        case .float64:
            try Tensor.checkFill(count, p.doubleVal.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.doubleVal, count: count, zero: 0))
        case .int32:
            try Tensor.checkFill(count, p.intVal.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.intVal, count: count, zero: 0))
        case .uint8:
            try Tensor.checkFill(count, p.intVal.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.intVal.map { UInt8(truncatingIfNeeded: $0) }, count: count, zero: 0))
        case .int16:
            // TensorFlow keeps int16 scalars in int_val (each value in an int32).
            try Tensor.checkFill(count, p.intVal.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.intVal.map { Int16(truncatingIfNeeded: $0) }, count: count, zero: 0))
        case .float16, .bfloat16:
            // TensorFlow keeps both half types' bit patterns in half_val (each in an int32).
            try Tensor.checkFill(count, p.halfVal.count, shape)
            try self.init(halfBits: Tensor.filled(p.halfVal.map { UInt16(truncatingIfNeeded: $0) }, count: count, zero: 0), dtype: dtype, shape: dims)
        case .int64:
            try Tensor.checkFill(count, p.int64Val.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.int64Val, count: count, zero: 0))
        case .bool:
            try Tensor.checkFill(count, p.boolVal.count, shape)
            try self.init(shape: dims, scalars: Tensor.filled(p.boolVal, count: count, zero: false))
        case .string:
            guard p.tensorContent.isEmpty else {
                throw KilnError.unimplemented("string TensorProto with tensor_content (shape \(shape)) is not supported; use string_val")
            }
            try Tensor.checkFill(count, p.stringVal.count, shape)
            try self.init(shape: dims, strings: Tensor.filled(p.stringVal.map { [UInt8]($0) }, count: count, zero: []))
        }
    }

    private static func checkFill(_ count: Int, _ given: Int, _ shape: Shape) throws {
        if count > given && count > maxFilledElements {
            throw KilnError(.resourceExhausted, "TensorProto of shape \(shape) would be filled out to \(count) elements from \(given) value(s); refusing more than \(maxFilledElements)")
        }
    }

    private static func filled<T>(_ values: [T], count: Int, zero: T) -> [T] {
        if values.count >= count { return Array(values.prefix(count)) }
        guard let last = values.last else { return Array(repeating: zero, count: count) }
        return values + Array(repeating: last, count: count - values.count)
    }

    /// The TensorProto TensorFlow's Python writes (tensor_util.make_tensor_proto): numeric
    /// tensors of more than one element as raw `tensor_content`, scalars and bools in their
    /// typed field, strings in `string_val`.
    /// (Each case reads the dtype it matched, so the `try?` reads cannot fail.)
    public var proto: Tensorflow_TensorProto {
        var p = Tensorflow_TensorProto()
        p.dtype = Tensorflow_DataType(dtype)
        p.tensorShape = Shape(shape).proto
        switch dtype {
        case .string:
            p.stringVal = strings.map { Data($0) }
        case .bool:
            p.boolVal = (try? scalars(as: Bool.self)) ?? []
        case _ where elementCount > 1:
            p.tensorContent = withUnsafeBytes { Data($0) }
        case .float32: p.floatVal = (try? scalars(as: Float.self)) ?? []
        case .float64: p.doubleVal = (try? scalars(as: Double.self)) ?? []
        case .int32: p.intVal = (try? scalars(as: Int32.self)) ?? []
        case .uint8: p.intVal = ((try? scalars(as: UInt8.self)) ?? []).map(Int32.init)
        case .int16: p.intVal = ((try? scalars(as: Int16.self)) ?? []).map(Int32.init)
        case .int64: p.int64Val = (try? scalars(as: Int64.self)) ?? []
        case .float16, .bfloat16: p.halfVal = halfBits.map { Int32($0) }
        }
        return p
    }
}
