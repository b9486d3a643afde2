import XCTest
import KilnIR
import KilnPasses
import KilnTestSupport

/// Functions as long as fuzzed graphs make them: every pass and the plan walk them without
/// recursion (run on a secondary thread's small stack) and bound the depth codegen recurses to.
final class DeepFunctionTests: XCTestCase {
    /// x, then n alternating mul/add by constants: one single-use chain.
    static func chain(_ n: Int) throws -> Function {
        var b = FunctionBuilder(name: "chain")
        var x = b.addParam("x", kind: .feed, type: TensorType(.float32, [4]))
        let scale = b.constant(try Tensor(shape: [4], scalars: [1.0001, 1.0001, 1.0001, 1.0001] as [Float]))
        let shift = b.constant(try Tensor(shape: [4], scalars: [0.5, 0.5, 0.5, 0.5] as [Float]))
        for k in 0..<n { x = try b.emit(.binary(k % 2 == 0 ? .mul : .add), [x, k % 2 == 0 ? scale : shift]) }
        b.setResults([x])
        return b.function
    }

    /// For each value, the ops on the longest path from it through values computed inline in
    /// the same kernel.
    static func fusedDepths(_ f: Function, _ plan: KernelPlan) -> [Int: Int] {
        var depth: [Int: Int] = [:]
        for i in f.body {
            if case .constant = i.op { continue }   // an immediate, not an op evaluated per element
            let inline = i.operands.filter { plan.storage[$0] == .inline }
            depth[i.id] = 1 + (inline.map { depth[$0] ?? 0 }.max() ?? 0)
        }
        return depth
    }

    func testPipelineAndPlanHandleA20000OpChainOnASmallStack() throws {
        let n = 20000
        let (f, plan) = try onThread { () throws -> (Function, KernelPlan) in
            var f = try Self.chain(n)
            try PassManager.standard().run(&f)
            return (f, KernelPlan(f))
        }
        XCTAssertEqual(f.body.count, n + 2)
        // The chain is cut into kernels of at most fusedDepthLimit + 1 ops, each with the reason.
        let limit = KernelPlan.fusedDepthLimit
        XCTAssertEqual(plan.kernels.count, (n + limit) / (limit + 1))
        let depths = Self.fusedDepths(f, plan)
        for k in plan.kernels {
            guard case .loop(let v) = k else { return XCTFail("\(k)") }
            XCTAssertLessThanOrEqual(depths[v] ?? 0, limit + 1, "kernel %\(v)")
            if v != f.results[0] { XCTAssertEqual(plan.reasons[v], .fusedTooDeep) }
        }
        XCTAssertEqual(plan.reasons[f.results[0]], .fetchedResult)
    }

    func testChainWithinTheDepthLimitStaysOneKernel() throws {
        var f = try Self.chain(KernelPlan.fusedDepthLimit)
        try PassManager.standard().run(&f)
        let plan = KernelPlan(f)
        XCTAssertEqual(plan.kernels, f.results.map { .loop($0) })
    }

    func testPrinterParserAndVerifierRoundTripA20000InstructionFunction() throws {
        let f = try Self.chain(20000)
        let again = try onThread { () throws -> Function in
            try Verifier.verify(f)
            return try Parser.parse(Printer.print(f))
        }
        XCTAssertEqual(again, f)
    }

    func testCSEForgetsReadsAtEachOfManyWrites() throws {
        // 5,000 writes, each followed by two reads: the two reads after one write merge, reads
        // across a write never do.
        var b = FunctionBuilder(name: "writes")
        let v = b.addParam("v", kind: .variable, type: TensorType(.float32, []))
        var results: [Int] = []
        for _ in 0..<5000 {
            let r1 = try b.emit(.varRead, [v]), r2 = try b.emit(.varRead, [v])
            let s = try b.emit(.binary(.add), [r1, r2])
            try b.emit(.varWrite, [v, s])
            results.append(s)
        }
        b.setResults([results.last!])
        var f = b.function
        try CommonSubexpressionEliminationPass().run(&f)
        XCTAssertEqual(f.body.filter { $0.op == .varRead }.count, 5000)
        XCTAssertEqual(f.body.filter { $0.op == .varWrite }.count, 5000)
    }
}
