import XCTest
import Kiln
import KilnTestSupport

/// CheckNumerics passes finite tensors through and fails the run with TensorFlow's message
/// ("<message> : Tensor had NaN values", "Inf", "Inf and NaN") naming the node, inside fused
/// kernels, on each native backend, when constant-folded, as a target (addCheckNumericsOps) and
/// through its gradient.
final class CheckNumericsTests: XCTestCase {
    let backends: [BackendKind] = [.llvm, .c]

    /// Runs `fetch` (a function of x) fed `values`, expecting invalidArgument with `message`.
    func assertFails(_ values: [Float], _ message: String, node: String, file: StaticString = #filePath, line: UInt = #line,
                     build: (Graph, Output) throws -> Output) throws {
        for backend in backends {
            let g = Graph()
            let x = try g.placeholder(.float32, shape: Shape([values.count]), name: "x")
            let fetch = try build(g, x)
            let s = try Session(graph: g, config: SessionConfig(backend: backend))
            XCTAssertThrowsError(try s.run([fetch], feeds: [x: try Tensor(shape: [values.count], scalars: values)]), "\(backend)",
                                 file: file, line: line) { error in
                let e = error as? KilnError
                XCTAssertEqual(e?.code, .invalidArgument, "\(error)", file: file, line: line)
                XCTAssertTrue(e?.message.contains(message) == true, "\(backend): \(error)", file: file, line: line)
                XCTAssertTrue(e?.message.contains("'\(node)'") == true, "\(backend): \(error)", file: file, line: line)
            }
        }
    }

    func testNaNInfAndBothAreNamedAsTensorFlowDoes() throws {
        // The check sits between two fused elementwise ops: it is evaluated inside the kernel.
        let chain = { (g: Graph, x: Output) throws -> Output in
            try g.reduceSum(try g.multiply(try g.checkNumerics(try g.log(x), message: "after log", name: "check"), try g.constant(Tensor(2 as Float))))
        }
        try assertFails([1, 0, 2], "after log : Tensor had Inf values", node: "check", build: chain)
        try assertFails([1, -1, 2], "after log : Tensor had NaN values", node: "check", build: chain)
        try assertFails([0, -1, 2], "after log : Tensor had Inf and NaN values", node: "check", build: chain)
    }

    func testFiniteValuesPassThrough() throws {
        for backend in backends {
            let g = Graph()
            let x = try g.placeholder(.float32, shape: Shape([3]), name: "x")
            let y = try g.checkNumerics(try g.multiply(x, x), message: "m")
            let out = try Session(graph: g, config: SessionConfig(backend: backend)).run([y], feeds: [x: try Tensor(shape: [3], scalars: [1, -2, 3] as [Float])])
            XCTAssertEqual(try out[0].scalars(as: Float.self), [1, 4, 9])
        }
    }

    func testAConstantNaNFailsWhenFoldedToo() throws {
        let g = Graph()
        let y = try g.checkNumerics(try g.log(try g.constant(try Tensor(shape: [2], scalars: [1, -1] as [Float]))), message: "folded")
        XCTAssertThrowsError(try Session(graph: g).run([y])) { error in
            XCTAssertTrue("\(error)".contains("folded : Tensor had NaN values"), "\(error)")
        }
    }

    func testAddCheckNumericsOpsChecksEveryFloatOutputWhenRunAsATarget() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([2]), name: "x")
        let y = try g.log(x, name: "y")
        _ = try g.add(y, y, name: "z")
        let checks = try g.addCheckNumericsOps()
        let s = try Session(graph: g)
        try s.run(checks, feeds: [x: try Tensor(shape: [2], scalars: [1, 2] as [Float])])
        XCTAssertThrowsError(try s.run(checks, feeds: [x: try Tensor(shape: [2], scalars: [1, 0] as [Float])])) { error in
            XCTAssertTrue("\(error)".contains("y:0 : Tensor had Inf values"), "\(error)")
        }
        // A check of an integer tensor is refused when the node is made.
        XCTAssertThrowsError(try g.checkNumerics(try g.constant(Tensor(Int32(1))), message: "int"))
    }

    func testTheGradientIsCheckedToo() throws {
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([2]), name: "x")
        let checked = try g.checkNumerics(x, message: "x")
        // d/dx sqrt(x) at 0 is infinite: the incoming gradient of the check holds it.
        let loss = try g.reduceSum(try g.sqrt(checked))
        let grad = try XCTUnwrap(try g.gradients([loss], [x])[0])
        XCTAssertThrowsError(try Session(graph: g).run([grad], feeds: [x: try Tensor(shape: [2], scalars: [1, 0] as [Float])])) { error in
            XCTAssertTrue("\(error)".contains("Not a number (NaN) or infinity (Inf) values detected in gradient. x : Tensor had Inf values"), "\(error)")
        }
    }

    func testOnTheOpenCLDeviceTheCheckFailsTheRunToo() throws {
        let config = try TestGPU.required("CheckNumerics in an OpenCL kernel")
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([3]), name: "x")
        let y = try g.reduceSum(try g.multiply(try g.checkNumerics(try g.log(x), message: "on device", name: "check"), x))
        let s = try Session(graph: g, config: config)
        XCTAssertEqual(try s.run([y], feeds: [x: try Tensor(shape: [3], scalars: [1, 1, 1] as [Float])])[0].scalar(as: Float.self), 0)
        XCTAssertEqual(s.lastRunSummary?.backend, "opencl")
        XCTAssertThrowsError(try s.run([y], feeds: [x: try Tensor(shape: [3], scalars: [1, -1, 1] as [Float])])) { error in
            XCTAssertTrue("\(error)".contains("on device : Tensor had NaN values"), "\(error)")
            XCTAssertTrue("\(error)".contains("'check'"), "\(error)")
        }
    }
}
