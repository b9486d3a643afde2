import XCTest
import Kiln
import KilnDistributed

/// What one Session.run of a training step with collectives does, with a stand-in engine in
/// this process (no MPI): one forward pass whose values the fetches, the gradients and the ops
/// after the collectives all see, and the engine's results applied.
final class CollectiveRoundTests: XCTestCase {
    /// Records each round's requests and answers each tensor times `factor`.
    final class ScalingEngine: CollectiveEngine, @unchecked Sendable {
        let factor: Float
        var rounds: [[String]] = []
        init(factor: Float) { self.factor = factor }
        func allreduce(_ requests: [AllreduceRequest]) throws -> [Tensor] {
            rounds.append(requests.map(\.name))
            return try requests.map { r in try Tensor(shape: r.tensor.shape, scalars: try r.tensor.scalars(as: Float.self).map { $0 * factor }) }
        }
    }

    override func tearDown() { Collectives.install(nil) }

    func testOneStepRunsTheForwardPassOnceAndAppliesTheReducedGradients() throws {
        let engine = ScalingEngine(factor: 2)
        Collectives.install(engine)
        let g = Graph()
        let x = try g.randomUniform([4, 8], seed: 5)
        let m = try g.constant(try Tensor(shape: [8, 8], scalars: (0..<64).map { Float($0 % 9) / 8 }))
        let h = try g.matmul(x, m)
        let v = try g.variable(try Tensor(zeros: .float32, shape: [4, 8]), name: "v")
        let w = try g.variable(try Tensor(zeros: .float32, shape: [4, 8]), name: "w")
        let loss = try g.reduceSum(v * h)
        let train = try DistributedOptimizer(GradientDescentOptimizer(g, learningRate: 0.5)).minimize(loss)
        // After the update, w keeps this step's h: read after the collectives, from before them.
        let keep = try g.controlDependencies([train]) { try g.assign(w, h).op }
        let s = try Session(graph: g)
        try s.run(g.globalVariablesInitializer())
        for step in 0..<2 {
            let before = try XCTUnwrap(s.value(of: v)).scalars(as: Float.self)
            // h itself is not fetched: only the frontier feeds it to the part after the collectives.
            let r = try s.run([x, loss], targets: [keep])
            let xs: [Float] = try r[0].scalars(as: Float.self)
            let ms: [Float] = (0..<64).map { Float($0 % 9) / 8 }
            var forward = [Float](repeating: 0, count: 32)
            for row in 0..<4 {
                for col in 0..<8 {
                    for k in 0..<8 { forward[row * 8 + col] += xs[row * 8 + k] * ms[k * 8 + col] }
                }
            }
            for (a, b) in zip(try XCTUnwrap(s.value(of: w)).scalars(as: Float.self), forward) { XCTAssertEqual(a, b, accuracy: 1e-5, "step \(step)") }
            // The part after the collectives was fed h: it computed no matrix product again.
            XCTAssertEqual(try XCTUnwrap(s.lastRunSummary).matrixFLOPs, 0, "step \(step): the apply part ran the forward pass again")
            // d loss / d v = h; the engine doubles it; SGD subtracts 0.5 of that.
            let after = try XCTUnwrap(s.value(of: v)).scalars(as: Float.self)
            for i in 0..<32 { XCTAssertEqual(after[i], before[i] - 0.5 * 2 * forward[i], accuracy: 1e-5) }
            XCTAssertEqual(try r[1].scalar(as: Float.self), zip(before, forward).map { $0 * $1 }.reduce(0, +), accuracy: 1e-4, "the loss of this step's values")
        }
        XCTAssertEqual(engine.rounds, [["DistributedOptimizer_Allreduce/HorovodAllreduce_v"], ["DistributedOptimizer_Allreduce/HorovodAllreduce_v"]],
                       "one round per step; w, without a gradient, left out")
    }

    /// Horovod's gradient of an allreduce: the allreduce of the incoming gradient, with the same
    /// reduction (NumericGradientTests' coverage test leaves this op to this test: it needs an engine).
    func testAllreduceGradientIsTheAllreduceOfTheIncomingGradient() throws {
        let engine = ScalingEngine(factor: 3)
        Collectives.install(engine)
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [3], name: "x")
        let sum = CollectiveOps.Allreduce.reduceOp(CollectiveOps.ReduceOp.sum.rawValue)
        let y = try g.addOperation("HorovodAllreduce", name: "allreduce", inputs: [x], attrs: sum.merging(["T": .type(.float32)]) { a, _ in a }).output()
        let c = try g.constant(try Tensor(shape: [3], scalars: [1, 2, 4] as [Float]))
        let loss = try g.reduceSum(y * c)
        let dx = try XCTUnwrap(g.gradients([loss], [x])[0])
        let backward = try XCTUnwrap(g.operations.first { $0.type == "HorovodAllreduce" && $0.name != "allreduce" })
        XCTAssertEqual(backward.attrs[CollectiveOps.Allreduce.reduceOp], CollectiveOps.ReduceOp.sum.rawValue)
        let s = try Session(graph: g)
        let r = try s.run([y, dx], feeds: [x: try Tensor(shape: [3], scalars: [1, 1, 1] as [Float])])
        XCTAssertEqual(try r[0].scalars(as: Float.self), [3, 3, 3])
        XCTAssertEqual(try r[1].scalars(as: Float.self), [3, 6, 12], "d loss / dx = the allreduce of c")
    }
}
