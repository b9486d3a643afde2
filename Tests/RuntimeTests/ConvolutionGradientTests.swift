import XCTest
import Foundation
import Kiln

/// Convolution layers large enough that Kiln computes them from blocks of patch rows and their
/// input gradients image by image: the same graph with fusion off (one patches buffer, one
/// product over all images) must give the same loss and gradients.
final class ConvolutionGradientTests: XCTestCase {
    func testBlockedConvolutionsAndTheirGradientsMatchTheUnfusedGraph() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil, 12, 12, 8], name: "x")
        let w1 = try g.variable(Tensor(shape: [3, 3, 8, 32], scalars: (0..<2304).map { Float(($0 * 7) % 19) / 40 - 0.2 }), name: "w1")
        let w2 = try g.variable(Tensor(shape: [3, 3, 32, 16], scalars: (0..<4608).map { Float(($0 * 5) % 23) / 60 - 0.2 }), name: "w2")
        let h = try g.relu(g.conv2d(x, w1, strides: [1, 1, 1, 1], padding: "SAME"))
        let y = try g.conv2d(h, w2, strides: [1, 2, 2, 1], padding: "SAME")
        let loss = try g.reduceSum(y * y)
        let grads = try g.gradients([loss], [x, w1.value, w2.value])
        let fetches = [loss] + grads.map { $0! }
        // Not multiples of a common step: sums that cancel exactly would put pre-activations on
        // the relu's kink, where any other summation order (Winograd's among them) flips the gradient.
        let feed = try Tensor(shape: [64, 12, 12, 8], scalars: (0..<73728).map { Float(sin(Double($0) * 0.7311)) })

        func run(_ config: SessionConfig) throws -> [Tensor] {
            let s = try Session(graph: g, config: config)
            try s.run(g.globalVariablesInitializer())
            return try s.run(fetches, feeds: [x: feed])
        }
        let fused = try run(SessionConfig()), unfused = try run(SessionConfig(fusion: false))
        for (name, (a, b)) in zip(["loss", "dx", "dw1", "dw2"], zip(fused, unfused)) {
            XCTAssertEqual(a.shape, b.shape, name)
            let scale = b.doubles.map(Swift.abs).max()!
            let worst = zip(a.doubles, b.doubles).map { Swift.abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-4 * max(1, scale), name)
        }
    }
}
