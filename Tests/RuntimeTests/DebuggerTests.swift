import Foundation
import XCTest
import Kiln
@testable import KilnRuntime

/// DebugSession: has_inf_or_nan finds the first non-finite tensor inside a fused kernel (counting
/// kernels, then recomputing only the offending group), names its node and the Swift line that
/// made it; custom filters see every tensor; nothing is written to disk.
final class DebuggerTests: XCTestCase {
    /// x -> scope/Log -> scope/mul (by 0: -inf * 0 = NaN) -> scope/add -> loss (a sum), all fused
    /// into the sum's kernel; `logLine` is the line that made the Log.
    struct NaNGraph {
        let graph: Graph
        let x: Output
        let loss: Output
        let logLine: Int
        let feed: Tensor
    }

    func nanGraph() throws -> NaNGraph {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([2, 3]), name: "x")
        var logLine = 0
        let loss = try g.nameScope("scope") { () -> Output in
            logLine = #line + 1
            let l = try g.log(x)
            let m = try g.multiply(l, try g.constant(Tensor(0 as Float), name: "zero"))
            return try g.add(m, try g.constant(Tensor(1 as Float), name: "one"))
        }
        let sum = try g.reduceSum(loss, name: "loss")
        return NaNGraph(graph: g, x: x, loss: sum, logLine: logLine,
                        feed: try Tensor(shape: [2, 3], scalars: [1, 2, 0, 4, 5, 6] as [Float]))
    }

    func testHasInfOrNaNReportsTheLogInsideTheFusedKernelFirstWithItsSourceLine() throws {
        for backend in [BackendKind.llvm, .c] {
            let t = try nanGraph()
            let session = try Session(graph: t.graph, config: SessionConfig(backend: backend))
            let debug = DebugSession(wrapping: session)
            let run = try debug.run([t.loss], feeds: [t.x: t.feed], until: "has_inf_or_nan")
            XCTAssertTrue(try run.results[0].scalars(as: Float.self)[0].isNaN, "\(backend)")
            XCTAssertEqual(run.matches.first?.name, "scope/Log:0", "\(backend): \(run.matches)")
            XCTAssertEqual(run.matches.map(\.name), ["scope/Log:0", "scope/mul:0", "scope/add:0", "loss:0"], "\(backend)")
            // The Log was fused: the step is one kernel, the origin found by recomputing its group.
            let plan = try XCTUnwrap(session.lastRunSummary)
            XCTAssertEqual(plan.kernels, 1, "\(backend): \(plan)")
            let log = try XCTUnwrap(run.matches.first?.value)
            XCTAssertEqual(try log.scalars(as: Float.self)[2], -.infinity)
            let info = try debug.nodeInfo("scope/Log")
            XCTAssertEqual(info.op, "Log")
            XCTAssertEqual(info.inputs, ["x:0"])
            XCTAssertEqual(info.consumers, ["scope/mul"])
            let location = try XCTUnwrap(info.sourceLocation, "no source location: \(info)")
            XCTAssertTrue(location.hasSuffix("DebuggerTests.swift:\(t.logLine)"), location)
        }
    }

    func testAStepWithoutNaNsMatchesNothingAndGivesTheSameResults() throws {
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph))
        let fine = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float])
        let run = try debug.run([t.loss], feeds: [t.x: fine], until: "has_inf_or_nan")
        XCTAssertEqual(run.matches.count, 0)
        XCTAssertEqual(run.results, try Session(graph: t.graph).run([t.loss], feeds: [t.x: fine]))
    }

    func testACustomFilterSeesEveryTensorInExecutionOrder() throws {
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph))
        debug.addTensorFilter("negative") { _, v in v.dtype == .float32 && (try? v.scalars(as: Float.self))!.contains { $0 < 0 } }
        let run = try debug.run([t.loss], feeds: [t.x: t.feed], until: "negative")
        XCTAssertEqual(run.matches.map(\.name), ["scope/Log:0"])
        // Every tensor was kept: any of them prints.
        XCTAssertTrue(try debug.printTensor("scope/mul:0").contains("nan"))
        let order = debug.lastRunTensors.map(\.name)
        XCTAssertLessThan(order.firstIndex(of: "scope/Log:0")!, order.firstIndex(of: "scope/mul:0")!)
    }

    func testPrintTensorSlicesAsNumpyDoes() throws {
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph))
        _ = try debug.run([t.loss], feeds: [t.x: t.feed], until: "has_inf_or_nan")
        let text = try debug.printTensor("scope/Log:0", slice: "[0:2, 2]")
        XCTAssertTrue(text.hasSuffix("array([-inf, 1.7917595])"), text)
        XCTAssertTrue(try debug.printTensor("scope/Log:0", slice: "[1, ::-1]").hasSuffix("array([1.7917595, 1.609438, 1.3862944])"))
        XCTAssertThrowsError(try debug.printTensor("scope/Log:0", slice: "[0, 0, 0]"))
        XCTAssertThrowsError(try debug.printTensor("scope/Log:0", slice: "[5]"))
        XCTAssertThrowsError(try debug.printTensor("nothing:0"))
    }

    func testListInputsWalksTheGraphToTheGivenDepth() throws {
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph))
        let one = try debug.listInputs("scope/add")
        XCTAssertEqual(one.split(separator: "\n").count, 3, one)
        XCTAssertTrue(one.contains("|- (1) scope/mul:0 (Mul)"), one)
        let two = try debug.listInputs("scope/add", depth: 2)
        XCTAssertTrue(two.contains("|  |- (2) scope/Log:0 (Log)"), two)
        XCTAssertThrowsError(try debug.listInputs("nope"))
    }

    func testTheDebugRunWritesNothingToDisk() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-debugger-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let saved = FileManager.default.currentDirectoryPath
        FileManager.default.changeCurrentDirectoryPath(dir.path)
        defer { FileManager.default.changeCurrentDirectoryPath(saved) }
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph, config: SessionConfig(backend: .llvm)))
        XCTAssertEqual(try debug.run([t.loss], feeds: [t.x: t.feed], until: "has_inf_or_nan").matches.count, 4)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [])
    }

    func testTheScriptedPromptFindsTheLog() throws {
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph))
        var commands = ["run -f has_inf_or_nan", "lt", "ni scope/Log", "li scope/mul -d 2", "pt scope/Log:0[0, :]", "bogus", "exit", "never read"]
        var out = ""
        debug.interactive(fetches: [t.loss], feeds: [t.x: t.feed], input: { commands.isEmpty ? nil : commands.removeFirst() },
                          output: { out += $0 })
        XCTAssertEqual(commands, ["never read"])
        XCTAssertTrue(out.contains("4 tensor(s) matched has_inf_or_nan"), out)
        XCTAssertTrue(out.contains("\nscope/Log:0  Log  float32[2,3]  #0"), out)
        XCTAssertTrue(out.contains("DebuggerTests.swift:\(t.logLine)"), out)
        XCTAssertTrue(out.contains("array([0., 0.6931472, -inf])"), out)
        XCTAssertTrue(out.contains("unknown command 'bogus'"), out)
    }

    func testOnTheOpenCLDeviceHasInfOrNaNTakesTheUnfusedPathAndStillFindsTheLog() throws {
        let config = try TestGPU.required("the debugger on an OpenCL device")
        let t = try nanGraph()
        let debug = DebugSession(wrapping: try Session(graph: t.graph, config: config))
        let run = try debug.run([t.loss], feeds: [t.x: t.feed], until: "has_inf_or_nan")
        XCTAssertEqual(run.matches.first?.name, "scope/Log:0", "\(run.matches)")
        XCTAssertEqual(debug.session.lastRunSummary?.backend, "opencl")
    }

    func testAVariableSpoiledByAnEarlierStepIsReportedFirst() throws {
        let g = Graph()
        let w = try g.variable(try Tensor(shape: [2], scalars: [1, 2] as [Float]), name: "w")
        let x = try g.placeholder(.float32, shape: Shape([2]), name: "x")
        let loss = try g.reduceSum(try g.multiply(w, x), name: "loss")
        let session = try Session(graph: g)
        try session.run(try g.globalVariablesInitializer())
        try session.setValue(try Tensor(shape: [2], scalars: [1, .nan] as [Float]), of: w)
        let debug = DebugSession(wrapping: session)
        let run = try debug.run([loss], feeds: [x: try Tensor(shape: [2], scalars: [1, 1] as [Float])], until: "has_inf_or_nan")
        XCTAssertEqual(run.matches.first?.name, "w:0", "\(run.matches)")
        XCTAssertEqual(run.matches.last?.name, "loss:0", "\(run.matches)")
    }
}
