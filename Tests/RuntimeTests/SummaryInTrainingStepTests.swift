import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// TensorFlow 1's `sess.run([train_op, merged])`: summaries are computed from the values of the
/// same step (the session runs them after the compiled part, from its results), so the step runs
/// once: one dequeue, one variable update.
final class SummaryInTrainingStepTests: XCTestCase {
    private func scalarValues(_ summary: Tensor) throws -> [String: Float] {
        let s = try Tensorflow_Summary(serializedBytes: summary.strings[0])
        return Dictionary(uniqueKeysWithValues: s.value.map { ($0.tag, $0.simpleValue) })
    }

    func testTrainingOnAQueueWithMergedSummariesDequeuesOneBatchPerRunAndSummarizesThatStepsLoss() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 10, dtypes: [.float32], shapes: [Shape([2])])
        let rows = try g.placeholder(.float32, shape: Shape([6, 2]), name: "rows")
        let fill = try q.enqueueMany([rows])
        let batch = try q.dequeueMany(2)[0]
        let w = try g.variable([1, 1] as [Float], name: "w")
        let loss = try g.reduceSum(try g.multiply(batch, w.value), name: "total")
        let train = try GradientDescentOptimizer(g, learningRate: 0.5).minimize(loss)
        try g.summary.scalar("loss", loss)
        try g.summary.histogram("w", w.value)
        let merged = try XCTUnwrap(g.summary.mergeAll())
        let size = try q.size()

        let sess = try Session(graph: g)
        try sess.run(w.initializer)
        try sess.run(fill, feeds: [rows: Tensor(shape: [6, 2], scalars: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] as [Float])])
        XCTAssertEqual(try sess.run(size), Tensor(6 as Int32))
        let compiledBefore = sess.compileCount
        // Batch [[1,2],[3,4]] with w = [1,1]: loss 10; the gradient of w is the column sums [4,6].
        let first = try sess.run([loss, merged], targets: [train])
        XCTAssertEqual(try first[0].scalar(as: Float.self), 10)
        XCTAssertEqual(try scalarValues(first[1])["loss"], 10)
        XCTAssertEqual(try sess.run(size), Tensor(4 as Int32), "one batch dequeued by one run")
        XCTAssertEqual(try sess.value(of: w)?.scalars(as: Float.self), [-1, -2], "one update by one run")
        // Batch [[5,6],[7,8]] with w = [-1,-2]: loss -5 - 12 - 7 - 16 = -40.
        let second = try sess.run([merged], targets: [train])
        XCTAssertEqual(try scalarValues(second[0])["loss"], -40)
        XCTAssertEqual(try sess.run(size), Tensor(2 as Int32))
        XCTAssertEqual(try sess.value(of: w)?.scalars(as: Float.self), [-7, -9])
        // Both runs compile to one executable (the step, fetching the summaries' inputs): no run
        // of their own for those inputs.
        XCTAssertEqual(sess.compileCount - compiledBefore, 1)
        _ = try sess.run([merged], targets: [train])
        XCTAssertEqual(try sess.run(size), Tensor(0 as Int32))
        XCTAssertEqual(sess.compileCount - compiledBefore, 1)
    }

    func testASummaryOfAVariableReadAfterItsUpdateShowsTheValueReadInTheSameRun() throws {
        let g = Graph()
        let v = try g.variable(1 as Float, name: "v")
        let bump = try g.assignAdd(v, try g.constant(1 as Float), name: "bump")
        let read = try g.controlDependencies([bump.op]) { try v.readValue() }
        let s = try g.summary.scalar("v_read", read)
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        for want: Float in [2, 3] {
            let r = try sess.run([s, read])
            XCTAssertEqual(try r[1].scalar(as: Float.self), want)
            XCTAssertEqual(try scalarValues(r[0])["v_read"], want)
            XCTAssertEqual(try sess.value(of: v)?.scalar(as: Float.self), want, "the update ran once")
        }
        // The summary alone runs the update too (it reads after it), once.
        XCTAssertEqual(try scalarValues(try sess.run(s))["v_read"], 4)
        XCTAssertEqual(try sess.value(of: v)?.scalar(as: Float.self), 4)
    }

    func testASummaryOfCompiledValuesThatACompiledOpWaitsForIsAClearError() throws {
        let g = Graph()
        let v = try g.variable(1 as Float, name: "v")
        let doubled = try g.multiply(v.value, try g.constant(2 as Float), name: "doubled")
        let s = try g.summary.scalar("twice", doubled)
        let after = try g.controlDependencies([s.op]) { try g.add(v.value, try g.constant(1 as Float), name: "after") }
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        assertKilnError(.unimplemented, contains: ["'twice'", "ScalarSummary", "separate call"]) { _ = try sess.run(after) }
        // Each alone runs.
        XCTAssertEqual(try scalarValues(try sess.run(s))["twice"], 2)
    }
}
