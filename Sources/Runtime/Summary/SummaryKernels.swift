import Foundation
import KilnFrontend
import KilnIR

/// The summary ops' kernels (tensorflow/core/kernels/summary_op.cc, summary_image_op.cc,
/// summary_tensor_op.cc), run by the session on the host: each returns a serialized Summary as
/// a string scalar. Errors carry TensorFlow's messages.
enum SummaryKernels {
    typealias Kernel = @Sendable (_ inputs: [Tensor], _ attrs: [String: AttrValue], _ node: String) throws -> Tensorflow_Summary

    /// Each summary op's kernel, by op type (the session's handlers of the summary ops).
    static let kernels: [String: Kernel] = [
        "ScalarSummary": { inputs, _, _ in try scalar(tags: inputs[0], values: inputs[1]) },
        "HistogramSummary": { inputs, _, node in
            let tag = try scalarString(inputs[0], "tag", node)
            var v = Tensorflow_Summary.Value()
            v.tag = tag
            v.histo = try HistogramBuckets.proto((0..<inputs[1].elementCount).lazy.map { inputs[1].double(at: $0) }, tag: tag)
            return Tensorflow_Summary.with { $0.value = [v] }
        },
        "ImageSummary": { inputs, attrs, node in
            try image(tag: scalarString(inputs[0], "tag", node), inputs[1], maxImages: attrs[SummaryOps.maxImages],
                      badColor: attrs["bad_color"]?.tensor ?? SummaryOps.defaultBadColor)
        },
        "TensorSummaryV2": { inputs, _, node in
            try tensor(tag: scalarString(inputs[0], "tag", node), inputs[1], metadata: scalarBytes(inputs[2], "serialized_summary_metadata", node))
        },
        "MergeSummary": { inputs, _, _ in try merge(inputs) },
    ]

    /// The serialized Summary of a summary op, as a string scalar.
    static func run(_ kernel: Kernel, _ inputs: [Tensor], attrs: [String: AttrValue], node: String) throws -> [Tensor] {
        [try Tensor(shape: [], strings: [kernel(inputs, attrs, node).serializedBytes()])]
    }

    /// One simple_value per element, tags and values of one shape.
    static func scalar(tags: Tensor, values: Tensor) throws -> Tensorflow_Summary {
        guard tags.shape == values.shape else {
            throw KilnError.invalidArgument("tags and values not the same shape: \(Shape(tags.shape)) != \(Shape(values.shape))\(tags.rank == 0 ? " (tag '\(String(decoding: tags.strings[0], as: UTF8.self))')" : "")")
        }
        var s = Tensorflow_Summary()
        for i in 0..<values.elementCount {
            var v = Tensorflow_Summary.Value()
            v.tag = String(decoding: tags.strings[i], as: UTF8.self)
            v.simpleValue = Float(values.double(at: i))
            s.value.append(v)
        }
        return s
    }

    /// min(max_images, batch) images, tagged `tag/image/<i>`, or `tag/image` when max_images is 1
    /// (the tag depends on the number requested, not the number produced, as in TensorFlow).
    static func image(tag: String, _ t: Tensor, maxImages: Int, badColor: Tensor) throws -> Tensorflow_Summary {
        guard t.rank == 4, [1, 3, 4].contains(t.shape[3]) else {
            throw KilnError.invalidArgument("Tensor must be 4-D with last dim 1, 3, or 4, not \(Shape(t.shape))")
        }
        let (batch, height, width, depth) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
        guard height > 0, width > 0 else { throw KilnError.invalidArgument("image summary '\(tag)': images of \(height)x\(width) pixels cannot be encoded") }
        guard badColor.dtype == .uint8, badColor.rank == 1, badColor.elementCount >= depth else {
            throw KilnError.invalidArgument("bad_color must be a uint8 vector of at least \(depth) elements, got \(badColor.dtype.name) of shape \(Shape(badColor.shape))")
        }
        let bad = try badColor.scalars(as: UInt8.self)
        let pixels = height * width * depth
        var s = Tensorflow_Summary()
        // The elements are read once, not once per image.
        let u8 = t.dtype == .uint8 ? try t.scalars(as: UInt8.self) : []
        let f32 = t.dtype == .float32 ? try t.scalars(as: Float.self) : []
        let f64 = t.dtype == .float64 ? try t.scalars(as: Double.self) : []
        for i in 0..<min(maxImages, batch) {
            let range = (i * pixels)..<((i + 1) * pixels)
            let bytes: [UInt8]
            switch t.dtype {
            case .uint8: bytes = Array(u8[range])
            case .float32: bytes = normalized(Array(f32[range]), depth: depth, bad: bad)
            case .float64: bytes = normalized(Array(f64[range]), depth: depth, bad: bad)
            default: throw KilnError.invalidArgument("image summary '\(tag)': images must be uint8, float32 or float64, got \(t.dtype.name)")
            }
            // Encoded first: it refuses sizes beyond PNG's (and Int32's) range.
            let png = try PNG.encode(PNG.Image(width: width, height: height, channels: depth, pixels: bytes))
            var v = Tensorflow_Summary.Value()
            v.tag = maxImages > 1 ? "\(tag)/image/\(i)" : "\(tag)/image"
            v.image.height = Int32(height)
            v.image.width = Int32(width)
            v.image.colorspace = Int32(depth)
            v.image.encodedImageString = Data(png)
            s.value.append(v)
        }
        return s
    }

