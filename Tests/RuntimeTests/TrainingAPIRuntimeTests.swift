import XCTest
import Foundation
import Kiln

/// Optimizers, layers and losses run in a session: what each step changes, dropout and batch
/// norm in both modes, accuracy and the tf.losses values.
final class TrainingAPIRuntimeTests: XCTestCase {
    func floats(_ sess: Session, _ x: some OutputConvertible, feeds: [Output: Tensor] = [:]) throws -> [Float] {
        try sess.run(x, feeds: feeds).scalars(as: Float.self)
    }

    func assertClose(_ a: [Float], _ b: [Double], _ tol: Double = 1e-5, _ what: String = "", file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (x, y) in zip(a, b) where Swift.abs(Double(x) - y) > tol * Swift.max(1, Swift.abs(y)) {
            XCTFail("\(what): \(a) != \(b)", file: file, line: line)
            return
        }
    }

    // MARK: optimizers

    func testMinimizeWithVarListUpdatesOnlyThoseVariables() throws {
        let g = Graph()
        let a = try g.variable([1, 2] as [Float], name: "a")
        let b = try g.variable([3] as [Float], name: "b")
        let loss = try g.add(g.reduceSum(g.square(a)), g.reduceSum(g.square(b)))
        let train = try GradientDescentOptimizer(g, learningRate: 0.25).minimize(loss, varList: [a])
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        try sess.run(train)
        // a -= 0.25 * 2a; b untouched.
        XCTAssertEqual(try floats(sess, a), [0.5, 1])
        XCTAssertEqual(try floats(sess, b), [3])
    }

    func testAVariableWithNoGradientIsLeftAloneByMinimize() throws {
        let g = Graph()
        let used = try g.variable([2] as [Float], name: "used")
        let unused = try g.variable([7] as [Float], name: "unused")
        let train = try MomentumOptimizer(g, learningRate: 0.5, momentum: 0.9).minimize(g.reduceSum(g.square(used)))
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        try sess.run(train)
        XCTAssertEqual(try floats(sess, used), [0])
        XCTAssertEqual(try floats(sess, unused), [7])
    }

