import XCTest
import Kiln

/// A session keeps at most `executableCacheCapacity` executables, dropping the least recently used.
final class ExecutableCacheTests: XCTestCase {
    private func doubler() throws -> (Graph, Output, Output) {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: [nil], name: "x")
        return (g, x, try g.multiply(x, try g.constant(2 as Float)))
    }

    private func check(_ sess: Session, _ x: Output, _ y: Output, length n: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let input = (0..<n).map { Float($0) + 0.5 }
        let got = try sess.run(y, feeds: [x: Tensor(shape: [n], scalars: input)])
        XCTAssertEqual(try got.scalars(as: Float.self), input.map { $0 * 2 }, file: file, line: line)
    }

    func testMoreShapesThanTheCapacityEvictTheLeastRecentlyUsedAndStillAnswerRight() throws {
        let (g, x, y) = try doubler()
        // Each length its own executable (not one for every length up to the first).
        var config = SessionConfig(executableCacheCapacity: 3)
        config.batchTemplates = false
        let sess = try Session(graph: g, config: config)
        for n in 1...3 { try check(sess, x, y, length: n) }
        XCTAssertEqual(sess.executableCache, ExecutableCacheStatistics(cached: 3, capacity: 3, compiles: 3, hits: 0, evictions: 0))
        try check(sess, x, y, length: 1)              // 1 is now the most recently used, 2 the least
        try check(sess, x, y, length: 4)              // evicts 2
        XCTAssertEqual(sess.executableCache, ExecutableCacheStatistics(cached: 3, capacity: 3, compiles: 4, hits: 1, evictions: 1))
        try check(sess, x, y, length: 1)              // still cached
        try check(sess, x, y, length: 3)              // still cached
        XCTAssertEqual(sess.executableCache.compiles, 4)
        try check(sess, x, y, length: 2)              // compiled again, evicting 4
        XCTAssertEqual(sess.executableCache, ExecutableCacheStatistics(cached: 3, capacity: 3, compiles: 5, hits: 3, evictions: 2))
        try check(sess, x, y, length: 4)
        XCTAssertEqual(sess.executableCache.compiles, 6)        // evicts 1, the least recently used now
        for n in 5...40 { try check(sess, x, y, length: n) }
        XCTAssertEqual(sess.executableCache.cached, 3)
        XCTAssertEqual(sess.executableCache.evictions, 3 + 36)    // 3 so far, then one per new shape
        XCTAssertEqual(sess.compileCount, sess.executableCache.compiles)
    }

    func testTheDefaultCapacityIs64AndACapacityBelowOneIsRefused() throws {
        let (g, x, y) = try doubler()
        XCTAssertEqual(SessionConfig().executableCacheCapacity, 64)
        let sess = try Session(graph: g)
        try check(sess, x, y, length: 2)
        XCTAssertEqual(sess.executableCache, ExecutableCacheStatistics(cached: 1, capacity: 64, compiles: 1, hits: 0, evictions: 0))
        XCTAssertThrowsError(try Session(graph: g, config: SessionConfig(executableCacheCapacity: 0))) { e in
            XCTAssertEqual((e as? KilnError)?.code, .invalidArgument)
            XCTAssertTrue("\(e)".contains("executableCacheCapacity"), "\(e)")
        }
    }
}
