import XCTest
import CKilnRT
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// Kiln's own float32 matrix product (CKilnRT/gemm.c) and the worker pool it runs on.
final class MatrixProductKernelTests: XCTestCase {
    func values(_ n: Int, _ seed: Int) -> [Float] { (0..<n).map { Float(($0 &* 37 &+ seed &* 11) % 97) / 48 - 1 } }

    /// Every edge the kernel has: ragged panels and strips, K beyond one block, a 4 KiB row
    /// stride (B packed), single rows and columns, all four transpose combinations.
    func testOwnProductMatchesTheDefinitionOnEveryEdge() throws {
        try XCTSkipUnless(kiln_sgemm_available() != 0, "kiln_sgemm needs AVX-512F")
        let shapes = [(1, 1, 1), (1, 17, 5), (17, 1, 300), (37, 23, 19), (16, 16, 256), (33, 48, 257),
                      (128, 200, 784), (784, 200, 128), (64, 1024, 40), (130, 70, 1030)]
        for (m, n, k) in shapes {
            for ta in [false, true] {
                for tb in [false, true] {
                    let a = values(m * k, 1), b = values(k * n, 2)
                    var c = [Float](repeating: .nan, count: m * n)
                    kiln_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), 1, a, Int64(ta ? m : k), b, Int64(tb ? k : n), &c, Int64(n), 0)
                    var worst = 0.0
                    for i in 0..<m {
                        for j in 0..<n {
                            var want = 0.0
                            for p in 0..<k {
                                want += Double(ta ? a[p * m + i] : a[i * k + p]) * Double(tb ? b[j * k + p] : b[p * n + j])
                            }
                            worst = max(worst, abs(Double(c[i * n + j]) - want) / max(1, abs(want)))
                        }
                    }
                    XCTAssertLessThan(worst, 1e-5, "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
                }
            }
        }
    }

    /// Small outputs over a long K are split into K chunks summed at the end, also when the
    /// product accumulates into C with a scale (a gradient step).
    func testSplitKProductsMatchTheDefinition() throws {
        try XCTSkipUnless(kiln_sgemm_available() != 0, "kiln_sgemm needs AVX-512F")
        kiln_pool_start(Int32(max(2, ProcessInfo.processInfo.activeProcessorCount)))
        for (m, n, k, ta, tb) in [(9, 16, 4096, true, false), (20, 18, 3001, false, true), (1, 1, 5000, false, false), (33, 7, 2048, true, true)] {
            let a = values(m * k, 5), b = values(k * n, 6)
            let start = values(m * n, 7)
            var c = start
            kiln_sgemm(ta ? 1 : 0, tb ? 1 : 0, Int64(m), Int64(n), Int64(k), -0.5, a, Int64(ta ? m : k), b, Int64(tb ? k : n), &c, Int64(n), 1)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    for p in 0..<k { sum += Double(ta ? a[p * m + i] : a[i * k + p]) * Double(tb ? b[j * k + p] : b[p * n + j]) }
                    let want = Double(start[i * n + j]) - 0.5 * sum
                    worst = max(worst, abs(Double(c[i * n + j]) - want) / max(1, abs(want)))
                }
            }
            XCTAssertLessThan(worst, 1e-5, "m=\(m) n=\(n) k=\(k) ta=\(ta) tb=\(tb)")
        }
    }

    func testOwnProductWritesOnlyItsOutputWithinALargerRowStride() throws {
        try XCTSkipUnless(kiln_sgemm_available() != 0, "kiln_sgemm needs AVX-512F")
        let (m, n, k, ldc) = (20, 18, 9, 32)
        let a = values(m * k, 3), b = values(k * n, 4)
        var c = [Float](repeating: 7, count: m * ldc)
        kiln_sgemm(0, 0, Int64(m), Int64(n), Int64(k), 1, a, Int64(k), b, Int64(n), &c, Int64(ldc), 0)
        for i in 0..<m {
            for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], 7, "row \(i) column \(j) is past the output") }
        }
    }

    /// Many back-to-back jobs on an oversubscribed machine: each index must run exactly once per
    /// job. (The race this guards against, a worker preempted while leaving one job claiming a
    /// part of the next against the old count, needs preemption at one instruction; it showed as
    /// a crash in a GEMM benchmark, and this test catches it only by chance.) Jobs of rows (parts
    /// claimed from both ends) and of tasks (from the front) alternate, so a worker leaving one
    /// kind of job meets the other.
    func testPoolRunsEveryPartOfEveryJobExactlyOnce() {
        kiln_pool_start(Int32(ProcessInfo.processInfo.activeProcessorCount))
        let stop = ManagedAtomicFlag()
        let spinners = (0..<ProcessInfo.processInfo.activeProcessorCount).map { _ in
            let t = Thread { while !stop.isSet { } }
            t.start()
            return t
        }
        defer { stop.set(); _ = spinners }
        let count = 97
        let hits = UnsafeMutablePointer<Int64>.allocate(capacity: count)
        defer { hits.deallocate() }
        let kernel: kiln_range_kernel = { counts, _, _, _, begin, end in
            let c = counts!.assumingMemoryBound(to: Int64.self)
            for i in Int(begin)..<Int(end) { c[i] += 1 }
        }
        for job in 0..<30000 {
            hits.initialize(repeating: 0, count: count)
            var args: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(hits), nil, nil, nil]
            args.withUnsafeMutableBufferPointer {
                if job % 2 == 0 { kiln_parallel_for(kernel, $0.baseAddress, Int64(count)) } else { kiln_parallel_tasks(kernel, $0.baseAddress, Int64(count)) }
            }
            for i in 0..<count where hits[i] != 1 {
                return XCTFail("job \(job): index \(i) ran \(hits[i]) times")
            }
        }
    }

    /// Every part of a job, on whichever thread, sees the job's number (what the Winograd
    /// convolution keys its transformed filter by); the next job, of either kind, has another;
    /// outside a job it is 0.
    func testEveryPartOfAJobSeesItsOwnNumberAndNoOtherJobHasIt() {
        kiln_pool_start(Int32(ProcessInfo.processInfo.activeProcessorCount))
        XCTAssertEqual(kiln_pool_running_job(), 0)
        let count = 64
        let seen = UnsafeMutablePointer<UInt64>.allocate(capacity: count)
        defer { seen.deallocate() }
        let kernel: kiln_range_kernel = { out, _, _, _, begin, end in
            let s = out!.assumingMemoryBound(to: UInt64.self)
            for i in Int(begin)..<Int(end) { s[i] = kiln_pool_running_job() }
        }
        var numbers = Set<UInt64>()
        for job in 0..<200 {
            seen.initialize(repeating: 0, count: count)
            var args: [UnsafeMutableRawPointer?] = [UnsafeMutableRawPointer(seen), nil, nil, nil]
            args.withUnsafeMutableBufferPointer {
                if job % 2 == 0 { kiln_parallel_for(kernel, $0.baseAddress, Int64(count)) } else { kiln_parallel_tasks(kernel, $0.baseAddress, Int64(count)) }
            }
            let number = seen[0]
            XCTAssertNotEqual(number, 0, "job \(job)")
            XCTAssertTrue((0..<count).allSatisfy { seen[$0] == number }, "job \(job): parts saw different numbers")
            XCTAssertTrue(numbers.insert(number).inserted, "job \(job): number \(number) used before")
        }
        XCTAssertEqual(kiln_pool_running_job(), 0)
    }
}

/// A flag set once, read from other threads.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
