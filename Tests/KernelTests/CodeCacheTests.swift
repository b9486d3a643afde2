import Foundation
import XCTest
import KilnTestSupport
import KilnKernels

/// The compiled-code cache's files: what is stored reads back, anything short, corrupt or of
/// another kind reads as a miss (never a crash), the directory stays within its byte limit by
/// dropping the least recently used entries, and an unusable directory disables the cache.
final class CodeCacheTests: ScratchDirectoryTestCase {

    func testAStoredEntryReadsBackAndAnotherKeyMisses() throws {
        let cache = try XCTUnwrap(CodeCache.shared(kind: "llvm", root: scratch))
        let key = CodeCache.key(["code", "target"])
        XCTAssertNil(cache.load(key))
        cache.store(key, Array(0..<200))
        XCTAssertEqual(cache.load(key), Array(0..<200))
        XCTAssertNil(cache.load(CodeCache.key(["code", "another target"])))
        XCTAssertEqual([cache.hits, cache.misses, cache.writes, cache.rejected], [1, 2, 1, 0])
        // The same directory is the same cache for the whole process.
        XCTAssertTrue(CodeCache.shared(kind: "llvm", root: scratch) === cache)
        // No temporary file is left behind by the atomic write.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: cache.files.directory.path), [key + ".kobj"])
    }

    func testKeysSeparateTheirParts() {
        XCTAssertNotEqual(CodeCache.key(["ab", "c"]), CodeCache.key(["a", "bc"]))
        XCTAssertEqual(CodeCache.key(["ab", "c"]), CodeCache.key(["ab", "c"]))
    }

    func testTruncatedCorruptAndForeignFilesAreMisses() throws {
        let cache = CodeCache(directory: scratch)
        let key = CodeCache.key(["x"])
        let payload = [UInt8](repeating: 7, count: 1000)
        cache.store(key, payload)
        let file = cache.files.file(key)
        let whole = try Data(contentsOf: file)

        try whole.prefix(whole.count - 10).write(to: file)
        XCTAssertNil(cache.load(key), "truncated")
        var flipped = whole
        flipped[whole.count - 1] ^= 1
        try flipped.write(to: file)
        XCTAssertNil(cache.load(key), "a flipped bit")
        try Data("KILNCLB1 not an object".utf8).write(to: file)
        XCTAssertNil(cache.load(key), "another kind of file")
        try Data().write(to: file)
        XCTAssertNil(cache.load(key), "empty")
        XCTAssertEqual(cache.rejected, 4)

        cache.store(key, payload)   // rewritten after the miss
        XCTAssertEqual(cache.load(key), payload)
    }

    func testTheLeastRecentlyUsedEntriesGoPastTheLimit() throws {
        // Room for two 1000-byte entries and their headers, not three.
        let cache = CodeCache(directory: scratch, limitBytes: 2 * 1048 + 100)
        let keys = (0..<3).map { CodeCache.key(["entry \($0)"]) }
        cache.store(keys[0], Array(repeating: 0, count: 1000))
        cache.store(keys[1], Array(repeating: 1, count: 1000))
        // Entry 0 was used after entry 1 was written: entry 1 is the least recently used.
        let past = Date(timeIntervalSinceNow: -100)
        try FileManager.default.setAttributes([.modificationDate: past], ofItemAtPath: cache.files.file(keys[0]).path)
        try FileManager.default.setAttributes([.modificationDate: past.addingTimeInterval(-100)], ofItemAtPath: cache.files.file(keys[1]).path)
        XCTAssertNotNil(cache.load(keys[0]))
        cache.store(keys[2], Array(repeating: 2, count: 1000))
        XCTAssertNotNil(cache.load(keys[0]))
        XCTAssertNil(cache.load(keys[1]))
        XCTAssertNotNil(cache.load(keys[2]))
    }

    func testAnUnusableDirectoryDisablesTheCache() throws {
        // A regular file where the directory should be: it cannot be made.
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let file = scratch.appendingPathComponent("file")
        try Data("x".utf8).write(to: file)
        XCTAssertNil(CodeCache.shared(kind: "llvm", root: file))
        XCTAssertNil(CodeCache.shared(kind: "llvm", root: nil))
    }

    func testTheRootFollowsTheEnvironment() {
        XCTAssertNil(DiskCacheFiles.root(["KILN_CACHE_DIR": "off", "HOME": "/home/u"]))
        XCTAssertNil(DiskCacheFiles.root(["KILN_CACHE_DIR": "", "HOME": "/home/u"]))
        XCTAssertEqual(DiskCacheFiles.root(["KILN_CACHE_DIR": "/tmp/k"])?.path, "/tmp/k")
        XCTAssertEqual(DiskCacheFiles.root(["XDG_CACHE_HOME": "/x", "HOME": "/home/u"])?.path, "/x/kiln")
        XCTAssertEqual(DiskCacheFiles.root(["HOME": "/home/u"])?.path, "/home/u/.cache/kiln")
        XCTAssertNil(DiskCacheFiles.root([:]))
        XCTAssertEqual(DiskCacheFiles.limit(["KILN_CACHE_MAX_BYTES": "4096"]), 4096)
        XCTAssertEqual(DiskCacheFiles.limit(["KILN_CACHE_MAX_BYTES": "lots"]), 1 << 30)
    }

    func testTheTestSuiteRunsWithTheCacheOffUnlessTold() {
        // CKilnTestEnvironment's constructor: the suite must not write to the user's cache.
        XCTAssertNotNil(ProcessInfo.processInfo.environment["KILN_CACHE_DIR"])
    }
}
