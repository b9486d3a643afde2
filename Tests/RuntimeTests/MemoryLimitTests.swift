import XCTest
import Kiln
import KilnTestSupport

/// Declared sizes above the session's memory limit are resourceExhausted errors naming the node
/// and the size, raised when the run is compiled: nothing is allocated or computed first.
final class MemoryLimitTests: XCTestCase {
    private let gib = SessionConfig(memoryLimit: 1 << 30)

    func testAnEightTerabyteRangeIsRefused() throws {
        let g = Graph()
        let r = try g.range(0, 1e12, 1, dtype: .int64, name: "range")
        assertKilnError(.resourceExhausted, contains: ["OOM", "shape[1000000000000]", "int64", "8000000000000 bytes", "'range'", "1073741824"]) {
            try Session(graph: g, config: gib).run(r)
        }
    }

    func testAFortyGigabyteFillIsRefusedAlsoUnderTheDefaultLimit() throws {
        let g = Graph()
        let f = try g.fill([100_000, 100_000], 1, name: "fill")
        assertKilnError(.resourceExhausted, contains: ["OOM", "40000000000 bytes", "'fill'"]) { try Session(graph: g, config: gib).run(f) }
        // The default is a fraction of this machine's memory; 40 GB is above it on machines with
        // less than 53 GB (CI and this one), and the run must never abort whatever the machine.
        if ProcessInfo.processInfo.physicalMemory < 50_000_000_000 {
            assertKilnError(.resourceExhausted, contains: ["'fill'"]) { try Session(graph: g).run(f) }
        }
    }

    func testHugeOneHotDepthsAndSegmentCountsAreRefused() throws {
        let g = Graph()
        let idx = try g.constant([0, 1, 2] as [Int32])
        let hot = try g.oneHot(idx, depth: 1 << 30, name: "hot")
        assertKilnError(.resourceExhausted, contains: ["OOM", "1073741824]", "'hot'"]) { try Session(graph: g, config: gib).run(hot) }
        let data = try g.constant([1, 2, 3] as [Float])
        let n = try g.constant(Int32.max, name: "n")
        let seg = try g.addOperation("UnsortedSegmentSum", name: "seg", inputs: [data, idx, n]).output()
        assertKilnError(.resourceExhausted, contains: ["'seg'", "OOM"]) { try Session(graph: g, config: gib).run(seg) }
    }

    func testAReductionOverADeclaredFourTerabyteBroadcastIsRefusedThoughItIsFused() throws {
        let g = Graph()
        let big = try g.fill([1 << 20, 1 << 20], 1, name: "big")   // 4 TiB of float32, never allocated when fused
        let s = try g.reduceSum(big, name: "sum")
        let start = Date()
        assertKilnError(.resourceExhausted, contains: ["'big'", "4398046511104 bytes"]) { try Session(graph: g, config: gib).run(s) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "refused when compiled, not after computing")
    }

    func testAFeedAboveTheLimitIsRefused() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, name: "x")
        let y = try g.exp(x)
        let small = SessionConfig(memoryLimit: 1024)
        let feed = try Tensor(zeros: .float32, shape: [512])
        assertKilnError(.resourceExhausted, contains: ["'x:0'", "2048 bytes", "1024"]) { try Session(graph: g, config: small).run(y, feeds: [x: feed]) }
        XCTAssertEqual(try Session(graph: g, config: small).run(y, feeds: [x: Tensor(zeros: .float32, shape: [64])]).shape, [64])
    }

    func testAVariableAboveTheLimitIsRefused() throws {
        let g = Graph()
        let v = try g.addOperation("VariableV2", name: "v", attrs: ["dtype": .type(.float32), "shape": .shape(Shape([1 << 20, 1 << 20]))])
        assertKilnError(.resourceExhausted, contains: ["'v'", "4398046511104 bytes"]) { try Session(graph: g, config: gib).run(v.output()) }
    }

    func testAnArenaAboveTheLimitIsRefusedThoughEachValueFits() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [1024], name: "x")
        let e = try g.exp(x)   // used twice, so it gets an arena buffer of 4096 bytes
        let y = try g.add(g.reduceSum(e), g.reduceMax(e))
        let feed = try Tensor(zeros: .float32, shape: [1024])
        assertKilnError(.resourceExhausted, contains: ["arena", "above the memory limit of 4096 bytes"]) {
            try Session(graph: g, config: SessionConfig(memoryLimit: 4096)).run(y, feeds: [x: feed])
        }
        XCTAssertEqual(try Session(graph: g, config: SessionConfig(memoryLimit: 1 << 20)).run(y, feeds: [x: feed]).scalar(as: Float.self), 1025)
    }

    func testTheLimitIsReadFromTheEnvironmentSpelling() {
        XCTAssertEqual(SessionConfig.parseByteCount("1048576"), 1 << 20)
        XCTAssertEqual(SessionConfig.parseByteCount("512M"), 512 << 20)
        XCTAssertEqual(SessionConfig.parseByteCount("8G"), 8 << 30)
        XCTAssertEqual(SessionConfig.parseByteCount("2TB"), 2 << 40)
        XCTAssertNil(SessionConfig.parseByteCount("lots"))
        XCTAssertNil(SessionConfig.parseByteCount("-5"))
        XCTAssertNil(SessionConfig.parseByteCount("99999999999T"))
        let d = SessionConfig.defaultMemoryLimit
        XCTAssertGreaterThan(d, 0)
        if ProcessInfo.processInfo.environment["KILN_MEMORY_LIMIT"] == nil {
            XCTAssertLessThanOrEqual(UInt64(d), ProcessInfo.processInfo.physicalMemory)
        }
    }
}
