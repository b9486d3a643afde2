import XCTest
import KilnIR
import KilnPasses

/// Two hundred seeded random functions (RandomGraphs), each compiled fused and unfused, must
/// compute what the reference evaluator computes on every backend. This is what keeps fusion
/// honest: an index-map, liveness or variable-ordering mistake shows up as a mismatch here.
final class RandomGraphTests: XCTestCase {
    func testTwoHundredRandomGraphsMatchTheReferenceFusedAndUnfused() throws {
        let graphs = try (UInt64(1)...200).map { try RandomGraph(seed: $0) }
        // The generator must really produce every kind of op it is meant to cover.
        for kind in RandomGraph.coveredKinds.sorted() {
            let n = graphs.filter { $0.kinds.contains(kind) }.count
            XCTAssertGreaterThanOrEqual(n, 10, "only \(n) of 200 random graphs have a \(kind)")
        }
        var cases: [KernelCase] = []
        for fuse in [true, false] {
            for (k, g) in graphs.enumerated() {
                cases.append(KernelCase("seed \(k + 1)", g.function, g.inputs, fuse: fuse, exactResults: g.exactResults))
            }
        }
        // Ten graphs to an executable: each keeps its own parameters and results.
        BackendRunner.run("random graphs", cases, batch: 10)
    }
}
