import XCTest
import Foundation
import Kiln
import KilnTestSupport

/// Every forward case of the golden ops.jsonl (TensorFlow's outputs, in Fixtures/golden), built as a graph with its inputs fed through
/// placeholders (so the JIT computes them, not constant folding) and compared with TensorFlow.
final class GoldenOpsTests: XCTestCase {
    typealias Builder = (Graph, [Output], [String: Any]) throws -> [Output]

    static func int(_ a: [String: Any], _ k: String) -> Int? { (a[k] as? NSNumber)?.intValue }
    static func ints(_ a: [String: Any], _ k: String) -> [Int]? { (a[k] as? [Any])?.map { ($0 as! NSNumber).intValue } }
    static func axes(_ a: [String: Any], _ k: String) -> [Int]? {
        if let n = a[k] as? NSNumber { return [n.intValue] }
        return ints(a, k)
    }
    static func bool(_ a: [String: Any], _ k: String) -> Bool { (a[k] as? NSNumber)?.boolValue ?? false }
    static func double(_ a: [String: Any], _ k: String) -> Double? { (a[k] as? NSNumber)?.doubleValue }
    static func string(_ a: [String: Any], _ k: String) -> String? { a[k] as? String }

    static func unary(_ f: @escaping (Graph) -> (Output) throws -> Output) -> Builder { { g, x, _ in [try f(g)(x[0])] } }
    static func binary(_ f: @escaping (Graph) -> (Output, Output) throws -> Output) -> Builder { { g, x, _ in [try f(g)(x[0], x[1])] } }

