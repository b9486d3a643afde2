import Foundation
import XCTest
import Kiln
import KilnTestSupport

/// Runs of one session from several threads (a training loop beside its queue runners): compiled
/// code runs with the session's lock let go, yet runs that use variables stay one at a time, so
/// no update is lost and no read sees half a write; closing the session meanwhile ends the other
/// threads' runs with `cancelled`.
final class ConcurrentSessionRunsTests: XCTestCase {
    /// A counter bumped by `bump`, and `square` (x times x, no variable) of a fed matrix.
    private struct Model {
        let g = Graph()
        let counter: Variable
        let bump: Output
        let x: Output
        let square: Output
        let input: Tensor

        init() throws {
            counter = try g.variable(Tensor(Float(0)), name: "counter")
            bump = try g.assignAdd(counter, g.constant(Float(1)), name: "bump")
            x = try g.placeholder(.float32, shape: Shape([48, 48]), name: "x")
            square = try g.matmul(x, x, name: "square")
            input = try Tensor(shape: [48, 48], scalars: (0..<(48 * 48)).map { Float($0 % 7) - 3 })
        }
    }

    func testVariableUpdatesFromSeveralThreadsAreNeverLostAndReadsSeeWholeValues() throws {
        let m = try Model()
        let sess = try Session(graph: m.g)
        try sess.run(m.g.globalVariablesInitializer())
        let expected = try sess.run(m.square, feeds: [m.x: m.input])
        let runs = 150
        let failures = LockedList<String>()
        DispatchQueue.concurrentPerform(iterations: 4) { worker in
            do {
                switch worker {
                case 0, 1:
                    for _ in 0..<runs { _ = try sess.run(m.bump) }
                case 2:
                    for _ in 0..<runs where try sess.run(m.square, feeds: [m.x: m.input]) != expected {
                        failures.add("a run of square computed another matrix")
                    }
                default:
                    var last: Float = 0
                    for _ in 0..<runs {
                        let seen = try XCTUnwrap(sess.value(of: m.counter)).scalar(as: Float.self)
                        if seen < last || seen != seen.rounded() || seen > Float(2 * runs) { failures.add("read \(seen) after \(last)") }
                        last = seen
                    }
                }
            } catch { failures.add("worker \(worker): \(error)") }
        }
        XCTAssertEqual(failures.all(), [])
        XCTAssertEqual(try sess.run(m.counter.value).scalar(as: Float.self), Float(2 * runs))
    }

    func testClosingTheSessionWhileOtherThreadsRunEndsTheirRunsWithCancelled() throws {
        let m = try Model()
        let sess = try Session(graph: m.g)
        try sess.run(m.g.globalVariablesInitializer())
        let started = DispatchGroup()
        let ended = DispatchGroup()
        let failures = LockedList<String>()
        for worker in 0..<3 {
            started.enter()
            ended.enter()
            Thread.detachNewThread {
                var runs = 0
                do {
                    while true {
                        if worker == 2 { _ = try sess.run(m.square, feeds: [m.x: m.input]) } else { _ = try sess.run(m.bump) }
                        runs += 1
                        if runs == 20 { started.leave() }
                    }
                } catch let error as KilnError where error.code == .cancelled {
                    if runs < 20 { started.leave() }
                } catch {
                    failures.add("worker \(worker): \(error)")
                    if runs < 20 { started.leave() }
                }
                ended.leave()
            }
        }
        XCTAssertEqual(started.wait(timeout: .now() + 60), .success)
        sess.close()
        XCTAssertEqual(ended.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(failures.all(), [])
    }
}
