import XCTest
import Foundation
import Kiln

/// A whole TensorFlow 1 program in miniature: placeholders with an unknown batch, a 2-layer MLP
/// from slim layers, a loss from tf.losses, SGD with a global step, accuracy on held-out data.
final class EndToEndLearningTests: XCTestCase {
    /// Points in [-1, 1]² labelled by quadrant parity (XOR: not linearly separable, so the hidden
    /// layer has to learn), at least 0.1 away from the axes so the classes are separable.
    static func xorData(_ n: Int, seed: UInt64) throws -> (x: Tensor, y: Tensor) {
        var r = TestRandom(seed)
        var xs: [Float] = [], ys: [Int32] = []
        while ys.count < n {
            let a = r.uniform(-1, 1), b = r.uniform(-1, 1)
            guard Swift.abs(a) > 0.1, Swift.abs(b) > 0.1 else { continue }
            xs += [Float(a), Float(b)]
            ys.append(a * b > 0 ? 1 : 0)
        }
        return (try Tensor(shape: [n, 2], scalars: xs), try Tensor(shape: [n], scalars: ys))
    }

    func testTwoLayerMLPLearnsXorToOver95PercentInAFewHundredSGDSteps() throws {
        let start = Date()
        let g = Graph()
        g.seed = 1
        let x = try g.placeholder(.float32, shape: [nil, 2], name: "x")
        let labels = try g.placeholder(.int32, shape: [nil], name: "labels")
        let hidden = try g.fullyConnected(x, 32, weightsInitializer: .glorotUniform())
        let logits = try g.fullyConnected(hidden, 2, activation: .identity)
        let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: labels, logits: logits)
        let step = try g.globalStep()
        let train = try MomentumOptimizer(g, learningRate: 0.1, momentum: 0.9).minimize(g.totalLoss(), globalStep: step)
        let accuracy = try g.accuracy(logits: logits, labels: labels)

        let (trainX, trainY) = try Self.xorData(512, seed: 11)
        let (testX, testY) = try Self.xorData(1000, seed: 12)
        let sess = try Session(graph: g)
        try sess.run(g.globalVariablesInitializer())
        let before = try sess.run(accuracy, feeds: [x: testX, labels: testY]).scalar(as: Float.self)
        var firstLoss: Float = 0, lastLoss: Float = 0
        for i in 0..<300 {
            let out = try sess.run([loss], feeds: [x: trainX, labels: trainY], targets: [train])
            if i == 0 { firstLoss = try out[0].scalar(as: Float.self) }
            lastLoss = try out[0].scalar(as: Float.self)
        }
        let after = try sess.run(accuracy, feeds: [x: testX, labels: testY]).scalar(as: Float.self)
        let seconds = Date().timeIntervalSince(start)
        print("mlp xor: test accuracy \(before) -> \(after), loss \(firstLoss) -> \(lastLoss), 300 steps in \(String(format: "%.2f", seconds)) s")
        XCTAssertLessThan(before, 0.8, "an untrained network should not already solve it")
        XCTAssertGreaterThan(after, 0.95)
        XCTAssertLessThan(lastLoss, firstLoss / 4)
        XCTAssertEqual(try sess.run(step).scalar(as: Int64.self), 300)
        XCTAssertLessThan(seconds, 5)
    }
}
