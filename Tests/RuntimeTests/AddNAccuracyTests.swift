import XCTest
import Kiln

/// AddN lowers to a balanced tree of adds, so its rounding error grows with log2(N), not N: a
/// left-to-right chain of 10,000 float32 additions of 0.1 is 1e-4 off.
final class AddNAccuracyTests: XCTestCase {
    func testAddNOfTenThousandConstantsFoldsToANearlyExactSum() throws {
        let count = 10_000
        let g = Graph()
        let tenth = try g.constant([0.1, -0.1, 0.1] as [Float])
        let sum = try g.addN([Output](repeating: tenth, count: count))
        let got = try Session(graph: g).run(sum).scalars(as: Float.self)
        let want = Double(count) * Double(Float(0.1))
        for (v, w) in zip(got, [want, -want, want]) { XCTAssertEqual(Double(v), w, accuracy: 1e-6 * want) }
    }

    func testAddNOfTenThousandFedInputsComputesANearlyExactSum() throws {
        let count = 10_000
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [3], name: "x")
        let sum = try g.addN([Output](repeating: x, count: count))
        let got = try Session(graph: g).run(sum, feeds: [x: Tensor(shape: [3], scalars: [0.1, 0.2, -0.3] as [Float])]).scalars(as: Float.self)
        for (v, e) in zip(got, [0.1, 0.2, -0.3] as [Float]) {
            let want = Double(count) * Double(e)
            XCTAssertEqual(Double(v), want, accuracy: 1e-6 * abs(want))
        }
    }
}
