import XCTest
import KilnIR
import KilnPasses
@testable import KilnKernels

/// How a natively compiled executable's kernels are shared out among modules compiled in
/// parallel: the costly kernels (random draws) apart, the shards' estimated loads within one
/// kernel of each other, every function on exactly one shard, a kernel's on one hot shard but
/// for the cold sum of a split sum's parts, the same answer every time.
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
        let byFunction = w.shardOwners(parts, ShardLayout(hot: 2, cold: false))
        XCTAssertEqual(byFunction.map(\.count), parts.map(\.count))
        XCTAssert(byFunction.allSatisfy { Set($0).count == 1 }, "without a cold module a kernel's functions share a shard: \(byFunction)")
        let owners = byFunction.map { $0[0] }
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
        XCTAssertEqual(a.shardOwners(pa, .single), pa.map { $0.map { _ in 0 } })
        // More shards than kernels: each kernel its own shard at most, none left out.
        let many = a.shardOwners(pa, ShardLayout(hot: a.plan.kernels.count + 3, cold: false)).map { $0[0] }
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
        let owners = w.shardOwners(w.nativeParts(entryName: "init"), layout).map { $0[0] }
        for n in owners.indices { XCTAssertEqual(owners[n] == 2, cold[n], "kernel \(n) on shard \(owners[n]): \(owners)") }
        let draws = w.plan.kernels.indices.filter { !cold[$0] && owners[$0] != 2 && w.codeCost(w.plan.kernels[$0], w.nativeParts(entryName: "init")[$0]) >= 20 }
        XCTAssertEqual(draws.count, 2)
        XCTAssertNotEqual(owners[draws[0]], owners[draws[1]], "\(owners)")
    }

    /// A column sum of 131,072 elements is hot and split in parts over the pool; adding up its
    /// parts' partial sums into 32 totals is cold. With a cold module the parts' function is on
    /// a hot shard and the sum on the cold one; without, both are on one shard.
    func testTheSumOfASplitSumsPartsIntoFewTotalsIsCold() throws {
        var f = try Parser.parse("""
        func @grad(%0: f32[4096,32] feed "x", %1: f32[4096,32] feed "y") {
          %2 = reduce.sum %0 axes=[0]
          %3 = exp %1
          %4 = tanh %1
          return %2, %3, %4
        }
        """)
        try PassManager.standard().run(&f)
        let plan = KernelPlan(f, target: .standard)
        let w = KernelWriter(renderer: CStyleRenderer(.c99), function: f, plan: plan, target: .standard)
        guard let n = plan.kernels.firstIndex(where: { if case .splitReduction = $0 { return true } else { return false } }) else {
            return XCTFail("no split reduction: \(plan.kernels)")
        }
        XCTAssertFalse(plan.coldKernels(f)[n])
        let parts = w.nativeParts(entryName: "grad")
        XCTAssertEqual(parts[n].map(\.sumOfParts), [false, true])
        let owners = w.shardOwners(parts, ShardLayout(hot: 2, cold: true))
        XCTAssertNotEqual(owners[n][0], 2, "\(owners)")
        XCTAssertEqual(owners[n][1], 2, "\(owners)")
        let plain = w.shardOwners(parts, ShardLayout(hot: 2, cold: false))
        XCTAssertEqual(plain[n][0], plain[n][1], "\(plain)")
    }

    /// A reduction into few totals is a loop over its operand, and costs LLVM what one is
    /// estimated at: batch norm's 16 channel sums of a [4096,16] activation are not a flat
    /// 16-element loop.
    func testAReductionIntoFewTotalsCostsWhatALoopOverItsOperandDoes() throws {
        var f = try Parser.parse("""
        func @stats(%0: f32[4096,16] feed "x") {
          %1 = reduce.sum %0 axes=[0]
          %2 = neg %0
          return %1, %2
        }
        """)
        try PassManager.standard().run(&f)
        let plan = KernelPlan(f, target: .standard)
        let w = KernelWriter(renderer: CStyleRenderer(.c99), function: f, plan: plan, target: .standard)
        let parts = w.nativeParts(entryName: "stats")
        guard let r = plan.kernels.firstIndex(where: { if case .splitReduction = $0 { return true } else { return false } }),
              let l = plan.kernels.firstIndex(where: { if case .loop = $0 { return true } else { return false } }) else {
            return XCTFail("no split reduction and loop: \(plan.kernels)")
        }
        let reductionParts = parts[r].filter { !$0.sumOfParts }
        XCTAssertEqual(w.codeCost(plan.kernels[r], reductionParts), w.codeCost(plan.kernels[l], parts[l]), "\(plan.kernels)")
    }
}
