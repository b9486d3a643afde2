import Foundation
import XCTest
import CKilnRT
import KilnKernels
import KilnTestSupport

/// Host threads (queue runners) and the worker pool: a thread counts while it is marked and
/// not after, and jobs split across the pool while one is alive (its spinning workers then yield
/// their core now and then) still cover every row exactly once.
final class PoolHostThreadTests: XCTestCase {
    func testAThreadCountsAsAHostThreadOnlyWhileMarked() {
        let before = NativeRuntime.hostThreads
        let seen = LockedList<Int>()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            NativeRuntime.asHostThread { seen.add(NativeRuntime.hostThreads) }
            seen.add(NativeRuntime.hostThreads)
            done.signal()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(seen.all(), [before + 1, before])
        XCTAssertEqual(NativeRuntime.hostThreads, before)
    }

    func testJobsSplitWhileAHostThreadIsAliveCoverEveryRowOnce() {
        NativeRuntime.start()
        let rows = 10_000, jobs = 200
        let counts = Counts(rows)
        let marked = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), ended = DispatchSemaphore(value: 0)
        // A host thread alive throughout (waiting on a semaphore).
        Thread.detachNewThread {
            NativeRuntime.asHostThread {
                marked.signal()
                release.wait()
            }
            ended.signal()
        }
        marked.wait()
        XCTAssertGreaterThanOrEqual(NativeRuntime.hostThreads, 1)
        let kernel: kiln_range_kernel = { out, _, _, _, begin, end in
            let c = out!.assumingMemoryBound(to: Int32.self)
            for i in Int(begin)..<Int(end) { c[i] += 1 }
        }
        let jobsBefore = kiln_parallel_jobs()
        var args: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(counts.pointer), nil, nil, nil]
        for _ in 0..<jobs { args.withUnsafeMutableBufferPointer { kiln_parallel_for(kernel, $0.baseAddress, Int64(rows)) } }
        release.signal()
        XCTAssertEqual(ended.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(kiln_parallel_jobs() - jobsBefore, UInt64(jobs))
        XCTAssertEqual((0..<rows).filter { counts.pointer[$0] != Int32(jobs) }, [])
    }
}

/// Rows counted by a kernel.
private final class Counts {
    let pointer: UnsafeMutablePointer<Int32>

    init(_ rows: Int) {
        pointer = .allocate(capacity: rows)
        pointer.initialize(repeating: 0, count: rows)
    }

    deinit { pointer.deallocate() }
}
