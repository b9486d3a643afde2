import Foundation
import XCTest
import Kiln

/// TensorFlow 1's variable semantics: a consumer sees a variable as of when it runs, after the
/// writes it depends on through data or control edges and before the writes it does not.
final class VariableSemanticsTests: XCTestCase {
    private func golden() throws -> [String: Any] {
        let data = try Data(contentsOf: Golden.directory.appendingPathComponent("variable_semantics.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    private func floats(_ any: Any?) -> [Float] { (any as! [NSNumber]).map { Float($0.doubleValue) } }

    // MARK: TensorFlow's traces, matched exactly

    func testIdentityUnderAControlDependencyOnAssignAddSeesTheIncrementLikeTensorFlow() throws {
        let trace = try golden()["identity_after_assign_add"] as! [String: Any]
        let g = Graph()
        let x = try g.variable(Int32((trace["x_initial"] as! NSNumber).intValue), name: "x")
        let bump = try g.assignAdd(x, try g.constant(1 as Int32))
        let y = try g.controlDependencies([bump.op]) { try g.identity(x) }
        // The same read through a computation, so the answer cannot come from reading fetches last.
        let yPlusZero = try g.controlDependencies([bump.op]) { try g.add(x, try g.constant(0 as Int32)) }
        let sess = try Session(graph: g)
        try sess.run(x.initializer)
        var got: [Int32] = []
        for _ in (trace["y_per_run"] as! [NSNumber]) {
            let r = try sess.run([y, yPlusZero])
            XCTAssertEqual(r[0], r[1])
            got.append(try r[0].scalar(as: Int32.self))
        }
        XCTAssertEqual(got, (trace["y_per_run"] as! [NSNumber]).map { Int32($0.intValue) })
        XCTAssertEqual(try sess.run(x).scalar(as: Int32.self), Int32((trace["x_after"] as! NSNumber).intValue))
    }

    func testMovingAverageUnderAControlDependencyOnTheOptimizerMatchesTensorFlowsTrace() throws {
        let trace = try golden()["ema_after_optimizer"] as! [String: Any]
        let initial = trace["initial"] as! [String: Any]
        let g = Graph()
        let v = try g.variable(Tensor(shape: [1], scalars: floats(initial["v"])), name: "v")
        let v1 = try g.variable(Tensor(shape: [1], scalars: floats(initial["v1"])), name: "v1")
        let step = try g.variable(Int32((initial["global_step"] as! NSNumber).intValue), name: "global_step", trainable: false)
        // sum((v-10)^2 + (v1-3)^2)
        let loss = try g.reduceSum(g.add(g.square(g.subtract(v, g.constant(10 as Float))), g.square(g.subtract(v1, g.constant(3 as Float)))))
        let opt = try GradientDescentOptimizer(g, learningRate: .constant((trace["learning_rate"] as! NSNumber).doubleValue))
            .minimize(loss, globalStep: step)
        let ema = ExponentialMovingAverage(g, decay: (trace["decay"] as! NSNumber).doubleValue, numUpdates: step)
        // The tutorial's pattern: the averages move after the optimizer's update, toward the new
        // weights and with the decay of the new step count.
        let train = try g.controlDependencies([opt]) { try g.group([ema.apply(g.trainableVariables)]) }
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let emaV = try XCTUnwrap(ema.average(v)), emaV1 = try XCTUnwrap(ema.average(v1))
        for (k, after) in (trace["after_each_run_of_train"] as! [[String: Any]]).enumerated() {
            try sess.run(train)
            let r = try sess.run([v.value, v1.value, emaV.value, emaV1.value, step.value])
            XCTAssertEqual(try r[0].scalars(as: Float.self), floats(after["v"]), "v after run \(k + 1)")
            XCTAssertEqual(try r[1].scalars(as: Float.self), floats(after["v1"]), "v1 after run \(k + 1)")
            XCTAssertEqual(try r[2].scalars(as: Float.self), floats(after["ema_v"]), "ema(v) after run \(k + 1)")
            XCTAssertEqual(try r[3].scalars(as: Float.self), floats(after["ema_v1"]), "ema(v1) after run \(k + 1)")
            XCTAssertEqual(try r[4].scalar(as: Int32.self), Int32((after["global_step"] as! NSNumber).intValue), "global_step after run \(k + 1)")
        }
    }

    func testReadValueAfterAnAssignUnderAControlDependencyMatchesTensorFlow() throws {
        let trace = try golden()["assign_then_read_value"] as! [String: Any]
        let g = Graph()
        let x = try g.variable(Tensor(shape: [2], scalars: floats(trace["x_initial"])), name: "x")
        let doubled = try g.assign(x, try g.multiply(x, try g.constant(2 as Float)))
        let y = try g.controlDependencies([doubled.op]) { try x.readValue() }
        XCTAssertEqual(y.op.name, "read")
        let sess = try Session(graph: g)
        try sess.run(x.initializer)
        for (k, want) in (trace["y_per_run"] as! [[NSNumber]]).enumerated() {
            XCTAssertEqual(try sess.run(y).scalars(as: Float.self), want.map { Float($0.doubleValue) }, "run \(k + 1)")
        }
    }

    // MARK: the ordering rule

    func testAReadThatDoesNotDependOnAWriteSeesTheValueBeforeIt() throws {
        let g = Graph()
        let v = try g.variable(1 as Float, name: "v")
        let bump = try g.assignAdd(v, try g.constant(1 as Float))
        // Built after the write, with no edge to it: it runs before the write.
        let doubled = try g.multiply(v, try g.constant(2 as Float))
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        XCTAssertEqual(try sess.run([doubled], targets: [bump.op])[0].scalar(as: Float.self), 2)
        XCTAssertEqual(try sess.run(doubled).scalar(as: Float.self), 4)
    }

    func testReadsSeeExactlyTheWritesOfTheirControlDependencyChain() throws {
        let g = Graph()
        let v = try g.variable(0 as Float, name: "v")
        let set = try g.assign(v, try g.constant(10 as Float))
        let afterSet = try g.controlDependencies([set.op]) { try g.multiply(v, try g.constant(1 as Float)) }
        let add = try g.controlDependencies([set.op]) { try g.assignAdd(v, try g.constant(5 as Float)) }
        let afterAdd = try g.controlDependencies([add.op]) { try g.multiply(v, try g.constant(1 as Float)) }
        let scale = try g.controlDependencies([afterAdd.op]) { try g.assign(v, try g.multiply(v, try g.constant(3 as Float))) }
        let afterScale = try g.controlDependencies([scale.op]) { try g.identity(v) }
        let before = try g.multiply(v, try g.constant(1 as Float))
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        let r = try sess.run([before, afterSet, afterAdd, afterScale])
        XCTAssertEqual(try r.map { try $0.scalar(as: Float.self) }, [0, 10, 15, 45])
        XCTAssertEqual(try sess.run(v).scalar(as: Float.self), 45)
    }

    func testTwoVariablesWrittenFromEachOtherInDependencyOrder() throws {
        let g = Graph()
        let u = try g.variable(1 as Float, name: "u")
        let w = try g.variable(2 as Float, name: "w")
        let setW = try g.assign(w, try g.multiply(u, try g.constant(10 as Float)))          // w = 10u
        let setU = try g.controlDependencies([setW.op]) { try g.assign(u, try g.add(w, try g.constant(1 as Float))) }  // u = w + 1
        let oldSum = try g.add(u, w)                                                          // no edges: before both writes
        let newSum = try g.controlDependencies([setU.op]) { try g.add(u, w) }
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let r = try sess.run([oldSum, newSum])
        XCTAssertEqual(try r[0].scalar(as: Float.self), 3)
        XCTAssertEqual(try r[1].scalar(as: Float.self), 11 + 10)
        XCTAssertEqual(try sess.run([u.value, w.value]).map { try $0.scalar(as: Float.self) }, [11, 10])
    }

    func testAReadUsedAfterALaterWriteKeepsItsValue() throws {
        // r reads v before the write; its consumer runs after it. The planner copies the read.
        let g = Graph()
        let v = try g.variable([1, 2, 3, 4] as [Float], name: "v")
        let r = try g.multiply(v, try g.constant(2 as Float))
        let write = try g.assign(v, try g.add(v, try g.constant(100 as Float)))
        let s = try g.controlDependencies([write.op]) { try g.add(r, v) }
        let sess = try Session(graph: g)
        try sess.run(v.initializer)
        XCTAssertEqual(try sess.run(s).scalars(as: Float.self), [103, 106, 109, 112])
        // Reads on both sides of a write are not merged into one.
        let before = try g.reduceSum(v), after = try g.controlDependencies([write.op]) { try g.reduceSum(v) }
        let both = try sess.run([before, after])
        XCTAssertEqual(try both.map { try $0.scalar(as: Float.self) }, [410, 810])
    }

    func testATrainStepAndAPredictionBuiltAfterItSeeTheWeightsBeforeTheStep() throws {
        // sess.run([train, prediction]): the prediction does not depend on the update, so it is
        // made with the weights the step started from.
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2, 2], name: "x")
        let w = try g.variable([[1, 0], [0, 1]] as [[Float]], name: "w")
        let loss = try g.reduceSum(try g.matmul(x, w))
        let train = try GradientDescentOptimizer(g, learningRate: 0.5).minimize(loss, name: "train")
        let prediction = try g.matmul(x, w)
        let sess = try Session(graph: g)
        try sess.run(w.initializer)
        let xs = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4] as [Float])
        let p = try sess.run([prediction], feeds: [x: xs], targets: [train])[0]
        XCTAssertEqual(try p.scalars(as: Float.self), [1, 2, 3, 4])
        // d loss / d w = x^T ones: [[4, 4], [6, 6]]; w -= 0.5 * that.
        XCTAssertEqual(try sess.value(of: w)?.scalars(as: Float.self), [-1, -2, -3, -2])
        XCTAssertEqual(try sess.run(prediction, feeds: [x: xs]).scalars(as: Float.self), [-7, -6, -15, -14])
    }
}
