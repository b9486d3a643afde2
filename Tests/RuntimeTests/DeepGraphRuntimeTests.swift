import XCTest
import Kiln
import KilnTestSupport

/// Long chains, their gradients and wide concats compile and give the right answer, with the
/// whole compile (lowering, passes, plan, LLVM emission) on a secondary thread's small stack.
final class DeepGraphRuntimeTests: XCTestCase {
    /// x * 1.0001 + 0.5, repeated: n ops.
    static func chain(_ x: Output, ops n: Int) throws -> Output {
        var y = x
        for k in 0..<n { y = k % 2 == 0 ? try y * 1.0001 : try y + 0.5 }
        return y
    }

    /// The same recurrence in float32, rounded after every op as the compiled code rounds.
    static func expected(_ x: Float, ops n: Int) -> Float {
        var y = x
        for k in 0..<n { y = k % 2 == 0 ? y * Float(1.0001) : y + Float(0.5) }
        return y
    }

    static let input = try! Tensor(shape: [4], scalars: [0, 1, -2, 3] as [Float])

    func testElementwiseChainOf20000OpsCompilesOnASmallStackAndMatchesFloat32() throws {
        let n = 20000
        let got = try onThread { () throws -> [Float] in
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [nil], name: "x")
            let y = try Self.chain(x, ops: n)
            return try Session(graph: g).run(y, feeds: [x: Self.input]).scalars(as: Float.self)
        }
        let want = try Self.input.scalars(as: Float.self).map { Self.expected($0, ops: n) }
        for (a, b) in zip(got, want) { XCTAssertEqual(a, b, accuracy: abs(b) * 1e-5) }
    }

    func testGradientOfA20000OpChainIsTheProductOfItsScales() throws {
        let n = 20000
        let got = try onThread { () throws -> [Float] in
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [nil], name: "x")
            let dx = try g.gradients([Self.chain(x, ops: n)], [x])[0]!
            return try Session(graph: g).run(dx, feeds: [x: Self.input]).scalars(as: Float.self)
        }
        // d/dx of n/2 scalings by 1.0001: 1.0001^(n/2), the same for every element.
        var want: Float = 1
        for _ in 0..<(n / 2) { want *= 1.0001 }
        for v in got { XCTAssertEqual(v, want, accuracy: want * 1e-4) }
    }

    func testConcatOf10000InputsWithAnUnknownDimension() throws {
        let n = 10000
        let (shape, v) = try onThread { () throws -> ([Int], [Float]) in
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [nil, 2], name: "x")
            let parts = try (0..<n).map { try x * Double($0) }
            let y = try g.concat(parts, axis: 1)
            XCTAssertEqual(y.shape, Shape(dims: [nil, 2 * n]))
            let r = try Session(graph: g).run(y, feeds: [x: try Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6] as [Float])])
            return (r.shape, try r.scalars(as: Float.self))
        }
        XCTAssertEqual(shape, [3, 2 * n])
        for row in 0..<3 {
            for k in [0, 1, 4999, n - 1] {
                XCTAssertEqual(v[row * 2 * n + 2 * k], Float(2 * row + 1) * Float(k), "row \(row) part \(k)")
                XCTAssertEqual(v[row * 2 * n + 2 * k + 1], Float(2 * row + 2) * Float(k), "row \(row) part \(k)")
            }
        }
    }

    func testWideConcatsOfBufferedOperandsGiveTheRightAnswer() throws {
        // Each part has two users, so it has a buffer of its own: the concat kernels read 200.
        let n = 200
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [2], name: "x")
        let parts = try (0..<n).map { try g.exp(x * Double($0) / Double(n)) }
        let y = try g.concat(parts, axis: 0), z = try g.concat(parts.reversed(), axis: 0)
        let r = try Session(graph: g).run([y, z], feeds: [x: try Tensor(shape: [2], scalars: [1, -1] as [Float])])
        let (vy, vz) = (try r[0].scalars(as: Float.self), try r[1].scalars(as: Float.self))
        for k in [0, 1, 77, n - 1] {
            let want = Float(exp(Double(k) / Double(n)))
            XCTAssertEqual(vy[2 * k], want, accuracy: want * 1e-5)
            XCTAssertEqual(vz[2 * (n - 1 - k)], want, accuracy: want * 1e-5)
            XCTAssertEqual(vy[2 * k + 1], 1 / want, accuracy: 1e-5)
        }
    }
}
