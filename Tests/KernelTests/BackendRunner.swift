import XCTest
import Foundation
import CKilnRT
import KilnIR
import KilnPasses
import KilnKernels
import KilnTestSupport

/// Runs a suite's cases on every backend present and prints one tally per backend
/// (`backend llvm: primitive sweep: 412 cases passed, 0 failed`). A failure names the backend
/// and the case. Every compile-and-run has a deadline, so a result that never comes back is a
/// failure, not a stuck suite.
///
/// Compiling is the slow part on some backends (the C backend runs the C compiler once per
/// executable), so up to `batch` value-only cases are compiled together as one function of
/// independent results, and such batches compile and run one per core at a time. A batch that
/// fails is taken apart: each of its cases runs alone, and a case that passes alone but not
/// batched is still a failure.
enum BackendRunner {
    /// Seconds one compile-and-run (one case, or one batch) may take before it counts as hung.
    static let defaultDeadline = 120.0

    static func run(_ suite: String, _ cases: [KernelCase], batch: Int = 1, deadline: Double = defaultDeadline,
                    file: StaticString = #filePath, line: UInt = #line) {
        BundleTally.install()
        let references = ReferenceCache(cases)
        if cases.isEmpty { XCTFail("\(suite): no cases", file: file, line: line) }
        if Backends.present.isEmpty { XCTFail("\(suite): no backend to run on", file: file, line: line) }
        for backend in Backends.present {
            let start = Date()
            var problems: [Int: String] = [:]
            var hung = false
            for wave in waves(units(cases, batch: batch), cases) {
                if hung {
                    for k in wave.joined() { problems[k] = "not run: an earlier case on this backend never came back" }
                    continue
                }
                let outcomes = Outcomes(wave.count)
                DispatchQueue.concurrentPerform(iterations: wave.count) { w in
                    let unit = wave[w]
                    outcomes.set(w, withDeadline(deadline) { () -> [Int: String] in
                        unit.count == 1 ? [unit[0]: runAlone(cases[unit[0]], on: backend, reference: { references[unit[0]] })].compactMapValues { $0 }
                                        : runBatch(unit.map { cases[$0] }, unit, on: backend, references: references)
                    })
                }
                for (unit, outcome) in zip(wave, outcomes.values) {
                    switch outcome {
                    case .none:
                        hung = true
                        for k in unit { problems[k] = "no result within \(Int(deadline)) s" + (unit.count > 1 ? " (compiled as one batch of \(unit.count) cases)" : "") }
                    case .some(.failure(let e)):
                        for k in unit { problems[k] = "threw \(e)" }
                    case .some(.success(let p)):
                        problems.merge(p) { a, _ in a }
                    }
                }
            }
            let failed = problems.count, passed = cases.count - failed
            let seconds = Date().timeIntervalSince(start)
            print("backend \(backend.name): \(suite): \(passed) cases passed, \(failed) failed (\(String(format: "%.1f", seconds)) s)")
            BundleTally.add(backend.name, passed: passed, failed: failed)
            for k in problems.keys.sorted() {
                let c = cases[k]
                let listing = c.function.body.count <= 60 ? "\n" + Printer.print(c.function) : ""
                XCTFail("backend \(backend.name), \(suite), case '\(c.name)'\(c.fuse ? "" : " (unfused)"): \(problems[k]!)\(listing)", file: file, line: line)
            }
        }
    }

    /// A check that does not fit a KernelCase (several executables of one function at once):
    /// `body` returns the problem on a backend, or nil. Tallied and timed like a case.
    static func run(_ suite: String, check name: String, deadline: Double = defaultDeadline, file: StaticString = #filePath, line: UInt = #line,
                    _ body: @escaping @Sendable (any Backend) throws -> String?) {
        BundleTally.install()
        if Backends.present.isEmpty { XCTFail("\(suite): no backend to run on", file: file, line: line) }
        for backend in Backends.present {
            let start = Date()
            let problem: String?
            switch withDeadline(deadline, { try body(backend) }) {
            case .none: problem = "no result within \(Int(deadline)) s"
            case .some(.failure(let e)): problem = "threw \(e)"
            case .some(.success(let p)): problem = p
            }
            let seconds = Date().timeIntervalSince(start)
            print("backend \(backend.name): \(suite): \(problem == nil ? 1 : 0) cases passed, \(problem == nil ? 0 : 1) failed (\(String(format: "%.1f", seconds)) s)")
            BundleTally.add(backend.name, passed: problem == nil ? 1 : 0, failed: problem == nil ? 0 : 1)
            if let problem { XCTFail("backend \(backend.name), \(suite), case '\(name)': \(problem)", file: file, line: line) }
        }
    }

