import XCTest
import Kiln
import KilnTestSupport

/// A placeholder of unknown shape fed a scalar reveals its rank only when the session compiles:
/// ops that name an axis of it must then refuse, as at construction, instead of indexing a
/// dimension the scalar does not have.
final class ScalarAxisTests: XCTestCase {
    func testAxisZeroOfAFedScalarIsAnErrorNamingTheNode() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, name: "x")
        let am = try g.argmax(x, axis: 0, name: "am")
        let sq = try g.squeeze(x, axes: [0], name: "sq")
        let ga = try g.gather(x, try g.constant([0] as [Int32]), axis: 0, name: "ga")
        let sess = try Session(graph: g)
        let scalar = try Tensor(shape: [], scalars: [Float(2)])
        for (out, node) in [(am, "am"), (sq, "sq"), (ga, "ga")] {
            _ = assertKilnError(.invalidArgument, contains: ["axis 0 is out of range", "rank 0", "'\(node)'"]) {
                _ = try sess.run(out, feeds: [x: scalar])
            }
        }
        // The same graph still runs where the axis exists.
        let v = try Tensor(shape: [3], scalars: [Float(1), 5, 2])
        XCTAssertEqual(try sess.run(am, feeds: [x: v]).scalars(as: Int64.self), [1])
    }
}
