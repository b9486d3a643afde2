import XCTest
import Kiln

/// A run whose feeds leave the batch open compiles once for every batch up to the first one fed:
/// a smaller batch runs on that executable and computes what a compile for it computes.
final class BatchTemplateRuntimeTests: XCTestCase {
    struct MLP {
        let g = Graph()
        let x: Output, labels: Output, logits: Output, loss: Output, accuracy: Output, train: KilnFrontend.Operation
        let variables: [Variable]

        init(optimizer: String = "sgd") throws {
            x = try g.placeholder(.float32, shape: [nil, 6], name: "x")
            labels = try g.placeholder(.int32, shape: [nil], name: "labels")
            let h = try g.dense(x, units: 8, activation: .relu, kernelInitializer: .truncatedNormal(stddev: 0.5, seed: 3), name: "h")
            logits = try g.dense(h, units: 3, kernelInitializer: .truncatedNormal(stddev: 0.5, seed: 4), name: "out")
            loss = try g.sparseSoftmaxCrossEntropyLoss(labels: labels, logits: logits)
            accuracy = try g.accuracy(logits: logits, labels: labels)
            switch optimizer {
            case "adam": train = try AdamOptimizer(g, learningRate: 0.05).minimize(loss)
            default: train = try GradientDescentOptimizer(g, learningRate: 0.5).minimize(loss)
            }
            variables = g.trainableVariables
        }

        func batch(_ n: Int, from start: Int) throws -> [Output: Tensor] {
            let xs = (0..<(n * 6)).map { Float(sin(Double(start * 6 + $0) * 0.37)) }
            let ys = (0..<n).map { Int32((start + $0) % 3) }
            return [x: try Tensor(shape: [n, 6], scalars: xs), labels: try Tensor(shape: [n], scalars: ys)]
        }
    }

    func config(_ templates: Bool, _ backend: BackendKind) -> SessionConfig {
        var c = SessionConfig(backend: backend)
        c.batchTemplates = templates
        return c
    }

    /// An epoch of 3 batches of 16 and a last batch of 5, twice: one compile for the step with
    /// templates, and the losses, accuracies and variables of a session that compiles each batch
    /// size, within float rounding.
    func trainsAShortLastBatchWithoutCompilingIt(_ backend: BackendKind, optimizer: String) throws {
        let mlp = try MLP(optimizer: optimizer)
        let one = try Session(graph: mlp.g, config: config(true, backend))
        let each = try Session(graph: mlp.g, config: config(false, backend))
        for s in [one, each] { try s.run(mlp.g.globalVariablesInitializer()) }
        for epoch in 0..<2 {
            for (start, n) in [(0, 16), (16, 16), (32, 16), (48, 5)] {
                let feeds = try mlp.batch(n, from: start + epoch)
                let a = try one.run([mlp.loss, mlp.accuracy], feeds: feeds, targets: [mlp.train])
                let b = try each.run([mlp.loss, mlp.accuracy], feeds: feeds, targets: [mlp.train])
                for (u, v) in zip(a, b) {
                    XCTAssertEqual(u.shape, v.shape)
                    XCTAssertEqual(try u.scalar(as: Float.self), try v.scalar(as: Float.self), accuracy: 1e-5, "batch \(n) of epoch \(epoch)")
                }
            }
        }
        // The initialiser and the step; the other session also compiled the batch of 5.
        XCTAssertEqual(one.executableCache.compiles, 2)
        XCTAssertEqual(one.executableCache.batchReuses, 1)
        XCTAssertEqual(each.executableCache.compiles, 3)
        XCTAssertEqual(each.executableCache.batchReuses, 0)
        for v in mlp.variables {
            let a = try one.run(v).scalars(as: Float.self), b = try each.run(v).scalars(as: Float.self)
            for (u, w) in zip(a, b) { XCTAssertEqual(u, w, accuracy: 1e-5, v.name) }
        }
    }

    func testSGDTrainsAShortLastBatchWithoutCompilingItLLVM() throws { try trainsAShortLastBatchWithoutCompilingIt(.llvm, optimizer: "sgd") }
    func testAdamTrainsAShortLastBatchWithoutCompilingItLLVM() throws { try trainsAShortLastBatchWithoutCompilingIt(.llvm, optimizer: "adam") }
    func testSGDTrainsAShortLastBatchWithoutCompilingItC() throws { try trainsAShortLastBatchWithoutCompilingIt(.c, optimizer: "sgd") }

