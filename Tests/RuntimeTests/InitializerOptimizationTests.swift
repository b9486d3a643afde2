import XCTest
import Kiln

/// Only an initializer's run (nothing fed or fetched, no variable read before it is written) is
/// compiled as code that runs once; a training step, a targets-only update of a variable and
/// a fetch keep the full pipeline, and the initialised values are what they would be anyway.
final class InitializerOptimizationTests: XCTestCase {
    func testOnlyTheInitializerIsOptimisedForOneRun() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 3], name: "x")
        let w = try g.variable(g.truncatedNormal([3, 2], stddev: 0.1, seed: 7), name: "w")
        let steps = try g.variable(Tensor(Int64(0)), name: "steps", trainable: false)
        let loss = try g.reduceSum(g.square(g.matmul(x, w)))
        let train = try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss)
        let count = try g.assignAdd(steps, g.constant(Int64(1)))
        let sess = try Session(graph: g, config: SessionConfig(backend: .llvm))
        defer { sess.close() }

        try sess.run(g.globalVariablesInitializer())
        XCTAssertEqual(sess.lastRunSummary?.optimisedForOneRun, true, "the initializer")
        try sess.run(train, feeds: [x: Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])])
        XCTAssertEqual(sess.lastRunSummary?.optimisedForOneRun, false, "a training step")
        try sess.run(count.op)
        XCTAssertEqual(sess.lastRunSummary?.optimisedForOneRun, false, "an update that reads its variable")
        XCTAssertEqual(try sess.run(steps.value).scalars(as: Int64.self), [1])
        XCTAssertEqual(sess.lastRunSummary?.optimisedForOneRun, false, "a fetch")
    }
}
