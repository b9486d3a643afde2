import Foundation
import XCTest
import Kiln

/// The `queue_runners` collection in a MetaGraphDef: serialized QueueRunnerDefs, as TensorFlow
/// writes them, so that after importing a `.meta` the runners start again.
final class QueueRunnerMetaGraphTests: XCTestCase {
    func testQueueRunnerDefBytesAreTensorFlows() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 2, dtypes: [.float32], shapes: [Shape([])], name: "q")
        let runner = try QueueRunner(queue: q, enqueueOps: [try q.enqueue([g.constant(1 as Float)]), try q.enqueue([g.constant(2 as Float)])])
        // TensorFlow 2.21: QueueRunnerDef(queue_name='q', enqueue_op_name=['q_enqueue', 'q_enqueue_1'],
        // close_op_name='q_Close', cancel_op_name='q_Close_1', queue_closed_exception_types=[OUT_OF_RANGE]).SerializeToString()
        let expected = Array("\n\u{01}q\u{12}\tq_enqueue\u{12}\u{0b}q_enqueue_1\u{1a}\u{07}q_Close\"\tq_Close_1*\u{01}\u{0b}".utf8)
        XCTAssertEqual([UInt8](try runner.queueRunnerDef.serializedData()), expected)
    }

    func testQueueRunnersRoundTripThroughAMetaGraphAndRunToOutOfRangeAfterImport() throws {
        // A source queue filled and closed by hand; a runner moves its elements into `target`.
        let g = Graph()
        let source = try FIFOQueue(g, capacity: 10, dtypes: [.int32], shapes: [Shape([])], name: "source")
        _ = try source.enqueueMany([g.constant(Tensor(shape: [5], scalars: [1, 2, 3, 4, 5] as [Int32]))], name: "fill")
        _ = try source.close(name: "close_source")
        let target = try RandomShuffleQueue(g, capacity: 3, minAfterDequeue: 1, dtypes: [.int32], shapes: [Shape([])], seed: 4, name: "target")
        g.addQueueRunner(try QueueRunner(queue: target, enqueueOps: [try target.enqueue([source.dequeue()[0]])],
                                         queueClosedErrors: [.outOfRange, .cancelled]))
        _ = try target.dequeue(name: "take")
        let meta = try g.serializedMetaGraph()

        let decoded = try Tensorflow_MetaGraphDef(serializedBytes: meta)
        guard case .bytesList(let list)? = decoded.collectionDef[GraphKeys.queueRunners]?.kind else {
            return XCTFail("no bytes_list queue_runners collection: \(decoded.collectionDef.keys.sorted())")
        }
        let def = try Tensorflow_QueueRunnerDef(serializedBytes: try XCTUnwrap(list.value.first))
        XCTAssertEqual(list.value.count, 1)
        XCTAssertEqual(def.queueName, "target")
        XCTAssertEqual(def.enqueueOpName, ["target_enqueue"])
        XCTAssertEqual([def.closeOpName, def.cancelOpName], ["target_Close", "target_Close_1"])
        XCTAssertEqual(def.queueClosedExceptionTypes, [.outOfRange, .cancelled])

        // Imported under a scope, the runner names the scoped ops and starts again.
        let h = Graph()
        let imported = try h.importMetaGraph(Tensorflow_MetaGraphDef(serializedBytes: meta), importScope: "copy")
        let runners = h.queueRunners()
        XCTAssertEqual(runners.count, 1)
        XCTAssertEqual(imported.collections[GraphKeys.queueRunners]?.count, 1)
        let runner = try XCTUnwrap(runners.first)
        XCTAssertEqual(runner.queue.name, "copy/target")
        XCTAssertEqual(runner.queue.dtypes, [.int32])
        XCTAssertEqual(runner.enqueueOps.map(\.name), ["copy/target_enqueue"])
        XCTAssertEqual([runner.closeOp.name, runner.cancelOp.name], ["copy/target_Close", "copy/target_Close_1"])
        XCTAssertEqual(runner.queueClosedErrors, [.outOfRange, .cancelled])

        let sess = try Session(graph: h)
        try sess.run(targets: [XCTUnwrap(h.operation(named: "copy/fill")), XCTUnwrap(h.operation(named: "copy/close_source"))])
        let coordinator = Coordinator()
        let threads = startQueueRunners(session: sess, coordinator: coordinator)
        let take = try h.tensor(named: "copy/take:0")
        var got: [Int32] = []
        do {
            while got.count < 6 { got.append(try sess.run(take).scalar(as: Int32.self)) }
            XCTFail("the consumer should have got outOfRange once the runner closed the queue")
        } catch let e as KilnError where e.code == .outOfRange {}
        XCTAssertEqual(got.sorted(), [1, 2, 3, 4, 5])
        coordinator.requestStop()
        try coordinator.join(threads, stopGracePeriod: 30)
        sess.close()
    }

    func testBadQueueRunnerDefsAreClearErrorsOnImport() throws {
        let g = Graph()
        let q = try FIFOQueue(g, capacity: 2, dtypes: [.float32], shapes: [Shape([])], name: "q")
        g.addQueueRunner(try QueueRunner(queue: q, enqueueOps: [try q.enqueue([g.constant(1 as Float)])]))
        let good = try g.exportMetaGraph()

        func importing(_ change: (inout Tensorflow_QueueRunnerDef) -> Void) -> KilnError? {
            var meta = good
            guard case .bytesList(var list)? = meta.collectionDef[GraphKeys.queueRunners]?.kind,
                  var def = try? Tensorflow_QueueRunnerDef(serializedBytes: list.value[0]) else { return nil }
            change(&def)
            list.value[0] = (try? def.serializedData()) ?? Data()
            meta.collectionDef[GraphKeys.queueRunners]?.bytesList = list
            do { try Graph().importMetaGraph(meta) } catch { return error as? KilnError }
            return nil
        }
        XCTAssertEqual(importing { $0.enqueueOpName = ["nowhere"] }?.code, .notFound)
        XCTAssertEqual(importing { $0.queueName = "q_enqueue" }?.code, .invalidArgument)
        XCTAssertEqual(importing { $0.closeOpName = "" }?.code, .invalidArgument)
        XCTAssertEqual(importing { $0.queueClosedExceptionTypes = [.ok] }?.code, .invalidArgument)

        var garbage = good
        garbage.collectionDef[GraphKeys.queueRunners]?.bytesList.value = [Data([0xff, 0xff, 0xff])]
        XCTAssertThrowsError(try Graph().importMetaGraph(garbage)) { XCTAssertEqual(($0 as? KilnError)?.code, .dataLoss, "\($0)") }
    }
}
