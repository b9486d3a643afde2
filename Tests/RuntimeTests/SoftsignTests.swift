import XCTest
import KilnTestSupport
import Kiln

/// tf.nn.softsign and its gradient against the values TensorFlow gives (softsign(x) = x/(1+|x|),
/// d/dx = 1/(1+|x|)², SoftsignGrad in the gradient graph); the numeric check is in NumericGradientTests.
final class SoftsignTests: XCTestCase {
    func testSoftsignAndItsGradientMatchTensorFlow() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([7]), name: "x")
        let y = try g.softsign(x)
        let dx = try XCTUnwrap(try g.gradients([y], [x])[0])
        XCTAssertEqual(dx.op.type, "SoftsignGrad")
        let sess = try Session(graph: g)
        let input = try Tensor(shape: [7], scalars: [Float(-3), -1, -0.5, 0, 0.5, 1, 3])
        // tf.nn.softsign([-3., -1., -0.5, 0., 0.5, 1., 3.]) and tf.gradients of it.
        let expectedY: [Float] = [-0.75, -0.5, -1.0 / 3, 0, 1.0 / 3, 0.5, 0.75]
        let expectedDx: [Float] = [0.0625, 0.25, 4.0 / 9, 1, 4.0 / 9, 0.25, 0.0625]
        let got = try sess.run([y, dx], feeds: [x: input])
        for (a, e) in zip(try got[0].scalars(as: Float.self), expectedY) { XCTAssertEqual(a, e, accuracy: 1e-6) }
        for (a, e) in zip(try got[1].scalars(as: Float.self), expectedDx) { XCTAssertEqual(a, e, accuracy: 1e-6) }
    }

    func testSoftsignRefusesIntegers() throws {
        let g = Graph()
        let x = try g.placeholder(.int32, shape: Shape([2]), name: "x")
        _ = assertKilnError(.invalidArgument, contains: ["Softsign"]) { try g.softsign(x) }
    }
}
