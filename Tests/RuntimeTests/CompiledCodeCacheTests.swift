import Foundation
import XCTest
import Kiln

/// "Compile once": a second session (and a second process) running the same program with the
/// same compiled-code cache compiles nothing (every executable's machine code comes from disk)
/// and computes exactly what the first did; the session's statistics show it.
final class CompiledCodeCacheTests: KilnBinaryTestCase {
    /// A small training program with fixed initial values, so two sessions compute the same.
    private func train(_ config: SessionConfig, steps: Int = 3) throws -> (losses: [Float], stats: ExecutableCacheStatistics) {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 6], name: "x")
        let y = try g.placeholder(.int64, shape: [nil], name: "y")
        let w = try g.variable(try Tensor(shape: [6, 4], scalars: (0..<24).map { Float($0 % 5) / 10 - 0.2 }), name: "w")
        let b = try g.variable(try Tensor(shape: [4], scalars: [0.1, 0, -0.1, 0.2] as [Float]), name: "b")
        let logits = try g.add(g.matmul(x, w), b)
        let loss = try g.reduceMean(g.sparseSoftmaxCrossEntropyWithLogits(labels: y, logits: logits))
        let step = try GradientDescentOptimizer(g, learningRate: 0.5).minimize(loss)
        let sess = try Session(graph: g, config: config)
        defer { sess.close() }
        try sess.run(g.globalVariablesInitializer())
        let feeds: [Output: Tensor] = [x: try Tensor(shape: [8, 6], scalars: (0..<48).map { Float($0 % 7) / 7 }),
                                       y: try Tensor(shape: [8], scalars: (0..<8).map { Int64($0 % 4) })]
        var losses: [Float] = []
        for _ in 0..<steps {
            let r = try sess.run([loss], feeds: feeds, targets: [step])
            losses.append(try r[0].scalars(as: Float.self)[0])
        }
        return (losses, sess.executableCache)
    }

    func testASecondSessionWithTheSameCacheCompilesNothing() throws {
        for backend in [BackendKind.llvm, .c] {
            var config = SessionConfig(backend: backend)
            config.codeCacheDirectory = path("cache-\(backend)")
            let first = try train(config)
            XCTAssertGreaterThan(first.stats.compiles, 0)
            XCTAssertEqual(first.stats.codeCacheHits, 0, "\(backend): the cache was empty")
            let second = try train(config)
            XCTAssertEqual(second.stats.compiles, first.stats.compiles)
            XCTAssertEqual(second.stats.codeCacheHits, second.stats.compiles, "\(backend): the second session compiled code again")
            XCTAssertEqual(second.losses, first.losses, "\(backend)")
            XCTAssertLessThan(first.losses.last!, first.losses.first!, "\(backend): training did not train")

            config.codeCacheDirectory = "off"
            let uncached = try train(config)
            XCTAssertEqual(uncached.stats.codeCacheHits, 0)
            XCTAssertEqual(uncached.losses, first.losses)
        }
    }

    func testASecondProcessCompilesNothing() throws {
        let frozen = Golden.directory.appendingPathComponent("frozen/frozen_mlp.pb").path
        let x = try Tensor(shape: [2, 784], scalars: (0..<1568).map { Float($0 % 7) / 7 })
        try NPY.write(x, path: path("x.npy"))
        let env = ["KILN_DEBUG": "1", "KILN_CACHE_DIR": path("cache")]
        let args = ["run", frozen, "--feed", "x:0=\(path("x.npy"))", "--fetch", "probs:0"]
        let first = try run(args + ["--out", path("first")], environment: env)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stderr.contains(" from the disk cache"), first.stderr)
        XCTAssertFalse(first.stderr.contains(" 0 object(s) compiled"), first.stderr)

        let second = try run(args + ["--out", path("second")], environment: env)
        XCTAssertEqual(second.status, 0, second.stderr)
        let codeLines = second.stderr.split(separator: "\n").filter { $0.contains("object(s) compiled") }
        XCTAssertFalse(codeLines.isEmpty, second.stderr)
        for line in codeLines { XCTAssertTrue(line.contains(" 0 object(s) compiled"), "the second process compiled: \(line)") }
        XCTAssertEqual(try NPY.read(path: path("first/probs_0.npy")), try NPY.read(path: path("second/probs_0.npy")))
    }
}
