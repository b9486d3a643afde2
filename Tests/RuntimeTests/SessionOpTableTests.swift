import XCTest
import KilnTestSupport
import KilnFrontend
@testable import KilnRuntime

/// The ops whose registry entries say the session answers them, against the session's handler
/// table, both ways; and the op names the Runtime's code still uses, against the registry.
final class SessionOpTableTests: XCTestCase {
    /// What disagrees between the ops marked answered by the session and those it has handlers for.
    static func mismatches(marked: Set<String>, handled: Set<String>) -> [String] {
        marked.subtracting(handled).sorted().map { "\($0) is marked answered by the session, which has no handler for it" }
            + handled.subtracting(marked).sorted().map { "the session has a handler for \($0), which no registered entry marks as answered by the session" }
    }

    /// Collectives are answered together by the session's collective round, not by per-op handlers.
    static var marked: Set<String> {
        Set(OpRegistry.registeredTypes.filter { OpRegistry.def($0)?.sessionService.map { $0 != .collective } ?? false })
    }

    func testEveryOpMarkedAnsweredBySessionHasAHandlerAndNoOther() {
        let handled = Set(Session.sessionHandlers.keys)
        XCTAssertGreaterThan(Self.marked.count, 20)
        XCTAssertEqual(Self.mismatches(marked: Self.marked, handled: handled), [])
        // The check fails both ways.
        XCTAssertEqual(Self.mismatches(marked: Self.marked, handled: handled.subtracting(["QueueSizeV2"])).count, 1)
        XCTAssertEqual(Self.mismatches(marked: Self.marked, handled: handled.union(["QueueSizeV3"])).count, 1)
    }

    func testEachHandlerTableServesItsService() {
        let tables: [(SessionService, [String])] = [
            (.queue, Array(Session.queueHandlers.keys)), (.reader, Array(Session.readerHandlers.keys)),
            (.summary, Array(SummaryKernels.kernels.keys)),
        ]
        for (service, names) in tables {
            for name in names { XCTAssertEqual(OpRegistry.def(name)?.sessionService, service, name) }
        }
        let collectives = OpRegistry.registeredTypes.filter { OpRegistry.def($0)?.sessionService == .collective }
        XCTAssertEqual(collectives, ["HorovodAllreduce"])
        XCTAssertTrue(Set(collectives).isDisjoint(with: Session.sessionHandlers.keys))
        for name in Session.variableStoreHandlers.keys {
            XCTAssertTrue([.variableStore, .checkpoint].contains(OpRegistry.def(name)?.sessionService), name)
        }
    }

    func testEveryOpTheRuntimeNamesInCodeIsRegistered() throws {
        let sites = try OpNameSites.scan(folder: OpNameSites.sourceFolder("Runtime"))
        XCTAssertTrue(sites.contains { $0.name == "RandomShuffle" }, "the scan sees the session's switch")
        XCTAssertEqual(sites.filter { OpRegistry.def($0.name) == nil }.map(\.description), [])
        XCTAssertEqual(Session.sometimesAnsweredOps.filter { OpRegistry.def($0)?.sessionService == nil }, [])
    }

}
