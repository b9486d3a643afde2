import Foundation
import KilnIR
import SwiftProtobuf

/// TensorFlow's `tf.train.Example`: named lists of int64, float or bytes values, written to
/// TFRecord files one serialised Example per record.
///
///     let e = Example(["label": .int64([3]), "img_raw": .bytes([pixels]), "score": .float([1, 2])])
///     let bytes = try e.serialized()
///     let back = try Example(serialized: bytes)
public struct Example: Equatable, Sendable {
    /// One feature's values (TensorFlow's Feature: a BytesList, FloatList or Int64List).
    public enum Feature: Equatable, Sendable {
        case int64([Int64])
        case float([Float])
        case bytes([[UInt8]])
    }

    public var features: [String: Feature]

    public init(_ features: [String: Feature] = [:]) { self.features = features }

    public subscript(key: String) -> Feature? {
        get { features[key] }
        set { features[key] = newValue }
    }

    /// Decodes a serialised Example; malformed bytes are an invalidArgument error.
    /// A feature with no value list at all (an empty Feature message) is left out, as
    /// TensorFlow's parser treats it as absent.
    public init(serialized bytes: [UInt8]) throws {
        let message: Tensorflow_Example
        do {
            message = try Tensorflow_Example(serializedBytes: bytes)
        } catch {
            throw KilnError.invalidArgument("Could not parse example input (\(bytes.count) bytes): \(error)")
        }
        self.init(message)
    }

    /// From the protobuf message (a Feature with no kind is left out, see `init(serialized:)`).
    public init(_ message: Tensorflow_Example) {
        var f: [String: Feature] = [:]
        for (key, feature) in message.features.feature {
            switch feature.kind {
            case .int64List(let l)?: f[key] = .int64(l.value)
            case .floatList(let l)?: f[key] = .float(l.value)
            case .bytesList(let l)?: f[key] = .bytes(l.value.map { [UInt8]($0) })
            case nil: continue
            }
        }
        features = f
    }

    /// The protobuf message (Tensorflow_Example) holding these features.
    public var message: Tensorflow_Example {
        var m = Tensorflow_Example()
        for (key, feature) in features {
            var p = Tensorflow_Feature()
            switch feature {
            case .int64(let v): p.int64List.value = v
            case .float(let v): p.floatList.value = v
            case .bytes(let v): p.bytesList.value = v.map { Data($0) }
            }
            m.features.feature[key] = p
        }
        return m
    }

    /// The serialised Example, with map entries in key order so equal Examples give equal bytes.
    /// Throws only for a message protobuf cannot encode (more than 2 GiB).
    public func serialized() throws -> [UInt8] {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        do {
            return try message.serializedBytes(options: options)
        } catch {
            throw KilnError.invalidArgument("Cannot serialise the Example: \(error)")
        }
    }
}
