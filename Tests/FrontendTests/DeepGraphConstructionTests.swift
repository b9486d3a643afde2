import XCTest
import KilnIR
import KilnTestSupport
@testable import KilnFrontend

/// Graphs as deep and wide as fuzzing makes them, built, differentiated, exported, imported and
/// released on a secondary thread's small stack: nothing recurses once per op.
final class DeepGraphConstructionTests: XCTestCase {
    static let n = 20000

    /// x * 1.0001 + 0.5, repeated: n ops after the placeholder (and their scalar constants).
    static func chain(_ g: Graph, ops n: Int) throws -> (x: Output, y: Output) {
        let x = try g.placeholder(.float32, shape: [nil], name: "x")
        var y = x
        for k in 0..<n { y = k % 2 == 0 ? try y * 1.0001 : try y + 0.5 }
        return (x, y)
    }

    func testLongChainIsBuiltNamedExportedImportedAndReleasedOnASmallStack() throws {
        let names = try onThread { () throws -> [String] in
            let g = Graph()
            let (_, y) = try Self.chain(g, ops: Self.n)
            XCTAssertEqual(y.op.name, "add_\(Self.n / 2 - 1)")
            let copy = Graph()
            let imported = try copy.importGraphDef(serialized: try g.serializedGraphDef(), prefix: "")
            XCTAssertEqual(imported.count, g.operations.count)
            return [y.op.name, imported.last!.name]
            // Both graphs (and their chains) are released here, on the small stack.
        }
        XCTAssertEqual(names[0], names[1])
    }

    func testAChainThatOutlivesItsGraphIsReleasedOnASmallStack() throws {
        try onThread {
            var y: Output?
            do { y = try Self.chain(Graph(), ops: Self.n).y }
            XCTAssertEqual(y?.op.type, "AddV2")
            y = nil   // the last reference to the whole chain
        }
    }

    func testGradientsOfALongChainAreBuiltOnASmallStack() throws {
        let opCount = try onThread { () throws -> Int in
            let g = Graph()
            let (x, y) = try Self.chain(g, ops: Self.n)
            let dx = try XCTUnwrap(g.gradients([y], [x])[0])
            XCTAssertEqual(dx.dtype, .float32)
            return g.operations.count
        }
        XCTAssertGreaterThan(opCount, 2 * Self.n)
    }

    func testStaticValueSeesThroughALongIdentityChain() throws {
        try onThread {
            let g = Graph()
            var shape = try g.constant(try Tensor(shape: [2], scalars: [2, 3] as [Int32]), name: "shape")
            for _ in 0..<Self.n { shape = try g.identity(shape) }
            let x = try g.placeholder(.float32, shape: [6], name: "x")
            let r = try g.reshape(x, shapeTensor: shape)
            XCTAssertEqual(r.shape, Shape(dims: [2, 3]))
        }
    }

    func testControlDependenciesOnManyOpsAreEachKeptOnce() throws {
        let g = Graph()
        let ops = try (0..<Self.n).map { try g.noOp(name: "n\($0)") }
        let all = try g.controlDependencies(ops) { try g.controlDependencies(Array(ops.reversed())) { try g.noOp(name: "all") } }
        XCTAssertEqual(all.controlInputs, ops)
    }
}
