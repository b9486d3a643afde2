import KilnFrontend
import KilnIR

/// TensorFlow's histogram (tensorflow/core/lib/histogram/histogram.cc), as HistogramSummary
/// records it: fixed bucket edges, a value counted in the first bucket whose limit exceeds it.
public enum HistogramBuckets {
    /// The default edges: 1e-12 growing by 10% up to 1e20, then DBL_MAX, mirrored negative, with
    /// 0 between (computed by the same repeated multiplication, so every edge is bit-identical).
    public static let defaultLimits: [Double] = {
        var positive: [Double] = []
        var v = 1.0e-12
        while v < 1.0e20 {
            positive.append(v)
            v *= 1.1
        }
        positive.append(Double.greatestFiniteMagnitude)
        return positive.reversed().map { -$0 } + [0.0] + positive
    }()

    /// The histogram of `values` as a HistogramProto, runs of empty buckets collapsed into the
    /// last of them as TensorFlow's EncodeToProto(preserve_zero_buckets: false) does. Non-finite
    /// values are TensorFlow's invalidArgument ("Nan in summary histogram for: tag").
    public static func proto(_ values: some Sequence<Double>, tag: String) throws -> Tensorflow_HistogramProto {
        let limits = defaultLimits
        var counts = [Double](repeating: 0, count: limits.count)
        var h = Tensorflow_HistogramProto()
        h.min = limits[limits.count - 1]
        h.max = -limits[limits.count - 1]
        for x in values {
            if x.isNaN { throw KilnError.invalidArgument("Nan in summary histogram for: \(tag)") }
            if x.isInfinite { throw KilnError.invalidArgument("Infinity in summary histogram for: \(tag)") }
            // DBL_MAX itself would fall past the last bucket; it belongs in it.
            counts[Swift.min(upperBound(limits, x), limits.count - 1)] += 1
            h.min = Swift.min(h.min, x)
            h.max = Swift.max(h.max, x)
            h.num += 1
            h.sum += x
            h.sumSquares += x * x
        }
        var i = 0
        while i < counts.count {
            var end = limits[i], count = counts[i]
            var j = i + 1
            while count <= 0 && j < counts.count && counts[j] <= 0 {
                end = limits[j]
                count = counts[j]
                j += 1
            }
            h.bucketLimit.append(end)
            h.bucket.append(count)
            i = j
        }
        return h
    }

    /// The index of the first limit greater than `x` (std::upper_bound).
    static func upperBound(_ limits: [Double], _ x: Double) -> Int {
        var lo = 0, hi = limits.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if limits[mid] <= x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
