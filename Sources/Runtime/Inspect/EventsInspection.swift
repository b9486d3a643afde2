import Foundation
import KilnIR
import KilnFrontend

/// `kiln inspect` on a TensorBoard events file: the events by kind, and per summary tag its kind,
/// how many values, the first and last step and the last value (scalars; a histogram's count,
/// min, max and mean; an image's size; a tensor's dtype, shape and, for a scalar or text, value).
enum EventsInspection {
    /// Whether the file's first record is an Event carrying a `brain.Event:N` file_version.
    static func startsWithVersionRecord(path: String) throws -> Bool {
        guard let first = try EventFileReader(path: path).next() else { return false }
        return first.fileVersion.hasPrefix("brain.Event:")
    }

    struct Tag {
        var kind: String
        var count = 0
        var firstStep: Int64
        var lastStep: Int64
        var last: String
        var lastJSON: Any
    }

    static func report(path: String) throws -> InspectReport {
        let events = try EventFileReader(path: path).readAll()
        var counts: [String: Int] = [:]
        var tags: [String: Tag] = [:]
        var order: [String] = []
        var version = ""
        for e in events {
            switch e.what {
            case .fileVersion(let v)?: version = v; counts["file_version", default: 0] += 1
            case .graphDef?: counts["graph_def", default: 0] += 1
            case .metaGraphDef?: counts["meta_graph_def", default: 0] += 1
            case .logMessage?: counts["log_message", default: 0] += 1
            case .sessionLog?: counts["session_log", default: 0] += 1
            case .taggedRunMetadata?: counts["tagged_run_metadata", default: 0] += 1
            case nil: counts["empty", default: 0] += 1
            case .summary(let s)?:
                counts["summary", default: 0] += 1
                for v in s.value {
                    let (kind, text, json) = describe(v)
                    if tags[v.tag] == nil {
                        order.append(v.tag)
                        tags[v.tag] = Tag(kind: kind, firstStep: e.step, lastStep: e.step, last: text, lastJSON: json)
                    }
                    tags[v.tag]!.count += 1
                    tags[v.tag]!.lastStep = e.step
                    tags[v.tag]!.last = text
                    tags[v.tag]!.lastJSON = json
                }
            }
        }
        let steps = events.filter { $0.what != nil && !$0.fileVersion.hasPrefix("brain.Event:") }.map(\.step)
        var lines = ["\(path): events file (\(version.isEmpty ? "no file_version record" : version)), \(events.count) event\(events.count == 1 ? "" : "s"): "
                     + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")]
        if let lo = steps.min(), let hi = steps.max() { lines.append("steps \(lo) to \(hi)") }
        lines.append("tags:" + (order.isEmpty ? " none" : ""))
        let width = order.map(\.count).max() ?? 0
        for name in order.sorted() {
            let t = tags[name]!
            lines.append("  \(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(t.kind) x\(t.count), steps \(t.firstStep)-\(t.lastStep), last: \(t.last)")
        }
        var tagJSON: [String: Any] = [:]
        for (name, t) in tags {
            tagJSON[name] = ["kind": t.kind, "count": t.count, "first_step": Int(t.firstStep), "last_step": Int(t.lastStep), "last_value": t.lastJSON]
        }
        var fields: [String: Any] = ["file_version": version, "events": events.count, "event_counts": counts, "tags": tagJSON]
        if let lo = steps.min(), let hi = steps.max() { fields["first_step"] = Int(lo); fields["last_step"] = Int(hi) }
        return InspectReport(file: path, kind: .events, lines: lines, fields: fields)
    }

    /// A summary value's kind, its value as text and as JSON.
    static func describe(_ v: Tensorflow_Summary.Value) -> (String, String, Any) {
        switch v.value {
        case .simpleValue(let x)?:
            return ("scalar", TensorStatistics.format(x), x.isFinite ? Double(x) : TensorStatistics.format(x) as Any)
        case .histo(let h)?:
            let mean = h.num > 0 ? h.sum / h.num : .nan
            let text = "histogram of \(TensorStatistics.format(h.num)) values, min \(TensorStatistics.format(h.min)) max \(TensorStatistics.format(h.max)) "
                + "mean \(TensorStatistics.format(mean)), \(h.bucket.count) buckets"
            return ("histogram", text, ["num": h.num, "min": finite(h.min), "max": finite(h.max), "sum": finite(h.sum), "buckets": h.bucket.count])
        case .image(let i)?:
            return ("image", "\(i.width)x\(i.height), \(i.colorspace) channel\(i.colorspace == 1 ? "" : "s"), \(i.encodedImageString.count) bytes encoded",
                    ["width": Int(i.width), "height": Int(i.height), "colorspace": Int(i.colorspace), "encoded_bytes": i.encodedImageString.count])
        case .audio(let a)?:
            return ("audio", "\(a.lengthFrames) frames at \(a.sampleRate) Hz", ["frames": Int(a.lengthFrames), "sample_rate": Double(a.sampleRate)])
        case .tensor(let p)?:
            guard let t = try? Tensor(proto: p) else { return ("tensor", "a tensor Kiln cannot read (\(p.dtype.tensorflowName))", NSNull()) }
            let head = "\(t.dtype.name) \(Shape(t.shape).description)"
            if t.dtype == .string, let first = t.strings.first {
                let strings = t.strings
                let text = RecordInspection.bytesText(first)
                return ("tensor", head + (strings.count == 1 ? " " + text : " first " + text), text)
            }
            if t.elementCount == 1, let x = t.doubles.first { return ("tensor", head + " " + TensorStatistics.format(x), finite(x)) }
            return ("tensor", head + " " + TensorStatistics.line(t), TensorStatistics(t)?.json ?? NSNull())
        case .obsoleteOldStyleHistogram?: return ("old-style histogram", "(not decoded)", NSNull())
        case nil: return ("empty", "(no value)", NSNull())
        }
    }

    private static func finite(_ x: Double) -> Any { x.isFinite ? x : TensorStatistics.format(x) }
}
