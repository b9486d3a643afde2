import XCTest
import Kiln
@testable import KilnDistributed

/// Tensor fusion's grouping and what a collective op does without a world (no MPI needed).
final class FusionAndEngineTests: XCTestCase {
    private func request(_ name: String, _ dtype: DType, _ count: Int) throws -> AllreduceRequest {
        AllreduceRequest(name: name, tensor: try Tensor(zeros: dtype, shape: [count]), reduceOp: .average, prescale: 1, postscale: 1)
    }

    func testFusionPacksOneDtypePerBufferUpToTheThreshold() throws {
        let r = [try request("a", .float32, 10), try request("b", .float64, 4), try request("c", .float32, 10),
                 try request("d", .float32, 30), try request("e", .float64, 2)].map(\.spec)
        // 40 + 40 bytes of float32 fit 100; the next 120 do not (it goes alone); float64 32 + 16.
        XCTAssertEqual(FusedAllreduce.fuse(r, threshold: 100), [[0, 2], [1, 4], [3]])
        XCTAssertEqual(FusedAllreduce.fuse(r, threshold: 0), [[0], [1], [2], [3], [4]])
        XCTAssertEqual(FusedAllreduce.fuse(r, threshold: 1 << 20), [[0, 2, 3], [1, 4]])
    }

    func testAllreduceWithoutAWorldIsAClearError() throws {
        let g = Graph()
        let v = try g.variable(try Tensor(shape: [2], scalars: [Float(1), 2]), name: "v")
        let loss = try g.reduceSum(v * v)
        let train = try DistributedOptimizer(GradientDescentOptimizer(g, learningRate: 0.1)).minimize(loss)
        let s = try Session(graph: g)
        try s.run(g.globalVariablesInitializer())
        XCTAssertThrowsError(try s.run(train)) { error in
            let e = error as? KilnError
            XCTAssertEqual(e?.code, .failedPrecondition)
            XCTAssertTrue(e?.message.contains("no distributed world is running") ?? false, "\(error)")
        }
    }

    /// A global batch splits into contiguous shares that cover it once, sizes differing by one
    /// at most; files go round-robin, and too few files for the ranks is an error.
    func testSharesSplitTheGlobalBatchAndTheFiles() throws {
        XCTAssertEqual((0..<3).map { World.share(of: 10, rank: $0, size: 3) }, [0..<4, 4..<7, 7..<10])
        XCTAssertEqual((0..<4).map { World.share(of: 12, rank: $0, size: 4) }, [0..<3, 3..<6, 6..<9, 9..<12])
        XCTAssertEqual(World.share(of: 5, rank: 0, size: 1), 0..<5)
        XCTAssertEqual(try World.shard(files: ["a", "b", "c", "d", "e"], rank: 1, size: 2), ["b", "d"])
        XCTAssertThrowsError(try World.shard(files: ["a"], rank: 0, size: 2))
    }
}

/// Which rounds overlap: off never, on whenever there are two buckets, auto when the buckets
/// before the last carry enough bytes to pay for splitting the backward pass.
final class OverlapDecisionTests: XCTestCase {
    private func specs(_ bytes: [Int]) -> [AllreduceSpec] {
        bytes.enumerated().map { AllreduceSpec(name: "g\($0.offset)", dtype: .float32, shape: [$0.element / 4], reduceOp: .average) }
    }

    func testBucketsFollowProductionOrderAndTheThresholdAndAutoWeighsTheirSize() {
        let small = specs([400, 400, 400])
        let engine = { (mode: AllreduceOverlap, size: Int) in FusedAllreduce(rank: 0, size: size, timeout: 1, fusionThreshold: 800, overlap: mode) }
        XCTAssertNil(engine(.off, 2).overlapBuckets(small))
        XCTAssertEqual(engine(.on, 2).overlapBuckets(small), [[0, 1], [2]])
        XCTAssertNil(engine(.auto, 2).overlapBuckets(small), "a few hundred bytes do not pay for the split")
        let m = FusedAllreduce.overlapMinimumBytes
        let large = specs([m / 2, m / 2, m])
        let auto = FusedAllreduce(rank: 0, size: 2, timeout: 1, fusionThreshold: m, overlap: .auto)
        XCTAssertEqual(auto.overlapBuckets(large), [[0, 1], [2]])
        XCTAssertNil(FusedAllreduce(rank: 0, size: 1, timeout: 1, fusionThreshold: m, overlap: .auto).overlapBuckets(large), "one rank reduces nothing")
        XCTAssertNil(FusedAllreduce(rank: 0, size: 2, timeout: 1, fusionThreshold: 2 * m, overlap: .auto).overlapBuckets(large), "one bucket")
    }
}