    /// Every batch from 1 to the template's runs on it and gives the per-row results of a
    /// compile for that batch exactly; a larger batch compiles its own.
    func testEveryBatchUpToTheFirstRunsOnItsExecutable() throws {
        let mlp = try MLP()
        let probs = try mlp.g.softmax(mlp.logits)
        let one = try Session(graph: mlp.g, config: config(true, .llvm))
        let each = try Session(graph: mlp.g, config: config(false, .llvm))
        for s in [one, each] { try s.run(mlp.g.globalVariablesInitializer()) }
        for n in [12, 1, 7, 11, 2, 12] {
            let feeds = try mlp.batch(n, from: n)
            let a = try one.run([probs, mlp.loss], feeds: [mlp.x: feeds[mlp.x]!, mlp.labels: feeds[mlp.labels]!])
            let b = try each.run([probs, mlp.loss], feeds: [mlp.x: feeds[mlp.x]!, mlp.labels: feeds[mlp.labels]!])
            XCTAssertEqual(a[0].shape, [n, 3])
            XCTAssertEqual(try a[0].scalars(as: Float.self), try b[0].scalars(as: Float.self), "batch \(n)")
            XCTAssertEqual(try a[1].scalar(as: Float.self), try b[1].scalar(as: Float.self), accuracy: 1e-6, "batch \(n)")
        }
        XCTAssertEqual(one.executableCache.compiles, 2)
        XCTAssertEqual(one.executableCache.batchReuses, 4)
        _ = try one.run([probs], feeds: try mlp.batch(13, from: 0).filter { $0.key == mlp.x })
        XCTAssertEqual(one.executableCache.compiles, 3)
    }
}

/// Ops over a batch one at a time: run at the first batch, then smaller ones, on a session with
/// batch templates and one compiling each batch, the results must agree (to float rounding,
/// where a reduction over the batch may group its terms differently).
final class BatchTemplateOpSweepTests: XCTestCase {
    typealias Build = (Graph, Output) throws -> [Output]

    nonisolated(unsafe) static let cases: [(String, Build)] = [
        ("elementwise", { g, x in [try g.tanh(g.add(g.multiply(x, x), g.constant(0.5 as Float)))] }),
        ("row broadcast", { g, x in [try g.add(x, g.constant([1, 2, 3, 4, 5] as [Float]))] }),
        ("column broadcast", { g, x in [try g.subtract(x, g.reduceMax(x, axes: [1], keepDims: true))] }),
        ("sum over the batch", { g, x in [try g.reduceSum(x, axes: [0])] }),
        ("mean over the batch", { g, x in [try g.reduceMean(x, axes: [0])] }),
        ("mean of everything", { g, x in [try g.reduceMean(x)] }),
        ("sum over rows", { g, x in [try g.reduceSum(x, axes: [1])] }),
        ("max over the batch", { g, x in [try g.reduceMax(x, axes: [0])] }),
        ("moments", { g, x in let m = try g.moments(x, axes: [0]); return [m.mean, m.variance] }),
        ("softmax", { g, x in [try g.softmax(x), try g.logSoftmax(x)] }),
        ("argmax of rows", { g, x in [try g.argmax(x, axis: 1)] }),
        ("matmul", { g, x in [try g.matmul(x, g.constant((0..<15).map { Float($0) * 0.1 }, shape: [5, 3]))] }),
        ("x^T x", { g, x in [try g.matmul(x, x, transposeA: true)] }),
        ("l2 loss", { g, x in [try g.l2Loss(x)] }),
        ("size and shape", { g, x in [try g.divide(g.reduceSum(x), g.cast(g.size(x), to: .float32)), try g.cast(g.shape(x), to: .float32)] }),
        ("reshape", { g, x in [try g.reduceSum(g.reshape(x, [-1]), axes: [0]), try g.reshape(x, [-1, 5, 1])] }),
        ("transpose inside rows", { g, x in [try g.transpose(g.reshape(x, [-1, 5, 1]), perm: [0, 2, 1])] }),
        ("slice of columns", { g, x in [try g.slice(x, begin: [0, 1], size: [-1, 3])] }),
        ("concat of columns", { g, x in [try g.concat([x, g.square(x)], axis: 1)] }),
        ("one hot", { g, x in [try g.oneHot(g.argmax(x, axis: 1), depth: 5)] }),
        ("gather rows of a table", { g, x in
            let table = try g.constant((0..<20).map { Float($0) }, shape: [4, 5])
            return [try g.gather(table, g.floorMod(g.cast(g.argmax(x, axis: 1), to: .int32), g.constant(4 as Int32)))]
        }),
        ("select", { g, x in [try g.select(g.greater(x, g.zerosLike(x)), x, g.negative(x))] }),
        ("gradient of a mean", { g, x in
            let w = try g.constant((0..<15).map { Float($0) * 0.05 - 0.3 }, shape: [5, 3])
            let loss = try g.reduceMean(g.square(g.matmul(x, w)))
            return try g.gradients([loss], [x]).map { $0! }
        }),
        ("concat along the batch", { g, x in [try g.concat([x, x], axis: 0)] }),
        ("transpose of the batch", { g, x in [try g.transpose(x)] }),
        ("convolution", { g, x in
            let f = try g.constant((0..<9).map { Float($0) * 0.1 }, shape: [3, 3, 1, 1])
            return [try g.conv2d(g.reshape(x, [-1, 5, 1, 1]), f, strides: [1, 1, 1, 1], padding: "SAME")]
        }),
        ("pooling and its gradient", { g, x in
            let image = try g.reshape(x, [-1, 5, 1, 1])
            let pooled = try g.maxPool(image, ksize: [1, 2, 1, 1], strides: [1, 2, 1, 1], padding: "SAME")
            return [pooled] + (try g.gradients([g.reduceSum(g.square(pooled))], [image]).map { $0! })
        }),
        ("convolution gradients", { g, x in
            let image = try g.reshape(g.concat([x, x, x, x], axis: 1), [-1, 4, 5, 1])
            let f = try g.constant((0..<18).map { Float($0) * 0.05 - 0.4 }, shape: [3, 3, 1, 2])
            let y = try g.conv2d(image, f, strides: [1, 1, 1, 1], padding: "SAME")
            return try [y] + g.gradients([g.reduceMean(g.square(y))], [image, f]).map { $0! }
        }),
        ("dropout", { g, x in [try g.dropout(x, keepProb: 0.6, seed: 7)] }),
    ]

