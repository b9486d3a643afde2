import Foundation
import KilnIR
import KilnPasses
import KilnKernels
import KilnFrontend

// One executable for every batch size of a run (a training loop's short last batch, an
// evaluation of another size): the first compile of a run whose feeds leave their batch
// dimension open is also lowered one row shorter, and where the two differ only by the batch the
// executable takes it at run time (BatchTemplate, BatchRows). A later run of a smaller batch is
// lowered again (milliseconds) and runs on that executable when it is exactly the template at
// that batch; otherwise it compiles as before.

extension Session {
    /// Lowers the run and runs the standard passes over it. `passesStart` is set to when the
    /// passes began; with `log`, the IR is printed after lowering and after every pass.
    func lowerOptimized(fetches: [Output], feeds: [(Output, TensorType)], targets: [KilnFrontend.Operation],
                        within: Set<KilnFrontend.Operation>?, name: String, backend: any Backend,
                        passesStart: inout DispatchTime, log: Bool = false) throws -> LoweredGraph {
        var lowered = try Lowering.lower(fetches: fetches, feeds: feeds, targets: targets, name: name, sessionSeed: sessionSeed,
                                         evaluator: { op, operands in try ReferenceEvaluator.evaluate(op, operands) },
                                         memoryLimit: config.memoryLimit, within: within, bufferLimit: backend.bufferLimit)
        var pm = PassManager.standard(afterEach: log ? { pass, f in Debug.log("IR after \(pass):\n\(Printer.print(f, elidingConstantsOver: Debug.constantElements))") } : nil)
        if log { Debug.log("IR after lowering:\n\(Printer.print(lowered.function, elidingConstantsOver: Debug.constantElements))") }
        passesStart = DispatchTime.now()
        try pm.run(&lowered.function)
        return lowered
    }

    /// The run lowered one row shorter (at `batch.n` - 1), started on another thread; nil for a
    /// batch of one. Lowering reads the graph's operations, which never change once made.
    func lowerShorter(batch: BatchFeeds, fetches: [Output], feeds: [(Output, TensorType)], targets: [KilnFrontend.Operation],
                      within: Set<KilnFrontend.Operation>?, name: String, backend: any Backend) -> ShorterLowering? {
        guard batch.n >= 2 else { return nil }
        let job = ShorterLowering()
        let shorterFeeds = batch.types(feeds, batch: batch.n - 1)
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            var ignored = DispatchTime.now()
            job.finish(Result { try lowerOptimized(fetches: fetches, feeds: shorterFeeds, targets: targets, within: within, name: name,
                                                   backend: backend, passesStart: &ignored) })
        }
        return job
    }

    /// The batch template of `f` (the run lowered at batch `batch.n`), from the same run lowered
    /// at n - 1 (`shorter`); nil when there is none (the run does not lower, or lowers to another
    /// function, one row shorter).
    func batchTemplate(_ f: Function, batch: BatchFeeds, shorter: Result<LoweredGraph, Error>) -> BatchTemplate? {
        let other: LoweredGraph
        switch shorter {
        case .success(let l): other = l
        case .failure(let error):
            if debugLevel >= 1 { Debug.log("  compiled for batch \(batch.n) alone: at batch \(batch.n - 1) the run fails to lower (\(error))") }
            return nil
        }
        switch BatchTemplate.derive(f, batch: batch.n, other: other.function, otherBatch: batch.n - 1) {
        case .success(let t): return t
        case .failure(let why):
            if debugLevel >= 1 { Debug.log("  compiled for batch \(batch.n) alone: \(why)") }
            return nil
        }
    }

    /// A cached executable compiled for a larger batch of the same run that computes this one
    /// (the run lowered at `batch.n` is exactly its template there), set to run at n.
    func templateRun(for key: StepKey, batch: BatchFeeds, fetches: [Output], feeds: [(Output, TensorType)],
                     targets: [KilnFrontend.Operation]) throws -> CompiledRun? {
        let candidates = cache.templates(open: key.openBatch(batch)).filter { ($0.batch?.n ?? 0) >= batch.n }
        guard !candidates.isEmpty else { return nil }
        let start = DispatchTime.now()
        var ignored = start
        let lowered: LoweredGraph
        do {
            lowered = try lowerOptimized(fetches: fetches, feeds: feeds, targets: targets, within: nil, name: "batch\(batch.n)",
                                         backend: try devices.backend(for: .cpu), passesStart: &ignored)
        } catch {
            // The run's own compile reports the error.
            return nil
        }
        var mismatches: [String] = []
        for run in candidates {
            guard let template = run.steps[0].executable.batchRows?.template else { continue }
            if let why = template.mismatch(lowered.function, batch: batch.n) {
                mismatches.append("\(run.steps[0].executable.function.name) (up to \(template.batch)): \(why)")
                continue
            }
            if debugLevel >= 1 {
                let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
                Debug.log("batch \(batch.n) runs on \(run.steps[0].executable.function.name), compiled for batches up to \(template.batch) (checked in \(String(format: "%.2f", ms)) ms): fetches [\(fetches.map(\.name).joined(separator: ", "))] targets [\(targets.map(\.name).joined(separator: ", "))]")
            }
            return run.at(batch: batch.n)
        }
        if debugLevel >= 1 { Debug.log("batch \(batch.n) is not the same function as the executables compiled for larger batches, compiling it: \(mismatches.joined(separator: "; "))") }
        return nil
    }
}

/// A lowering running on another thread: `wait` blocks until it has finished.
final class ShorterLowering: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<LoweredGraph, Error>?

    func finish(_ r: Result<LoweredGraph, Error>) {
        result = r
        done.signal()
    }

    /// The lowering's result (the same to every caller: each passes the signal on).
    func wait() -> Result<LoweredGraph, Error> {
        done.wait()
        defer { done.signal() }
        return result!
    }
}
