import XCTest
import KilnIR
import KilnPasses
@testable import KilnKernels

/// How a natively compiled executable's kernels are shared out among modules compiled in
/// parallel: the costly kernels (random draws) apart, the shards' estimated loads within one
/// kernel of each other, every kernel on exactly one shard, the same answer every time.
final class KernelShardsTests: XCTestCase {
    /// An initialiser's shape: two truncated-normal draws (the costly kernels, 0 and 2 by index),
    /// constant fills and small sums between them, one product.
    func writer() throws -> KernelWriter {
        var f = try Parser.parse("""
        func @init(%0: i64[] feed "counter", %1: f32[64,32] feed "a", %2: f32[32,16] feed "b") {
          %3 = random.truncated_normal %0 dtype=f32 shape=[784,200] seed=1
          %4 = constant f32[] 0.0
          %5 = broadcast %4 shape=[200] dims=[]
          %6 = random.truncated_normal %0 dtype=f32 shape=[200,10] seed=2
          %7 = broadcast %4 shape=[10] dims=[]
          %8 = dot %1, %2 transpose_a=false transpose_b=false
          %9 = reduce.sum %8 axes=[1]
          %10 = exp %1
          return %3, %5, %6, %7, %9, %10
        }
        """)
        try PassManager.standard().run(&f)
        let plan = KernelPlan(f, target: .standard)
        return KernelWriter(renderer: CStyleRenderer(.c99), function: f, plan: plan, target: .standard)
    }

    func testTheRandomDrawsGoToDifferentShardsAndTheLoadsStayWithinOneKernel() throws {
        let w = try writer()
        let parts = w.nativeParts(entryName: "init")
        let owners = w.shardOwners(parts, ShardLayout(hot: 2, cold: false))
        XCTAssertEqual(owners.count, w.plan.kernels.count)
        XCTAssert(owners.allSatisfy { (0..<2).contains($0) }, "\(owners)")
        let draws = w.plan.kernels.indices.filter { n in
            guard let v = w.plan.kernels[n].value else { return false }
            return ([v] + (w.plan.fused[v] ?? [])).contains { if case .random? = w.inst[$0]?.op { return true } else { return false } }
        }
        XCTAssertEqual(draws.count, 2, "\(w.plan.kernels)")
        XCTAssertNotEqual(owners[draws[0]], owners[draws[1]], "both random draws on one shard: \(owners)")
        let costs = w.plan.kernels.indices.map { w.codeCost(w.plan.kernels[$0], parts[$0]) }
        XCTAssertGreaterThan(costs[draws[0]], costs.enumerated().filter { !draws.contains($0.offset) }.map(\.element).max()!)
        var load = [0, 0]
        for (n, s) in owners.enumerated() { load[s] += costs[n] }
        XCTAssertLessThanOrEqual(abs(load[0] - load[1]), costs.max()!, "loads \(load), costs \(costs), owners \(owners)")
    }

    func testTheAssignmentDependsOnThePlanAlone() throws {
        let a = try writer(), b = try writer()
        let pa = a.nativeParts(entryName: "init"), pb = b.nativeParts(entryName: "init")
        for hot in 1...4 {
            for cold in [false, true] { XCTAssertEqual(a.shardOwners(pa, ShardLayout(hot: hot, cold: cold)), b.shardOwners(pb, ShardLayout(hot: hot, cold: cold))) }
        }
        XCTAssertEqual(a.shardOwners(pa, .single), Array(repeating: 0, count: a.plan.kernels.count))
        // More shards than kernels: each kernel its own shard at most, none left out.
        let many = a.shardOwners(pa, ShardLayout(hot: a.plan.kernels.count + 3, cold: false))
        XCTAssertEqual(Set(many).count, many.count)
    }

    /// The fills, the small sum and the product are cold (the product's work is the runtime's);
    /// the random draws and the exponential of 2,048 elements are not. With a cold module the
    /// cold kernels are all its own, the hot ones shared among the others, the two draws apart.
    func testColdKernelsGoToTheLastShardAndTheDrawsStayApart() throws {
        let w = try writer()
        let cold = w.plan.coldKernels(w.f)
        for (n, k) in w.plan.kernels.enumerated() {
            let ids = k.value.map { [$0] + (w.plan.fused[$0] ?? []) } ?? []
            let random = ids.contains { if case .random? = w.inst[$0]?.op { return true } else { return false } }
            let exp = ids.contains { if case .unary(.exp)? = w.inst[$0]?.op { return true } else { return false } }
            XCTAssertEqual(cold[n], !random && !exp, "kernel \(n): \(k)")
        }
        let layout = ShardLayout(hot: 2, cold: true)
        XCTAssertEqual(layout.count, 3)
        XCTAssert(layout.isCold(2) && !layout.isCold(0) && !layout.isCold(1))
        let owners = w.shardOwners(w.nativeParts(entryName: "init"), layout)
        for n in owners.indices { XCTAssertEqual(owners[n] == 2, cold[n], "kernel \(n) on shard \(owners[n]): \(owners)") }
        let draws = w.plan.kernels.indices.filter { !cold[$0] && owners[$0] != 2 && w.codeCost(w.plan.kernels[$0], w.nativeParts(entryName: "init")[$0]) >= 20 }
        XCTAssertEqual(draws.count, 2)
        XCTAssertNotEqual(owners[draws[0]], owners[draws[1]], "\(owners)")
    }
}