    func input(_ n: Int) throws -> Tensor {
        try Tensor(shape: [n, 5], scalars: (0..<(n * 5)).map { Float(sin(Double($0) * 0.71)) * 2 })
    }

    func testEveryCaseAgreesWithACompileForEachBatch() throws {
        for backend in [BackendKind.llvm, .c] {
            for (name, build) in Self.cases {
                let g = Graph()
                g.seed = 1
                let x = try g.placeholder(.float32, shape: [nil, 5], name: "x")
                let outs = try build(g, x)
                var on = SessionConfig(backend: backend), off = on
                off.batchTemplates = false
                on.batchTemplates = true
                let one = try Session(graph: g, config: on), each = try Session(graph: g, config: off)
                for n in [9, 3, 1, 8] {
                    let a = try one.run(outs, feeds: [x: input(n)]), b = try each.run(outs, feeds: [x: input(n)])
                    for (u, v) in zip(a, b) {
                        XCTAssertEqual(u.shape, v.shape, "\(name), batch \(n), \(backend)")
                        XCTAssertEqual(u.dtype, v.dtype)
                        let (p, q) = (u.doubles, v.doubles)
                        for (s, t) in zip(p, q) where Swift.abs(s - t) > 1e-5 * Swift.max(1, Swift.abs(t)) {
                            XCTFail("\(name), batch \(n), \(backend): \(p) != \(q)")
                            break
                        }
                    }
                }
                XCTAssertEqual(one.executableCache.compiles + one.executableCache.batchReuses, 4, name)
            }
        }
    }

    /// Which cases run every batch on one executable, and which compile each (their kernels
    /// read the batch at fixed places): the reasons are the template's, not an accident.
    func testTheCasesThatShareAnExecutableAndThoseThatCannot() throws {
        var shared: [String] = [], separate: [String] = []
        for (name, build) in Self.cases {
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [nil, 5], name: "x")
            let outs = try build(g, x)
            let sess = try Session(graph: g, config: SessionConfig(backend: .llvm))
            for n in [9, 4] { _ = try sess.run(outs, feeds: [x: input(n)]) }
            (sess.executableCache.compiles == 1 ? { shared.append(name) } : { separate.append(name) })()
        }
        // A shape fetched as a value is a vector constant with one element that follows the
        // batch (only scalars and splats do); concatenating or transposing the batch axis moves
        // rows to places fixed by the batch.
        XCTAssertEqual(separate, ["size and shape", "concat along the batch", "transpose of the batch"], "shared: \(shared)")
    }
}