    /// Units run at the same time, one per core (up to 4): the C compiler is single-threaded and
    /// compiling dominates. Only units of value-only cases share a wave; a case that counts the
    /// pool's jobs or inspects its executable runs in a wave of its own.
    static func waves(_ units: [[Int]], _ cases: [KernelCase]) -> [[[Int]]] {
        let width = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        var out: [[[Int]]] = []
        for unit in units {
            let shareable = unit.allSatisfy { cases[$0].batchable }
            if shareable, let last = out.last, last.count < width, last.allSatisfy({ $0.allSatisfy { cases[$0].batchable } }) {
                out[out.count - 1].append(unit)
            } else {
                out.append([unit])
            }
        }
        return out
    }

    /// Indices of cases compiled together: runs of batchable cases with the same options, at most
    /// `batch` long; every other case alone.
    static func units(_ cases: [KernelCase], batch: Int) -> [[Int]] {
        var out: [[Int]] = []
        var current: [Int] = []
        for (k, c) in cases.enumerated() {
            if !c.batchable || batch <= 1 {
                if !current.isEmpty { out.append(current); current = [] }
                out.append([k])
                continue
            }
            if let first = current.first, cases[first].fuse != c.fuse || current.count >= batch {
                out.append(current)
                current = []
            }
            current.append(k)
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// The problem with one case on `backend`, or nil.
    static func runAlone(_ c: KernelCase, on backend: any Backend, reference: () -> Result<(results: [Tensor], parameters: [Tensor]), Error>) -> String? {
        let exe: any Executable
        do { exe = try backend.compile(c.function, options: CompileOptions(fuse: c.fuse)) } catch { return "did not compile: \(error)" }
        if exe.backendName != backend.name { return "the executable says backend '\(exe.backendName)'" }
        if let inspect = c.inspect, let problem = inspect(exe, backend.target) { return problem }
        var params = c.inputs
        let jobs = kiln_parallel_jobs()
        let got = Result { try exe.run(&params) }
        let split = Int(kiln_parallel_jobs() - jobs)
        if let problem = c.judge(got, parameters: params, on: backend.target, reference: reference) { return problem }
        let expected = c.splitJobs?(backend.target) ?? 0
        if split < expected {
            return "the run gave the worker pool \(split) job(s), expected at least \(expected): a kernel that should be split across the pool was not"
        }
        return nil
    }

    /// Compiles `batch` as one function, runs it once and judges each case on its own results
    /// and variables; cases that fail are run again alone. Keyed by case index.
    static func runBatch(_ batch: [KernelCase], _ indices: [Int], on backend: any Backend, references: ReferenceCache) -> [Int: String] {
        let (joined, paramRanges, resultRanges) = Function.joining(batch.map(\.function), name: "batch")
        var suspects = Array(batch.indices)
        var batchProblem: [Int: String] = [:]
        do {
            let exe = try backend.compile(joined, options: CompileOptions(fuse: batch[0].fuse))
            var params = batch.flatMap(\.inputs)
            let results = try exe.run(&params)
            suspects = batch.indices.filter { b in
                let got = Array(results[resultRanges[b]])
                let problem = batch[b].judge(.success(got), parameters: Array(params[paramRanges[b]]), on: backend.target, reference: { references[indices[b]] })
                batchProblem[b] = problem
                return problem != nil
            }
        } catch {
            for b in batch.indices { batchProblem[b] = "the batch threw \(error)" }
        }
        var problems: [Int: String] = [:]
        for b in suspects {
            if let alone = runAlone(batch[b], on: backend, reference: { references[indices[b]] }) {
                problems[indices[b]] = alone
            } else {
                problems[indices[b]] = "passes alone but not compiled with \(batch.count - 1) other cases: \(batchProblem[b]!)"
            }
        }
        return problems
    }
}

/// What each unit of a wave gave (nil: no result before the deadline).
private final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var values: [Result<[Int: String], any Error>?]
    init(_ count: Int) { values = Array(repeating: nil, count: count) }
    func set(_ k: Int, _ v: Result<[Int: String], any Error>?) { lock.withLock { values[k] = v } }
}

/// Each case's reference result, computed once for all backends (the reference evaluator is
/// slow on the large cases).
final class ReferenceCache: @unchecked Sendable {
    private let cases: [KernelCase]
    private var cache: [Int: Result<(results: [Tensor], parameters: [Tensor]), Error>] = [:]
    private let lock = NSLock()
    init(_ cases: [KernelCase]) { self.cases = cases }
    subscript(k: Int) -> Result<(results: [Tensor], parameters: [Tensor]), Error> {
        lock.lock()
        defer { lock.unlock() }
        if let r = cache[k] { return r }
        let r = cases[k].reference()
        cache[k] = r
        return r
    }
}
