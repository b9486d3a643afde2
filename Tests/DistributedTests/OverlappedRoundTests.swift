import Foundation
import XCTest
import Kiln
import KilnDistributed

/// A step whose engine overlaps (no MPI: a stand-in engine in this process): the gradients'
/// compiled run is split into stages, each bucket is reduced on the round's thread as soon as its
/// stage has run, the last layer's first, and the step's results are those of the round at once;
/// a bucket that fails fails the step after every started bucket ended, and the session goes on.
final class OverlappedRoundTests: XCTestCase {
    /// Answers each tensor times `factor` (as CollectiveRoundTests' engine), one bucket per tensor
    /// when it overlaps; records the buckets and can fail one.
    final class StandInEngine: CollectiveEngine, @unchecked Sendable {
        let scaling: CollectiveRoundTests.ScalingEngine
        let overlaps: Bool
        private let lock = NSLock()
        private var log: [(names: [String], onMainThread: Bool)] = []
        private var running = 0
        /// The next reduction fails (after a pause, as a timed-out one would) when set.
        var failNext = false

        init(factor: Float, overlaps: Bool) {
            scaling = CollectiveRoundTests.ScalingEngine(factor: factor)
            self.overlaps = overlaps
        }

        var reductions: [(names: [String], onMainThread: Bool)] { lock.withLock { log } }
        var inFlight: Int { lock.withLock { running } }

        func allreduce(_ requests: [AllreduceRequest]) throws -> [Tensor] {
            let fail = lock.withLock { () -> Bool in
                running += 1
                log.append((requests.map(\.name), Thread.isMainThread))
                defer { failNext = false }
                return failNext
            }
            defer { lock.withLock { running -= 1 } }
            if fail {
                Thread.sleep(forTimeInterval: 0.2)
                throw KilnError(.deadlineExceeded, "stand-in: bucket of '\(requests[0].name)' timed out")
            }
            return try scaling.allreduce(requests)
        }

        func overlapBuckets(_ tensors: [AllreduceSpec]) -> [[Int]]? { overlaps ? tensors.indices.map { [$0] } : nil }
    }

    override func tearDown() { Collectives.install(nil) }

    /// Two layers trained by a DistributedOptimizer; the same seeds make the same graph each time.
    private func model() throws -> (Graph, x: Output, y: Output, loss: Output, train: KilnFrontend.Operation) {
        let g = Graph()
        g.seed = 7
        let x = try g.placeholder(.float32, shape: Shape(dims: [4, 5]), name: "x")
        let y = try g.placeholder(.int64, shape: Shape(dims: [4]), name: "y")
        let h = try g.fullyConnected(x, 6, activation: .relu, scope: "hidden")
        let logits = try g.fullyConnected(h, 3, activation: .identity, scope: "logits")
        let loss = try g.sparseSoftmaxCrossEntropyLoss(labels: y, logits: logits)
        let train = try DistributedOptimizer(MomentumOptimizer(g, learningRate: 0.2, momentum: 0.9)).minimize(loss, globalStep: try g.globalStep())
        return (g, x, y, loss, train)
    }

    private func batch(_ k: Int) throws -> (Tensor, Tensor) {
        (try Tensor(shape: [4, 5], scalars: (0..<20).map { Float(($0 * 7 + k * 3) % 11) / 5 - 1 }),
         try Tensor(shape: [4], scalars: (0..<4).map { Int64(($0 + k) % 3) }))
    }

    /// Trains `steps` steps with `engine`; every variable's values and the losses.
    private func train(_ engine: StandInEngine, steps: Int, config: SessionConfig = SessionConfig()) throws -> (variables: [String: [Float]], losses: [Float]) {
        Collectives.install(engine)
        let (g, x, y, loss, train) = try model()
        let s = try Session(graph: g, config: config)
        defer { s.close() }
        try s.run(g.globalVariablesInitializer())
        var losses: [Float] = []
        for k in 0..<steps {
            let (bx, by) = try batch(k)
            losses.append(try s.run([loss], feeds: [x: bx, y: by], targets: [train])[0].scalar(as: Float.self))
        }
        return (try floatVariables(g, s), losses)
    }