    /// TensorFlow's float image to uint8: finite pixels scaled by 255/max when none is negative,
    /// else by 127/max|x| around 128; a pixel with any non-finite channel becomes bad_color.
    static func normalized<F: BinaryFloatingPoint>(_ values: [F], depth: Int, bad: [UInt8]) -> [UInt8] {
        let pixelCount = values.count / depth
        func finite(_ p: Int) -> Bool { (0..<depth).allSatisfy { values[p * depth + $0].isFinite } }
        var lo = Float.infinity, hi = -Float.infinity
        for p in 0..<pixelCount where finite(p) {
            for c in 0..<depth {
                lo = min(lo, Float(values[p * depth + c]))
                hi = max(hi, Float(values[p * depth + c]))
            }
        }
        let zeroThreshold: Float = 1e-6
        let scale: F, offset: F
        if lo < 0 {
            let maxVal = max(abs(lo), abs(hi))
            scale = F(maxVal < zeroThreshold ? 0 : 127 / maxVal)
            offset = 128
        } else {
            scale = F(hi < zeroThreshold ? 0 : 255 / hi)
            offset = 0
        }
        var out = [UInt8](repeating: 0, count: values.count)
        for p in 0..<pixelCount {
            let ok = finite(p)
            for c in 0..<depth {
                // C++'s float-to-uint8 cast truncates; the clamp only guards rounding at the ends.
                out[p * depth + c] = ok ? UInt8(max(0, min(255, values[p * depth + c] * scale + offset)).rounded(.towardZero)) : bad[c]
            }
        }
        return out
    }

    /// The tensor under `tag` with its metadata: strings in string_val, other dtypes as raw
    /// tensor_content (TensorFlow's AsProtoField / AsProtoTensorContent).
    static func tensor(tag: String, _ t: Tensor, metadata: [UInt8]) throws -> Tensorflow_Summary {
        var v = Tensorflow_Summary.Value()
        v.tag = tag
        do { v.metadata = try Tensorflow_SummaryMetadata(serializedBytes: metadata) } catch {
            throw KilnError.invalidArgument("Could not parse serialized_summary_metadata for tag '\(tag)'")
        }
        var p = t.proto
        if t.dtype != .string {
            p = Tensorflow_TensorProto.with {
                $0.dtype = p.dtype
                $0.tensorShape = p.tensorShape
                $0.tensorContent = t.withUnsafeBytes { Data($0) }
            }
        }
        v.tensor = p
        return Tensorflow_Summary.with { $0.value = [v] }
    }

    /// Every value of every input Summary, in order; a non-empty tag twice is invalidArgument.
    static func merge(_ inputs: [Tensor]) throws -> Tensorflow_Summary {
        var out = Tensorflow_Summary(), tags = Set<String>()
        for t in inputs {
            guard t.dtype == .string else { throw KilnError.invalidArgument("MergeSummary inputs must be strings, got \(t.dtype.name)") }
            for bytes in t.strings {
                let s: Tensorflow_Summary
                do { s = try Tensorflow_Summary(serializedBytes: bytes) } catch {
                    throw KilnError.invalidArgument("Could not parse one of the summary inputs")
                }
                for v in s.value {
                    if !v.tag.isEmpty && !tags.insert(v.tag).inserted {
                        throw KilnError.invalidArgument("Duplicate tag \(v.tag) found in summary inputs ")
                    }
                    out.value.append(v)
                }
            }
        }
        return out
    }

    /// A string scalar input's bytes (a tag, or a serialized proto).
    private static func scalarBytes(_ t: Tensor, _ name: String, _ node: String) throws -> [UInt8] {
        guard t.dtype == .string, t.rank == 0 else {
            throw KilnError.invalidArgument("'\(node)': \(name) must be a string scalar, got \(t.dtype.name) of shape \(Shape(t.shape))")
        }
        return t.strings[0]
    }

    private static func scalarString(_ t: Tensor, _ name: String, _ node: String) throws -> String {
        String(decoding: try scalarBytes(t, name, node), as: UTF8.self)
    }
}