    nonisolated(unsafe) static let builders: [String: Builder] = [
        "add": { g, x, _ in [try g.add(x[0], x[1])] },
        "sub": { g, x, _ in [try g.subtract(x[0], x[1])] },
        "mul": { g, x, _ in [try g.multiply(x[0], x[1])] },
        "div": { g, x, _ in [try g.divide(x[0], x[1])] },
        "floordiv": { g, x, _ in [try g.floorDiv(x[0], x[1])] },
        "floormod": { g, x, _ in [try g.floorMod(x[0], x[1])] },
        "maximum": { g, x, _ in [try g.maximum(x[0], x[1])] },
        "minimum": { g, x, _ in [try g.minimum(x[0], x[1])] },
        "pow": { g, x, _ in [try g.pow(x[0], x[1])] },
        "squared_difference": { g, x, _ in [try g.squaredDifference(x[0], x[1])] },
        "abs": { g, x, _ in [try g.abs(x[0])] }, "neg": { g, x, _ in [try g.negative(x[0])] },
        "exp": { g, x, _ in [try g.exp(x[0])] }, "log": { g, x, _ in [try g.log(x[0])] },
        "sqrt": { g, x, _ in [try g.sqrt(x[0])] }, "rsqrt": { g, x, _ in [try g.rsqrt(x[0])] },
        "tanh": { g, x, _ in [try g.tanh(x[0])] }, "sigmoid": { g, x, _ in [try g.sigmoid(x[0])] },
        "relu": { g, x, _ in [try g.relu(x[0])] }, "relu6": { g, x, _ in [try g.relu6(x[0])] },
        "leaky_relu": { g, x, a in [try g.leakyRelu(x[0], alpha: double(a, "alpha") ?? 0.2)] },
        "elu": { g, x, _ in [try g.elu(x[0])] }, "softplus": { g, x, _ in [try g.softplus(x[0])] },
        "square": { g, x, _ in [try g.square(x[0])] }, "floor": { g, x, _ in [try g.floor(x[0])] },
        "ceil": { g, x, _ in [try g.ceil(x[0])] }, "round": { g, x, _ in [try g.round(x[0])] },
        "sign": { g, x, _ in [try g.sign(x[0])] }, "reciprocal": { g, x, _ in [try g.reciprocal(x[0])] },
        "sin": { g, x, _ in [try g.sin(x[0])] }, "cos": { g, x, _ in [try g.cos(x[0])] },
        "equal": { g, x, _ in [try g.equal(x[0], x[1])] }, "not_equal": { g, x, _ in [try g.notEqual(x[0], x[1])] },
        "less": { g, x, _ in [try g.less(x[0], x[1])] }, "less_equal": { g, x, _ in [try g.lessEqual(x[0], x[1])] },
        "greater": { g, x, _ in [try g.greater(x[0], x[1])] }, "greater_equal": { g, x, _ in [try g.greaterEqual(x[0], x[1])] },
        "logical_and": { g, x, _ in [try g.logicalAnd(x[0], x[1])] }, "logical_or": { g, x, _ in [try g.logicalOr(x[0], x[1])] },
        "logical_not": { g, x, _ in [try g.logicalNot(x[0])] }, "logical_xor": { g, x, _ in [try g.logicalXor(x[0], x[1])] },
        "select": { g, x, _ in [try g.select(x[0], x[1], x[2])] },
        "where": { g, x, _ in [try g.where(x[0], x[1], x[2])] },
        "where_indices": { g, x, _ in [try g.whereIndices(x[0])] },
        "cast": { g, x, a in [try g.cast(x[0], to: Golden.dtype(string(a, "DstT")!))] },
        "clip_by_value": { g, x, a in
            if x.count == 3 { return [try g.clipByValue(x[0], x[1], x[2])] }
            return [try g.clipByValue(x[0], min: double(a, "clip_value_min")!, max: double(a, "clip_value_max")!)]
        },
        "matmul": { g, x, a in [try g.matmul(x[0], x[1], transposeA: bool(a, "transpose_a"), transposeB: bool(a, "transpose_b"))] },
        "batch_matmul": { g, x, a in [try g.batchMatmul(x[0], x[1], adjointA: bool(a, "adj_x"), adjointB: bool(a, "adj_y"))] },
        "reduce_sum": { g, x, a in [try g.reduceSum(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "reduce_mean": { g, x, a in [try g.reduceMean(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "reduce_max": { g, x, a in [try g.reduceMax(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "reduce_min": { g, x, a in [try g.reduceMin(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "reduce_prod": { g, x, a in [try g.reduceProd(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "reduce_all": { g, x, a in [try g.reduceAll(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "reduce_any": { g, x, a in [try g.reduceAny(x[0], axes: axes(a, "axis"), keepDims: bool(a, "keepdims"))] },
        "argmax": { g, x, a in [try g.argmax(x[0], axis: int(a, "axis")!, outputType: Golden.dtype(string(a, "output_type") ?? "int64"))] },
        "argmin": { g, x, a in [try g.argmin(x[0], axis: int(a, "axis")!, outputType: Golden.dtype(string(a, "output_type") ?? "int64"))] },
        "concat": { g, x, a in [try g.concat(x, axis: int(a, "axis")!)] },
        "expand_dims": { g, x, a in [try g.expandDims(x[0], axis: int(a, "axis")!)] },
        "squeeze": { g, x, a in [try g.squeeze(x[0], axes: axes(a, "axis"))] },
        "reshape": { g, x, a in [try g.reshape(x[0], ints(a, "shape")!)] },
        "transpose": { g, x, a in [try g.transpose(x[0], perm: ints(a, "perm"))] },
        "pad": { g, x, a in
            let p = (a["paddings"] as! [[Any]]).map { $0.map { ($0 as! NSNumber).intValue } }
            let mode = Graph.PadMode(rawValue: string(a, "mode") ?? "CONSTANT")!
            return [try g.pad(x[0], paddings: p, mode: mode, constantValue: double(a, "constant_values") ?? 0)]
        },
        "tile": { g, x, a in [try g.tile(x[0], multiples: ints(a, "multiples")!)] },
        "slice": { g, x, a in [try g.slice(x[0], begin: ints(a, "begin")!, size: ints(a, "size")!)] },
        "strided_slice": { g, x, a in
            if a["begin"] == nil, let expr = string(a, "expr") { return [try pythonSlice(g, x[0], expr)] }
            return [try g.stridedSlice(x[0], begin: ints(a, "begin")!, end: ints(a, "end")!, strides: ints(a, "strides"),
                                beginMask: int(a, "begin_mask") ?? 0, endMask: int(a, "end_mask") ?? 0, ellipsisMask: int(a, "ellipsis_mask") ?? 0,
                                newAxisMask: int(a, "new_axis_mask") ?? 0, shrinkAxisMask: int(a, "shrink_axis_mask") ?? 0)]
        },
        "gather": { g, x, a in [try g.gather(x[0], x[1], axis: int(a, "axis") ?? 0, batchDims: int(a, "batch_dims") ?? 0)] },
        "gather_nd": { g, x, _ in [try g.gatherNd(x[0], x[1])] },
        "one_hot": { g, x, a in
            [try g.oneHot(x[0], depth: int(a, "depth")!, onValue: double(a, "on_value") ?? 1, offValue: double(a, "off_value") ?? 0,
                          axis: int(a, "axis") ?? -1, dtype: Golden.dtype(string(a, "dtype") ?? "float32"))]
        },
        "shape": { g, x, a in [try g.shape(x[0], outType: Golden.dtype(string(a, "out_type") ?? "int32"))] },
        "rank": { g, x, _ in [try g.rank(x[0])] },
        "size": { g, x, a in [try g.size(x[0], outType: Golden.dtype(string(a, "out_type") ?? "int32"))] },
        "range": { g, _, a in
            [try g.range(double(a, "start")!, double(a, "limit")!, double(a, "delta") ?? 1, dtype: Golden.dtype(string(a, "dtype") ?? "int32"))]
        },
        "fill": { g, _, a in [try g.fill(ints(a, "dims")!, double(a, "value")!, dtype: Golden.dtype(string(a, "dtype") ?? "float32"))] },
        "zeros_like": { g, x, _ in [try g.zerosLike(x[0])] },
        "ones_like": { g, x, _ in [try g.onesLike(x[0])] },
        "softmax": { g, x, a in [try g.softmax(x[0], axis: int(a, "axis") ?? -1)] },
        "log_softmax": { g, x, a in [try g.logSoftmax(x[0], axis: int(a, "axis") ?? -1)] },
        "softmax_cross_entropy_with_logits": { g, x, a in [try g.softmaxCrossEntropyWithLogits(labels: x[0], logits: x[1], axis: int(a, "axis") ?? -1)] },
        "sparse_softmax_cross_entropy_with_logits": { g, x, _ in [try g.sparseSoftmaxCrossEntropyWithLogits(labels: x[0], logits: x[1])] },
        "sigmoid_cross_entropy_with_logits": { g, x, _ in [try g.sigmoidCrossEntropyWithLogits(labels: x[0], logits: x[1])] },
        "l2_loss": { g, x, _ in [try g.l2Loss(x[0])] },
        "bias_add": { g, x, a in [try g.biasAdd(x[0], x[1], dataFormat: string(a, "data_format") ?? "NHWC")] },
        "conv2d": { g, x, a in
            [try g.conv2d(x[0], x[1], strides: ints(a, "strides")!, padding: string(a, "padding")!,
                          dilations: ints(a, "dilations") ?? [1, 1, 1, 1], dataFormat: string(a, "data_format") ?? "NHWC")]
        },
        "max_pool": { g, x, a in [try g.maxPool(x[0], ksize: ints(a, "ksize")!, strides: ints(a, "strides")!, padding: string(a, "padding")!)] },
        "avg_pool": { g, x, a in [try g.avgPool(x[0], ksize: ints(a, "ksize")!, strides: ints(a, "strides")!, padding: string(a, "padding")!)] },
        "moments": { g, x, a in
            let m = try g.moments(x[0], axes: axes(a, "axes")!, keepDims: bool(a, "keepdims"))
            return [m.mean, m.variance]
        },
        "batch_norm_train": { g, x, a in
            let m = try g.moments(x[0], axes: axes(a, "axes")!)
            let y = try g.batchNormalization(x[0], mean: m.mean, variance: m.variance, offset: x[2], scale: x[1],
                                             varianceEpsilon: double(a, "variance_epsilon")!)
            return [y, m.mean, m.variance]
        },
        "fused_batch_norm_train": { g, x, a in
            let r = try g.fusedBatchNorm(x[0], scale: x[1], offset: x[2], epsilon: double(a, "epsilon") ?? 0.001, isTraining: true)
            return [r.y, r.mean, r.variance]
        },
    ]

    /// Python's `x[...]` slice syntax to a StridedSlice, as TensorFlow's __getitem__ encodes it.
    static func pythonSlice(_ g: Graph, _ x: Output, _ expr: String) throws -> Output {
        let inner = expr.drop { $0 != "[" }.dropFirst().dropLast()
        var begin: [Int] = [], end: [Int] = [], strides: [Int] = []
        var bm = 0, em = 0, ellipsis = 0, newAxis = 0, shrink = 0
        for (i, raw) in inner.split(separator: ",").enumerated() {
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item == "..." { ellipsis |= 1 << i; begin.append(0); end.append(0); strides.append(1); continue }
            if item == "tf.newaxis" { newAxis |= 1 << i; begin.append(0); end.append(0); strides.append(1); continue }
            let parts = item.split(separator: ":", omittingEmptySubsequences: false).map { String($0) }
            if parts.count == 1 { shrink |= 1 << i; let v = Int(parts[0])!; begin.append(v); end.append(v + 1); strides.append(1); continue }
            let s = parts.count > 2 && !parts[2].isEmpty ? Int(parts[2])! : 1
            if parts[0].isEmpty { bm |= 1 << i; begin.append(0) } else { begin.append(Int(parts[0])!) }
            if parts[1].isEmpty { em |= 1 << i; end.append(0) } else { end.append(Int(parts[1])!) }
            strides.append(s)
        }
        return try g.stridedSlice(x, begin: begin, end: end, strides: strides, beginMask: bm, endMask: em,
                                  ellipsisMask: ellipsis, newAxisMask: newAxis, shrinkAxisMask: shrink)
    }

    static let families: [(String, Set<String>)] = [
        ("elementwise", ["add", "sub", "mul", "div", "floordiv", "floormod", "maximum", "minimum", "pow", "squared_difference",
                         "abs", "neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "relu6", "leaky_relu", "elu",
                         "softplus", "square", "floor", "ceil", "round", "sign", "reciprocal", "sin", "cos", "clip_by_value"]),
        ("logic", ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
                   "logical_not", "logical_xor", "select", "where", "where_indices", "cast"]),
        ("matmul_reduce", ["matmul", "batch_matmul", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod",
                           "reduce_all", "reduce_any", "argmax", "argmin"]),
        ("shape", ["concat", "expand_dims", "squeeze", "reshape", "transpose", "pad", "tile", "slice", "strided_slice", "gather",
                   "gather_nd", "one_hot", "shape", "rank", "size", "range", "fill", "zeros_like", "ones_like"]),
        ("nn", ["softmax", "log_softmax", "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
                "sigmoid_cross_entropy_with_logits", "l2_loss", "bias_add", "conv2d", "max_pool", "avg_pool", "moments",
                "batch_norm_train", "fused_batch_norm_train"]),
    ]

    /// Transcendentals and reductions get the README's looser relative tolerance.
    static let loose: Set<String> = ["exp", "log", "tanh", "sigmoid", "elu", "softplus", "pow", "sin", "cos", "rsqrt", "softmax",
                                     "log_softmax", "softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
                                     "sigmoid_cross_entropy_with_logits", "moments", "batch_norm_train", "fused_batch_norm_train",
                                     "reduce_prod", "reduce_mean", "reduce_sum", "conv2d", "matmul", "batch_matmul", "l2_loss", "avg_pool"]

    /// One golden case built into a graph: what to fetch and feed, and what TensorFlow computed.
    struct BuiltCase {
        var fetches: [Output]
        var feeds: [Output: Tensor]
        var want: [Tensor]
        var rtol: Double
        /// Forward outputs' static shapes must agree with what ran.
        var staticShapes: Bool
        var atol = 1e-5
    }

    /// Builds the forward case `c` into `g`, its placeholders named `prefix` + `in<i>`.
    static func buildForward(_ c: [String: Any], in g: Graph, prefix: String, builders: [String: Builder] = builders) throws -> BuiltCase {
        let op = c["op"] as! String
        guard let build = builders[op] else { throw KilnError.unimplemented("no builder for \(op)") }
        let inputs = try (c["inputs"] as! [[String: Any]]).map(Golden.tensor)
        let placeholders = try inputs.enumerated().map { i, t in try g.placeholder(t.dtype, shape: Shape(t.shape), name: "\(prefix)in\(i)") }
        let outs = try build(g, placeholders, c["attrs"] as? [String: Any] ?? [:])
        return BuiltCase(fetches: outs, feeds: Dictionary(uniqueKeysWithValues: zip(placeholders, inputs)),
                         want: try (c["outputs"] as! [[String: Any]]).map(Golden.tensor), rtol: loose.contains(op) ? 1e-4 : 1e-5, staticShapes: true)
    }

    /// `grad:<op>` cases: gradients of op's (first) output with respect to `attrs.wrt`, with the
    /// upstream gradient all ones or given as the last input.
    static func buildGradient(_ c: [String: Any], in g: Graph, prefix: String, builders: [String: Builder] = builders) throws -> BuiltCase {
        let op = String((c["op"] as! String).dropFirst(5))
        guard let build = builders[op] else { throw KilnError.unimplemented("no builder for \(op)") }
        var attrs = c["attrs"] as? [String: Any] ?? [:]
        let wrt = ints(attrs, "wrt")!
        let upstreamGiven = (attrs["grad_ys"] as? String) == "last_input"
        attrs["wrt"] = nil
        attrs["grad_ys"] = nil
        var inputs = try (c["inputs"] as! [[String: Any]]).map(Golden.tensor)
        let upstream = upstreamGiven ? inputs.removeLast() : nil
        let placeholders = try inputs.enumerated().map { i, t in try g.placeholder(t.dtype, shape: Shape(t.shape), name: "\(prefix)in\(i)") }
        let y = try build(g, placeholders, attrs)[0]
        var feeds = Dictionary(uniqueKeysWithValues: zip(placeholders, inputs))
        var gradYs: [Output?]? = nil
        if let upstream {
            let u = try g.placeholder(upstream.dtype, shape: Shape(upstream.shape), name: "\(prefix)upstream")
            feeds[u] = upstream
            gradYs = [u]
        }
        let grads = try g.gradients([y], wrt.map { placeholders[$0] }, gradYs: gradYs)
        guard grads.allSatisfy({ $0 != nil }) else { throw KilnError.invalidArgument("unconnected gradient") }
        return BuiltCase(fetches: grads.map { $0! }, feeds: feeds, want: try (c["outputs"] as! [[String: Any]]).map(Golden.tensor),
                         rtol: 1e-4, staticShapes: false)
    }

    /// What is wrong with `got` for `b`, or nil.
    static func judge(_ b: BuiltCase, _ got: [Tensor]) -> String? {
        guard got.count == b.want.count else { return "\(got.count) outputs, want \(b.want.count)" }
        for (k, (x, y)) in zip(got, b.want).enumerated() {
            if b.staticShapes, let s = b.fetches[k].shape.dims, s.count != y.rank || zip(s, y.shape).contains(where: { $0 != nil && $0! != $1 }) {
                return "output \(k): static shape \(b.fetches[k].shape) disagrees with \(y.shape)"
            }
            if let m = Golden.mismatch(x, y, rtol: b.rtol, atol: b.atol) { return "output \(k): \(m)" }
        }
        return nil
    }

    /// Runs `cases` (built by `build`) with `config`, up to `batch` of them in one graph and one
    /// Session.run (one executable: compiling is the slow part on the C backend). A case that
    /// fails in its batch runs again alone, so every failure names its case; one that passes
    /// alone but not batched is still a failure. Each session run has a deadline, so a result
    /// that never comes back is a failure, not a stuck suite. Returns the problem per case index.
    static func runBatched(_ cases: [[String: Any]], config: SessionConfig, batch: Int,
                           build: @escaping (([String: Any], Graph, String) throws -> BuiltCase)) -> [Int: String] {
        func runAlone(_ k: Int) -> String? {
            do {
                let g = Graph()
                let b = try build(cases[k], g, "")
                guard let outcome = withDeadline(120, { try Session(graph: g, config: config).run(b.fetches, feeds: b.feeds) }) else {
                    return "no result within 120 s"
                }
                return judge(b, try outcome.get())
            } catch { return "threw \(error)" }
        }
        var problems: [Int: String] = [:]
        for start in stride(from: 0, to: cases.count, by: batch) {
            let g = Graph()
            var built: [(Int, BuiltCase)] = []
            for k in start..<min(start + batch, cases.count) {
                do { built.append((k, try build(cases[k], g, "c\(k)/"))) } catch { problems[k] = "threw \(error)" }
            }
            let fetches = built.flatMap { $0.1.fetches }
            let feeds = built.reduce(into: [Output: Tensor]()) { $0.merge($1.1.feeds) { a, _ in a } }
            let outcome = withDeadline(300) { try Session(graph: g, config: config).run(fetches, feeds: feeds) }
            if case .some(.success(let got)) = outcome {
                var offset = 0
                for (k, b) in built {
                    let mine = Array(got[offset..<(offset + b.fetches.count)])
                    offset += b.fetches.count
                    guard let batched = judge(b, mine) else { continue }
                    problems[k] = runAlone(k) ?? "passes alone but not run with \(built.count - 1) other cases: \(batched)"
                }
            } else {
                for (k, _) in built { if let p = runAlone(k) { problems[k] = p } }
                if case .none = outcome, built.allSatisfy({ problems[$0.0] == nil }) {
                    for (k, _) in built { problems[k] = "its batch of \(built.count) cases gave no result within 300 s; alone it passes" }
                }
            }
        }
        return problems
    }

    /// Every backend the golden cases run on, as a session configuration (TestBackends: all, or
    /// those KILN_TEST_BACKENDS names).
    /// One that cannot run here (no C compiler) is named with the reason, loudly.
    static let backends: Backends = BackendKind.allCases.compactMap { kind in
        guard TestBackends.selected(kind.rawValue) else { return nil }
        do { _ = try kind.make() } catch { TestBackends.unavailable(kind.rawValue, error); return nil }
        return (kind.rawValue, SessionConfig(backend: kind))
    }

    func testEveryForwardCaseMatchesTensorFlow() throws { try forwardCases(on: Self.everyBackend()) }

    /// Every forward case with every op on /gpu:0 (ops without a device go to the GPU).
    func testEveryForwardCaseMatchesTensorFlowOnGPU() throws { try forwardCases(on: Self.gpuBackend("golden ops")) }

    func forwardCases(on backends: Backends) throws {
        let cases = try Golden.lines("ops.jsonl").filter { !($0["op"] as! String).hasPrefix("grad:") }
        XCTAssertGreaterThan(cases.count, 300)
        Self.checkCases(cases, label: "golden op", suite: "golden ops", on: backends, batch: 24,
                        build: { try Self.buildForward($0, in: $1, prefix: $2) }) { backend, problems in
            var tally: [String: (passed: Int, failed: Int)] = [:]
            for (k, c) in cases.enumerated() {
                let op = c["op"] as! String
                let family = Self.families.first { $0.1.contains(op) }?.0 ?? "other"
                if problems[k] == nil { tally[family, default: (0, 0)].passed += 1 } else { tally[family, default: (0, 0)].failed += 1 }
            }
            for (family, _) in Self.families + [("other", [])] {
                if let (p, f) = tally[family] { print("backend \(backend): golden ops \(family): \(p) passed, \(f) failed") }
            }
        }
    }

    func testEveryGradientCaseMatchesTensorFlow() throws { try gradientCases(on: Self.everyBackend()) }

    func testEveryGradientCaseMatchesTensorFlowOnGPU() throws { try gradientCases(on: Self.gpuBackend("golden gradients")) }

    func gradientCases(on backends: Backends) throws {
        let cases = try Golden.lines("ops.jsonl").filter { ($0["op"] as! String).hasPrefix("grad:") }
        XCTAssertGreaterThan(cases.count, 90)
        Self.checkCases(cases, label: "golden gradient", suite: "golden gradients", on: backends, batch: 12) {
            try Self.buildGradient($0, in: $1, prefix: $2)
        }
    }

    /// Every case TensorFlow rejects is rejected when the graph is built, with TensorFlow's code
    /// and the substance of its message (the text after TensorFlow's error class).
    func testEveryErrorCaseThrowsAtGraphConstruction() throws {
        let codes: [String: KilnError.Code] = ["InvalidArgumentError": .invalidArgument, "ResourceExhaustedError": .resourceExhausted,
                                               "OutOfRangeError": .outOfRange, "UnimplementedError": .unimplemented]
        let cases = try Golden.lines("ops_errors.jsonl")
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let op = c["op"] as! String
            guard let build = Self.builders[op] else { XCTFail("no builder for error case op '\(op)'"); continue }
            let tfError = c["error"] as! String
            let colon = tfError.firstIndex(of: ":")!
            let tfClass = String(tfError[..<colon]), tfMessage = tfError[tfError.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let g = Graph()
            let inputs = try (c["inputs"] as! [[String: Any]]).map(Golden.tensor)
            let ph = try inputs.enumerated().map { i, t in try g.placeholder(t.dtype, shape: Shape(t.shape), name: "in\(i)") }
            XCTAssertThrowsError(try build(g, ph, c["attrs"] as! [String: Any]), "\(op) should be rejected") { error in
                let m = (error as? KilnError)?.message ?? "\(error)"
                XCTAssertTrue(m.contains(tfMessage), "\(op): \"\(m)\" does not say TensorFlow's \"\(tfMessage)\"")
                XCTAssertEqual((error as? KilnError)?.code, codes[tfClass], "\(op): \(tfClass)")
            }
        }
    }
}
