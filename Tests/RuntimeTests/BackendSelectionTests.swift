import XCTest
import Kiln
import KilnTestSupport

/// Which backend a session compiles with: SessionConfig.backend, else KILN_BACKEND, else LLVM.
final class BackendSelectionTests: XCTestCase {
    func testNamesAndTheEnvironment() throws {
        XCTAssertEqual(try BackendKind(named: "llvm"), .llvm)
        XCTAssertEqual(try BackendKind(named: "c"), .c)
        XCTAssertEqual(try BackendKind.fromEnvironment([:]), .llvm)
        XCTAssertEqual(try BackendKind.fromEnvironment(["KILN_BACKEND": ""]), .llvm)
        XCTAssertEqual(try BackendKind.fromEnvironment(["KILN_BACKEND": "c"]), .c)
        assertKilnError(.invalidArgument, contains: ["unknown backend 'opencl'", "'llvm' and 'c'", "KILN_BACKEND"]) {
            try BackendKind.fromEnvironment(["KILN_BACKEND": "opencl"])
        }
    }

    /// The same training steps on both backends: same results, each compiled by its own backend.
    func testASessionTrainsTheSameOnBothBackends() throws {
        func train(_ backend: BackendKind) throws -> ([Tensor], String?) {
            let g = Graph()
            let x = try g.placeholder(.float32, shape: [4, 3], name: "x")
            let w = try g.variable(try Tensor(shape: [3, 2], scalars: [0.1, -0.2, 0.3, 0.4, -0.5, 0.6] as [Float]), name: "w")
            let y = try g.relu(try g.matmul(x, w.value))
            let loss = try g.reduceSum(try g.multiply(y, y))
            let step = try g.assignSub(w, try g.multiply(try g.constant(Float(0.01)), try g.gradients(loss, [w])[0]!))
            let s = try Session(graph: g, config: SessionConfig(backend: backend))
            try s.run(g.globalVariablesInitializer())
            let feed = try Tensor(shape: [4, 3], scalars: (0..<12).map { Float($0) * 0.25 - 1 })
            var out: [Tensor] = []
            for _ in 0..<3 { out += try s.run([loss, step], feeds: [x: feed]) }
            return (out, s.lastRunSummary?.backend)
        }
        let (c, cName) = try train(.c)
        let (llvm, llvmName) = try train(.llvm)
        XCTAssertEqual(cName, "c")
        XCTAssertEqual(llvmName, "llvm")
        for (a, b) in zip(c, llvm) {
            XCTAssertEqual(a.shape, b.shape)
            for (u, v) in zip(a.doubles, b.doubles) { XCTAssertEqual(u, v, accuracy: 1e-5 * max(1, abs(v))) }
        }
    }
}