    func testGlobalStepIncrementsByOneForEachRunOfTheTrainOp() throws {
        let g = Graph()
        let w = try g.variable([1] as [Float], name: "w")
        let step = try g.globalStep()
        let loss = try g.reduceSum(g.square(w))
        let sgd = try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss, globalStep: step)
        let adam = try AdamOptimizer(g, learningRate: 0.1).minimize(loss, globalStep: step)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        XCTAssertEqual(try sess.run(step).scalar(as: Int64.self), 0)
        for k in 1...3 {
            try sess.run(sgd)
            XCTAssertEqual(try sess.run(step).scalar(as: Int64.self), Int64(k))
        }
        try sess.run(adam)
        XCTAssertEqual(try sess.run(step).scalar(as: Int64.self), 4)
    }

    /// The TensorFlow 1 pattern for gradient clipping: compute, transform, apply.
    func testAppliedGradientsAreTheOnesPassedIn() throws {
        let g = Graph()
        let w = try g.variable([3, -4] as [Float], name: "w")
        let opt = GradientDescentOptimizer(g, learningRate: 1)
        let pairs = try opt.computeGradients(g.reduceSum(g.square(w)))
        let clipped = try pairs.map { (gradient: try g.clipByValue($0.gradient!, min: -1, max: 1), variable: $0.variable) }
        let train = try opt.applyGradients(clipped)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        XCTAssertEqual(try floats(sess, pairs[0].gradient!), [6, -8])
        try sess.run(train)
        XCTAssertEqual(try floats(sess, w), [2, -3])
    }

    func testUpdateOpsRunWithTheTrainOpThroughControlDependencies() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [4, 2], name: "x")
        let y = try g.batchNorm(x, decay: 0.5)
        let loss = try g.reduceSum(g.square(y))
        let train = try g.controlDependencies(g.updateOps) { try GradientDescentOptimizer(g, learningRate: 0.1).minimize(loss) }
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let mean = try XCTUnwrap(g.sharedVariables["BatchNorm/moving_mean"])
        try sess.run(train, feeds: [x: Tensor(shape: [4, 2], scalars: [1, 10, 3, 10, 5, 10, 7, 10] as [Float])])
        // moving_mean = 0 - (0 - batch mean) * (1 - decay).
        XCTAssertEqual(try floats(sess, mean), [2, 5])
    }

    // MARK: dropout

    func testDropoutKeepsAboutKeepProbOfTheValuesScaledByItsInverse() throws {
        let g = Graph()
        let x = try g.constant(1 as Float, shape: [200, 200])
        let y = try g.dropout(x, keepProb: 0.7, seed: 4)
        let sess = try Session(graph: g)
        let a = try floats(sess, y), b = try floats(sess, y)
        let scaled = Float(1 / 0.7)
        XCTAssertTrue(a.allSatisfy { $0 == 0 || Swift.abs($0 - scaled) < 1e-6 }, "kept values are x / keep_prob")
        let kept = Double(a.filter { $0 != 0 }.count) / Double(a.count)
        XCTAssertEqual(kept, 0.7, accuracy: 0.012, "40,000 draws: five standard errors")
        XCTAssertEqual(Double(a.reduce(0, +)) / Double(a.count), 1, accuracy: 0.02, "the expectation is unchanged")
        XCTAssertNotEqual(a, b, "each run draws a new mask")
        let inference = try g.dropout(x, keepProb: 0.7, isTraining: false)
        XCTAssertTrue(try floats(sess, inference).allSatisfy { $0 == 1 })
    }

    func testDropoutSwitchedAtRunTimeByAPlaceholderWithDefault() throws {
        let g = Graph()
        let x = try g.constant(2 as Float, shape: [50, 40])
        let training = try g.placeholderWithDefault(g.constant(false), shape: Shape([]), name: "is_training")
        let y = try g.dropout(x, keepProb: 0.5, isTraining: training)
        let sess = try Session(graph: g)
        XCTAssertTrue(try floats(sess, y).allSatisfy { $0 == 2 }, "the default (false) is inference: identity")
        let dropped = try floats(sess, y, feeds: [training: Tensor(true)])
        XCTAssertTrue(dropped.allSatisfy { $0 == 0 || $0 == 4 })
        XCTAssertEqual(Double(dropped.filter { $0 == 0 }.count) / 2000, 0.5, accuracy: 0.06)
    }

    // MARK: batch norm

    func testBatchNormTrainingNormalizesAndInferenceUsesTheMovingStatistics() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [4, 2], name: "x")
        let train = try g.batchNorm(x, decay: 0.9, epsilon: 0.001)
        let infer = try g.batchNorm(x, decay: 0.9, epsilon: 0.001, isTraining: false, scope: "BatchNorm", reuse: .yes)
        let data: [Double] = [1, -2, 3, 0, 5, 2, 7, 4]
        let feed = [x: try Tensor(shape: [4, 2], scalars: data.map { Float($0) })]
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        // Batch statistics per column: means 4 and 1, population variances 5 and 5.
        let batchNormalized = data.enumerated().map { i, v in (v - (i % 2 == 0 ? 4 : 1)) / (5.001).squareRoot() }
        let out = try sess.run([train], feeds: feed, targets: g.updateOps)
        assertClose(try out[0].scalars(as: Float.self), batchNormalized, 1e-5, "training output")
        let mm = try XCTUnwrap(g.sharedVariables["BatchNorm/moving_mean"]), mv = try XCTUnwrap(g.sharedVariables["BatchNorm/moving_variance"])
        assertClose(try floats(sess, mm), [0.4, 0.1], 1e-6, "moving mean after one update")
        assertClose(try floats(sess, mv), [1.4, 1.4], 1e-6, "moving variance after one update")
        XCTAssertFalse(g.trainableVariables.contains(mm) || g.trainableVariables.contains(mv))
        // Inference: (x - 0.4 or 0.1) / sqrt(1.4 + eps), and running it changes nothing.
        let expected = data.enumerated().map { i, v in (v - (i % 2 == 0 ? 0.4 : 0.1)) / (1.401).squareRoot() }
        assertClose(try floats(sess, infer, feeds: feed), expected, 1e-5, "inference output")
        assertClose(try floats(sess, mm), [0.4, 0.1], 1e-6, "inference leaves the moving mean")
    }

    func testBatchNormModeSwitchedAtRunTime() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2, 1], name: "x")
        let training = try g.placeholderWithDefault(g.constant(true), shape: Shape([]), name: "is_training")
        let y = try g.batchNorm(x, decay: 0.5, epsilon: 0, isTraining: training)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let feed: [Output: Tensor] = [x: try Tensor(shape: [2, 1], scalars: [1, 3] as [Float])]
        XCTAssertEqual(try floats(sess, y, feeds: feed), [-1, 1], "training: batch mean 2, variance 1")
        var inference = feed
        inference[training] = Tensor(false)
        // Fresh moving statistics are mean 0, variance 1: the input comes through unchanged.
        XCTAssertEqual(try floats(sess, y, feeds: inference), [1, 3])
    }

    /// slim's batch_norm with a tensor is_training updates the moving statistics only when it is
    /// true (smart_cond); running the update ops in inference must leave them alone.
    func testBatchNormUpdatesDoNothingWhenTheRunTimeSwitchSaysInference() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2, 1], name: "x")
        let training = try g.placeholderWithDefault(g.constant(true), shape: Shape([]), name: "is_training")
        _ = try g.batchNorm(x, decay: 0.5, isTraining: training)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        try sess.run(targets: g.updateOps, feeds: [x: Tensor(shape: [2, 1], scalars: [1, 3] as [Float]), training: Tensor(false)])
        XCTAssertEqual(try floats(sess, XCTUnwrap(g.sharedVariables["BatchNorm/moving_mean"])), [0])
    }

    // MARK: accuracy and losses

    func testAccuracyWithClassIdsAndOneHotLabels() throws {
        let g = Graph()
        let logits = try g.constant([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]] as [[Float]])
        let ids = try g.constant([1, 0, 0, 0] as [Int32])
        let oneHot = try g.oneHot(ids, depth: 2)
        let sess = try Session(graph: g)
        XCTAssertEqual(try sess.run(g.accuracy(logits: logits, labels: ids)).scalar(as: Float.self), 0.75)
        XCTAssertEqual(try sess.run(g.accuracy(logits: logits, labels: oneHot)).scalar(as: Float.self), 0.75)
    }

    func testLossFunctionsComputeTensorFlowsValuesAndAddUpInTotalLoss() throws {
        let g = Graph()
        let logitValues: [[Double]] = [[2, 1, 0.1], [0.5, 2.5, -1]]
        let labelIds = [0, 2]
        let logits = try g.constant(logitValues.map { $0.map { Float($0) } })
        let oneHot = try g.oneHot(g.constant(labelIds.map(Int32.init)), depth: 3)
        let ce = try g.softmaxCrossEntropyLoss(onehotLabels: oneHot, logits: logits)
        let sparse = try g.sparseSoftmaxCrossEntropyLoss(labels: g.constant(labelIds.map(Int32.init)), logits: logits)
        let mse = try g.meanSquaredErrorLoss(labels: g.constant([1, 2, 3] as [Float]), predictions: g.constant([1.5, 2, 1] as [Float]))
        _ = try g.getVariable("w", shape: [2], initializer: .constant(Tensor(shape: [2], scalars: [1, 2] as [Float])), regularizer: .l2(0.1))
        XCTAssertEqual(g.losses, [ce, sparse, mse])
        let total = try g.totalLoss()
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        // -log softmax(logits)[label], averaged over the batch.
        let want = zip(logitValues, labelIds).map { row, k in Foundation.log(row.map { Foundation.exp($0) }.reduce(0, +)) - row[k] }.reduce(0, +) / 2
        XCTAssertEqual(Double(try sess.run(ce).scalar(as: Float.self)), want, accuracy: 1e-5)
        XCTAssertEqual(Double(try sess.run(sparse).scalar(as: Float.self)), want, accuracy: 1e-5)
        XCTAssertEqual(try sess.run(mse).scalar(as: Float.self), (0.25 + 0 + 4) / 3, accuracy: 1e-6)
        // l2 = 0.1 * (1 + 4) / 2.
        XCTAssertEqual(Double(try sess.run(total).scalar(as: Float.self)), 2 * want + (0.25 + 4) / 3 + 0.25, accuracy: 1e-5)
    }
}
