import Foundation
import KilnIR

/// min, max and mean of a numeric tensor as numpy computes them (min and max are NaN if any
/// element is); nil for strings and empty tensors. `kiln run` prints them per fetch and
/// `kiln inspect` per checkpoint variable and .npy file.
public struct TensorStatistics: Sendable {
    public let min: Double
    public let max: Double
    public let mean: Double

    public init?(_ t: Tensor) {
        guard t.dtype != .string, t.elementCount > 0 else { return nil }
        let values = t.doubles
        let hasNaN = values.contains { $0.isNaN }
        min = hasNaN ? .nan : values.min()!
        max = hasNaN ? .nan : values.max()!
        mean = values.reduce(0, +) / Double(values.count)
    }

    /// numpy's spelling of a value: "nan", "inf", "-inf", else up to 9 significant digits.
    public static func format(_ v: Double) -> String {
        v.isNaN ? "nan" : v.isInfinite ? (v < 0 ? "-inf" : "inf") : String(format: "%.9g", v)
    }

    /// A float32 value as its shortest round-trip spelling ("0.11", not "0.109999999").
    public static func format(_ v: Float) -> String {
        v.isNaN ? "nan" : v.isInfinite ? (v < 0 ? "-inf" : "inf") : "\(v)"
    }

    /// "min=... max=... mean=..." ("n/a" for strings and empty tensors).
    public static func line(_ t: Tensor) -> String {
        guard let s = TensorStatistics(t) else { return "min=n/a max=n/a mean=n/a" }
        return "min=\(format(s.min)) max=\(format(s.max)) mean=\(format(s.mean))"
    }

    /// The statistics as JSON values (non-finite ones as strings, which JSON has no numbers for).
    public var json: [String: Any] {
        func value(_ v: Double) -> Any { v.isFinite ? v : TensorStatistics.format(v) }
        return ["min": value(min), "max": value(max), "mean": value(mean)]
    }
}