    private func floatVariables(_ g: Graph, _ s: Session) throws -> [String: [Float]] {
        var values: [String: [Float]] = [:]
        for v in g.globalVariables where v.dtype == .float32 { values[v.name] = try XCTUnwrap(s.value(of: v)).scalars(as: Float.self) }
        return values
    }

    func testOverlappedStepsGiveTheBitsOfTheRoundAtOnceReducingTheLastLayerFirst() throws {
        let atOnce = StandInEngine(factor: 0.5, overlaps: false)
        let expected = try train(atOnce, steps: 4)
        let overlapped = StandInEngine(factor: 0.5, overlaps: true)
        let got = try train(overlapped, steps: 4)
        XCTAssertEqual(got.losses, expected.losses)
        XCTAssertFalse(expected.variables.isEmpty)
        XCTAssertEqual(got.variables, expected.variables, "overlap changed the trained variables")
        // At once: one round per step on the session's thread. Overlapped: four buckets a step
        // (one tensor each), on the round's thread, the last layer's gradients first.
        XCTAssertEqual(atOnce.reductions.count, 4)
        XCTAssertEqual(overlapped.reductions.count, 16)
        XCTAssertFalse(overlapped.reductions.contains { $0.onMainThread }, "an overlapped bucket was reduced on the session's thread")
        let firstStep = overlapped.reductions.prefix(4).map { $0.names[0] }
        XCTAssertTrue(firstStep[0].contains("logits") && firstStep[1].contains("logits"), "\(firstStep)")
        XCTAssertTrue(firstStep[2].contains("hidden") && firstStep[3].contains("hidden"), "\(firstStep)")
        XCTAssertEqual(Set(firstStep).count, 4)
    }

    /// On /gpu:0 (an OpenCL device, PoCL's CPU device standing in for one) the stages are
    /// device segments too: the same bits as the round at once there.
    func testOverlappedStepsOnADeviceGiveTheBitsOfTheRoundAtOnce() throws {
        let config = SessionConfig(openCLAllowCPU: true)
        guard (try? Session.devices(config: config))?.contains(.gpu(0)) == true else {
            throw XCTSkip("no OpenCL device for /gpu:0 (install pocl-opencl-icd)")
        }
        let expected = try train(StandInEngine(factor: 0.5, overlaps: false), steps: 2, config: config)
        let overlapped = StandInEngine(factor: 0.5, overlaps: true)
        let got = try train(overlapped, steps: 2, config: config)
        XCTAssertEqual(overlapped.reductions.count, 8)
        XCTAssertEqual(got.losses, expected.losses)
        XCTAssertEqual(got.variables, expected.variables, "overlap changed the trained variables on the device")
    }

    /// A bucket that fails fails the step with its error once the started buckets ended (none
    /// left running), applies nothing, and the next step and close work.
    func testAFailedBucketFailsTheStepAndTheSessionGoesOn() throws {
        let engine = StandInEngine(factor: 1, overlaps: true)
        Collectives.install(engine)
        let (g, x, y, loss, train) = try model()
        let s = try Session(graph: g)
        try s.run(g.globalVariablesInitializer())
        let (bx, by) = try batch(0)
        _ = try s.run([loss], feeds: [x: bx, y: by], targets: [train])
        let before = try floatVariables(g, s)
        engine.failNext = true
        XCTAssertThrowsError(try s.run([loss], feeds: [x: bx, y: by], targets: [train])) { error in
            XCTAssertEqual((error as? KilnError)?.code, .deadlineExceeded, "\(error)")
            XCTAssertTrue("\(error)".contains("stand-in: bucket of"), "\(error)")
        }
        XCTAssertEqual(engine.inFlight, 0, "a reduction outlived the failed step")
        XCTAssertEqual(try floatVariables(g, s), before, "the failed step applied gradients")
        _ = try s.run([loss], feeds: [x: bx, y: by], targets: [train])
        XCTAssertNotEqual(try floatVariables(g, s), before, "the step after the failure applied nothing")
        s.close()
    }
}
