import Foundation
import KilnFrontend
import KilnIR
import KilnRuntime

/// What every fuzz target checks besides "no crash": Kiln reports bad input as a KilnError, so a
/// user gets a status code and a message. Any other error escaping Kiln's API is a finding.
public func expectKilnError(_ error: Error, _ what: String) {
    if error is KilnError { return }
    fatalError("\(what) threw a non-KilnError: \(type(of: error)): \(error)")
}

/// The fuzzer's bytes as an array (libFuzzer passes a null pointer for the empty input).
public func fuzzBytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Splits one input into two parts: a 2-byte little-endian length (taken modulo what follows),
/// that many bytes, and the rest. Targets that read two files (a checkpoint's index and data)
/// get both from one input this way, and the fuzzer can mutate the split point too.
public func splitInput(_ bytes: [UInt8]) -> ([UInt8], [UInt8]) {
    guard bytes.count >= 2 else { return (bytes, []) }
    let rest = bytes[2...]
    let n = (Int(bytes[0]) | Int(bytes[1]) << 8) % (rest.count + 1)
    return (Array(rest.prefix(n)), Array(rest.dropFirst(n)))
}

/// Imports a GraphDef and, when that succeeds, compiles and runs it the way a user would: every
/// placeholder fed a small tensor of its dtype, every sink op fetched or run. Hostile graphs
/// crash in shape functions, lowering and compilation, so the fuzzer must reach them.
public enum GraphFuzz {
    /// Graphs larger than this are imported but not run: compile time, not crashes, would
    /// dominate, and the libFuzzer -timeout would report slow-but-correct graphs as hangs.
    public static let maxRunNodes = 200
    /// Elements in one fed tensor; unknown dimensions become 2.
    public static let maxFeedElements = 1024

    /// Parses the fuzzer's bytes with `parse` (a KilnError is the expected answer to damaged
    /// bytes), then imports and runs the graph.
    public static func parseImportAndRun(_ data: UnsafePointer<UInt8>?, _ size: Int, _ what: String,
                                         _ parse: ([UInt8]) throws -> Tensorflow_GraphDef) {
        let graphDef: Tensorflow_GraphDef
        do { graphDef = try parse(fuzzBytes(data, size)) } catch {
            expectKilnError(error, what)
            return
        }
        importAndRun(graphDef)
    }

    public static func importAndRun(_ graphDef: Tensorflow_GraphDef) {
        let graph = Graph()
        let ops: [KilnFrontend.Operation]
        do { ops = try graph.importGraphDef(graphDef) } catch {
            expectKilnError(error, "importGraphDef")
            return
        }
        guard !ops.isEmpty, ops.count <= maxRunNodes else { return }
        var consumed = Set<KilnFrontend.Operation>()
        for op in ops {
            for i in op.inputs { consumed.insert(i.op) }
            for c in op.controlInputs { consumed.insert(c) }
        }
        var feeds: [Output: Tensor] = [:]
        for op in ops where op.type == "Placeholder" {
            if let t = feedValue(for: op.output()) { feeds[op.output()] = t }
        }
        let sinks = ops.filter { !consumed.contains($0) }
        let fetches = sinks.flatMap { op in op.outputs.filter { $0.dtype != .string } }
        let targets = sinks.filter { $0.outputs.isEmpty }
        let session: Session
        do { session = try Session(graph: graph) } catch {
            expectKilnError(error, "Session(graph:)")
            return
        }
        defer { session.close() }
        do {
            _ = try session.run(fetches, feeds: feeds, targets: targets)
            return
        } catch {
            expectKilnError(error, "Session.run")
        }
        // One bad sink fails the whole step; run a few alone so the others are still compiled.
        for f in fetches.prefix(4) {
            do { _ = try session.run([f], feeds: feeds) } catch { expectKilnError(error, "Session.run") }
        }
    }

    /// A small tensor for a placeholder, with varied values (zeros, negatives, ones) so
    /// divisions, indices and shapes computed from feeds see hostile values too.
    static func feedValue(for output: Output) -> Tensor? {
        guard output.dtype != .string else { return nil }
        let dims = output.shape.dims ?? [2]
        let shape = dims.map { d -> Int in d.map { max($0, 0) } ?? 2 }
        guard let count = Sizes.product(shape), count <= maxFeedElements else { return nil }
        guard var t = try? Tensor(zeros: output.dtype, shape: shape) else { return nil }
        do {
            try t.withUnsafeMutableBytes { (raw: UnsafeMutableRawBufferPointer) -> Void in
            for k in 0..<count {
                let v = k % 7 - 2
                switch output.dtype {
                case .float32: raw.storeBytes(of: Float(v) * 0.75, toByteOffset: 4 * k, as: Float.self)
                case .float64: raw.storeBytes(of: Double(v) * 0.75, toByteOffset: 8 * k, as: Double.self)
                case .int32: raw.storeBytes(of: Int32(v), toByteOffset: 4 * k, as: Int32.self)
                case .int64: raw.storeBytes(of: Int64(v), toByteOffset: 8 * k, as: Int64.self)
                case .uint8: raw.storeBytes(of: UInt8(truncatingIfNeeded: v), toByteOffset: k, as: UInt8.self)
                case .int16: raw.storeBytes(of: Int16(v), toByteOffset: 2 * k, as: Int16.self)
                case .float16, .bfloat16: raw.storeBytes(of: HalfFloat.bits(Float(v) * 0.75, output.dtype), toByteOffset: 2 * k, as: UInt16.self)
                case .bool: raw.storeBytes(of: UInt8(k & 1), toByteOffset: k, as: UInt8.self)
                case .string: break
                }
            }
            }
        } catch {
            return nil
        }
        return t
    }
}
