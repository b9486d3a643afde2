import XCTest
@testable import KilnFrontend
import KilnIR

/// The order pruned ops lower in: topological over data and control edges, reads before writes.
final class ExecutionOrderTests: XCTestCase {
    private func order(_ g: Graph, fetches: [Output] = [], targets: [KilnFrontend.Operation] = []) throws -> [String] {
        try Lowering.executionOrder(Lowering.prune(fetches: fetches, feeds: [], targets: targets), feeds: []).map(\.name)
    }

    func testAGraphWithoutWritesLowersInCreationOrder() throws {
        let g = Graph()
        let a = try g.constant(1 as Float, name: "a"), b = try g.constant(2 as Float, name: "b")
        let s = try g.add(a, b, name: "s")
        let p = try g.multiply(s, a, name: "p")
        XCTAssertEqual(try order(g, fetches: [p]), ["a", "b", "s", "p"])
    }

    func testReadyReadsGoBeforeReadyWritesAndDependentReadsAfterThem() throws {
        let g = Graph()
        let v = try g.variable(1 as Float, name: "v")
        let one = try g.constant(1 as Float, name: "one")
        let bump = try g.assignAdd(v, one, name: "bump")
        let early = try g.multiply(v, one, name: "early")                          // created after bump, independent of it
        let late = try g.controlDependencies([bump.op]) { try g.multiply(v, one, name: "late") }
        let names = try order(g, fetches: [early, late], targets: [bump.op])
        XCTAssertEqual(names, ["v", "v/read", "one", "early", "bump", "late"])
    }

    func testAmongReadyWritesTheFirstCreatedGoesFirstAndItsReadersBeforeTheNext() throws {
        let g = Graph()
        let v = try g.variable(0 as Float, name: "v")
        let c = try g.constant(3 as Float, name: "c")
        let first = try g.assign(v, c, name: "first")
        let second = try g.assignAdd(v, c, name: "second")
        let sees = try g.controlDependencies([first.op]) { try g.identity(c, name: "sees_first") }
        let names = try order(g, fetches: [sees], targets: [second.op])
        XCTAssertEqual(Array(names.suffix(3)), ["first", "sees_first", "second"])
    }
}
