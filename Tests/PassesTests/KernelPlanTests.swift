import XCTest
import KilnIR
import KilnPasses
import KilnTestSupport

/// Parses and types `text` the way the compiler does before planning.
private func planned(_ text: String) throws -> (Function, KernelPlan) {
    var f = try Parser.parse(text)
    try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
    return (f, KernelPlan(f))
}

/// A target whose small products do not run on the pool: no products per image or per block.
private let plainTarget = TargetDescription(name: "plain", vectorBytes: 16, ownProducts: false)

private func arenaOffset(_ plan: KernelPlan, _ id: Int) -> Int? {
    if case .arena(let o)? = plan.storage[id] { return o }
    return nil
}

final class KernelPlanFusionTests: XCTestCase {
    func testSingleUseElementwiseChainIsInlineInOneKernel() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] feed "x", %1: f32[4] feed "y") {
          %2 = neg %0
          %3 = exp %2
          %4 = constant f32[] 2.0
          %5 = broadcast %4 shape=[4] dims=[]
          %6 = mul %3, %5
          %7 = add %6, %1
          return %7
        }
        """)
        XCTAssertEqual(plan.kernels, [.loop(7)])
        for id in [2, 3, 5, 6] { XCTAssertEqual(plan.storage[id], .inline, "%\(id)") }
        XCTAssertEqual(plan.storage[7], .result(0))
        XCTAssertEqual(plan.storage[0], .param(0))
        XCTAssertEqual(plan.reasons[7], .fetchedResult)
        XCTAssertNil(plan.reasons[3])
        XCTAssertEqual(plan.arenaBytes, 0)
    }

    func testValueWithTwoUsersIsMaterialisedWithAReason() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] feed "x", %1: f32[4] feed "y") {
          %2 = exp %0
          %3 = add %2, %1
          %4 = mul %2, %1
          %5 = sub %3, %4
          return %5
        }
        """)
        XCTAssertEqual(plan.kernels, [.loop(2), .loop(5)])
        XCTAssertNotNil(arenaOffset(plan, 2), "\(String(describing: plan.storage[2]))")
        XCTAssertEqual(plan.reasons[2], .severalUsers(2))
        XCTAssertEqual(plan.storage[3], .inline)
        XCTAssertEqual(plan.storage[4], .inline)
    }

    func testSelfUseCountsAsTwoUsers() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] feed "x") {
          %1 = exp %0
          %2 = mul %1, %1
          return %2
        }
        """)
        XCTAssertEqual(plan.kernels, [.loop(1), .loop(2)])
        XCTAssertEqual(plan.reasons[1], .severalUsers(2))
    }

    func testDotOperandsGetBuffers() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[2,3] feed "a", %1: f32[2,3] feed "b") {
          %2 = neg %0
          %3 = transpose %1 perm=[1,0]
          %4 = dot %2, %3
          %5 = dot %0, %1 transpose_b=true
          %6 = add %4, %5
          return %6
        }
        """)
        XCTAssertEqual(plan.kernels, [.loop(2), .loop(3), .product(4), .product(5), .loop(6)])
        XCTAssertEqual(plan.reasons[2], .productOperand)
        XCTAssertEqual(plan.reasons[3], .productOperand)
        XCTAssertEqual(plan.reasons[4], .matrixProduct)
        XCTAssertEqual(plan.reasons[5], .matrixProduct)
        for id in [2, 3, 4, 5] { XCTAssertNotNil(arenaOffset(plan, id), "%\(id)") }
        // Feeds are already buffers.
        XCTAssertEqual(plan.storage[0], .param(0))
        XCTAssertEqual(plan.storage[1], .param(1))
    }

    func testReductionsAreMaterialised() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4,8] feed "x") {
          %1 = reduce.max %0 axes=[1]
          %2 = broadcast %1 shape=[4,8] dims=[0]
          %3 = sub %0, %2
          return %3
        }
        """)
        XCTAssertEqual(plan.kernels, [.reduction(1), .loop(3)])
        XCTAssertEqual(plan.reasons[1], .reductionResult)
        XCTAssertEqual(plan.storage[2], .inline)
    }

    func testLargeConstantsGoToTheConstantTableAndSmallOnesInline() throws {
        let big = (0..<17).map { "\($0).0" }.joined(separator: ", ")
        let small = (0..<16).map { "\($0).0" }.joined(separator: ", ")
        let (f, plan) = try planned("""
        func @f(%0: f32[17] feed "x", %1: f32[16] feed "y") {
          %2 = constant f32[17] [\(big)]
          %3 = constant f32[16] [\(small)]
          %4 = add %0, %2
          %5 = add %1, %3
          return %4, %5
        }
        """)
        XCTAssertEqual(plan.storage[2], .constant(0))
        XCTAssertEqual(plan.constants.count, 1)
        guard case .constant(let t) = f.body[0].op else { return XCTFail() }
        XCTAssertEqual(plan.constants.first, t)
        XCTAssertEqual(plan.storage[3], .inline)
    }

    func testResultsThatAreParametersOrConstantsAreCopied() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[2] feed "x") {
          %1 = constant f32[2] [1.0, 2.0]
          %2 = neg %0
          return %0, %1, %2, %2
        }
        """)
        XCTAssertEqual(plan.storage[2], .result(2))
        // After the kernels that compute them.
        XCTAssertEqual(plan.kernels, [.loop(2), .resultCopies([.init(result: 0, value: 0), .init(result: 1, value: 1), .init(result: 3, value: 2)])])
    }
}

final class KernelPlanVariableTests: XCTestCase {
    func testReadUsedAfterAWriteOfTheSameVariableIsMaterialised() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "v", %1: f32[4] feed "x") {
          %2 = var.read %0
          %3 = var.write %0, %1
          %4 = neg %2
          return %4
        }
        """)
        XCTAssertEqual(plan.reasons[2], .readAfterWrite)
        XCTAssertNotNil(arenaOffset(plan, 2))
        // The copy runs before the write.
        XCTAssertEqual(plan.kernels, [.loop(2), .writes([.init(write: 3, variable: 0, value: 1)]), .loop(4)])
        XCTAssertEqual(plan.storage[0], .variable(param: 0))
    }

    func testReadUsedOnlyBeforeTheWriteStaysInline() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "v", %1: f32[4] feed "x") {
          %2 = var.read %0
          %3 = add %2, %1
          %4 = var.write %0, %3
          return
        }
        """)
        // Elementwise read-modify-write reads each element before overwriting it.
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 4, variable: 0, value: 3)])])
        XCTAssertEqual(plan.storage[2], .inline)
        XCTAssertEqual(plan.storage[3], .inline)
    }

    func testReadOfAnotherVariableAfterAWriteStaysInline() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "v", %1: f32[4] var "w", %2: f32[4] feed "x") {
          %3 = var.read %1
          %4 = var.write %0, %2
          %5 = neg %3
          return %5
        }
        """)
        XCTAssertEqual(plan.storage[3], .inline)
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 4, variable: 0, value: 2)]), .loop(5)])
    }

    func testReadUsedAfterAWriteThroughAnInlineChainIsMaterialised() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "v", %1: f32[4] feed "x") {
          %2 = var.read %0
          %3 = exp %2
          %4 = var.write %0, %1
          %5 = add %3, %1
          %6 = var.write %0, %5
          return
        }
        """)
        // %3 is inline and is evaluated by the second write, after the first one.
        XCTAssertNotNil(plan.reasons[2])
        XCTAssertNotNil(arenaOffset(plan, 2))
        XCTAssertEqual(plan.kernels.first, .loop(2))
    }

    func testWriteOfATransposedReadOfTheSameVariableGetsABuffer() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[3,3] var "m") {
          %1 = var.read %0
          %2 = transpose %1 perm=[1,0]
          %3 = var.write %0, %2
          return
        }
        """)
        XCTAssertEqual(plan.reasons[2], .readsOverwrittenVariable)
        XCTAssertNotNil(arenaOffset(plan, 2))
        XCTAssertEqual(plan.kernels, [.loop(2), .writes([.init(write: 3, variable: 0, value: 2)])])
    }

    func testWriteOfAnElementwiseMixWithATransposedReadGetsABuffer() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[3,3] var "m") {
          %1 = var.read %0
          %2 = transpose %1 perm=[1,0]
          %3 = add %1, %2
          %4 = var.write %0, %3
          return
        }
        """)
        XCTAssertEqual(plan.reasons[3], .readsOverwrittenVariable)
    }
}

/// Consecutive variable writes of one shape share a loop unless one reads a written variable at
/// another element.
final class KernelPlanSharedWriteTests: XCTestCase {
    func testAnAdamStepsThreeWritesShareOneLoop() throws {
        let (_, plan) = try planned(WriteLoopPrograms.adam([8]))
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 13, variable: 1, value: 12), .init(write: 23, variable: 2, value: 22),
                                               .init(write: 35, variable: 0, value: 34)])])
        // The group lists every write after the first and every value computed in the loop.
        XCTAssertEqual(Set(plan.fused[13] ?? []), [12, 10, 6, 11, 8, 23, 22, 19, 15, 21, 20, 17, 35, 34, 32, 26, 24, 31, 28, 30])
        XCTAssertNil(plan.fused[23])
    }

    func testWritesShareNoLoopWithFusionOff() throws {
        var f = try Parser.parse(WriteLoopPrograms.adam([8]))
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        let writes = KernelPlan(f, fuse: false).kernels.filter { if case .writes = $0 { return true } else { return false } }
        XCTAssertEqual(writes, [.writes([.init(write: 13, variable: 1, value: 12)]), .writes([.init(write: 23, variable: 2, value: 22)]),
                                .writes([.init(write: 35, variable: 0, value: 34)])])
    }

    func testAWriteReadingAWrittenVariableThroughAnIndexMapHasItsOwnLoop() throws {
        // The second write reads the first's variable transposed: element (i, j) needs (j, i),
        // which one shared loop may not have written yet.
        let (_, later) = try planned(WriteLoopPrograms.transposedRead(3))
        XCTAssertEqual(later.kernels, [.writes([.init(write: 3, variable: 0, value: 2)]), .writes([.init(write: 7, variable: 1, value: 6)])])
        // The first reads, transposed, the variable the second writes: (j, i) may be overwritten.
        let (_, earlier) = try planned("""
        func @f(%0: f32[3,3] var "a", %1: f32[3,3] var "b", %2: f32[3,3] feed "x") {
          %3 = var.read %1
          %4 = transpose %3 perm=[1,0]
          %5 = add %4, %2
          %6 = var.write %0, %5
          %7 = var.write %1, %2
          return
        }
        """)
        XCTAssertEqual(earlier.kernels, [.writes([.init(write: 6, variable: 0, value: 5)]), .writes([.init(write: 7, variable: 1, value: 2)])])
    }

    func testWritesOfDifferentShapesHaveTheirOwnLoops() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "a", %1: f32[2,2] var "b", %2: f32[4] feed "x", %3: f32[2,2] feed "y") {
          %4 = var.write %0, %2
          %5 = var.write %1, %3
          return
        }
        """)
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 4, variable: 0, value: 2)]), .writes([.init(write: 5, variable: 1, value: 3)])])
    }

    func testWritesSeparatedByAnotherKernelHaveTheirOwnLoops() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "a", %1: f32[4] var "b", %2: f32[4] feed "x") {
          %3 = var.write %0, %2
          %4 = reduce.sum %2 axes=[0]
          %5 = broadcast %4 shape=[4] dims=[]
          %6 = add %5, %2
          %7 = var.write %1, %6
          return
        }
        """)
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 3, variable: 0, value: 2)]), .reduction(4), .writes([.init(write: 7, variable: 1, value: 6)])])
    }

    /// A moving average of w reading the step counter after its increment: the increment is
    /// carried before w's update (neither reads what the other writes), and the average joins
    /// w's loop.
    func testAWriteMovesBackPastIndependentKernelsToJoinALoopOfItsShape() throws {
        let (_, plan) = try planned(WriteLoopPrograms.movingAverage(8, scaledByStep: false))
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 13, variable: 2, value: 12)]),
                                      .writes([.init(write: 9, variable: 0, value: 8), .init(write: 21, variable: 1, value: 20)])])
    }

    func testAWriteStaysAfterTheKernelsItDependsOn() throws {
        // w's update reads the step before its increment, so the increment cannot move before
        // it, and the average, which reads the incremented step, cannot move before the increment.
        let (_, plan) = try planned(WriteLoopPrograms.movingAverage(8, scaledByStep: true))
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 9, variable: 0, value: 8)]), .writes([.init(write: 13, variable: 2, value: 12)]),
                                      .writes([.init(write: 21, variable: 1, value: 20)])])
    }

    func testNoWriteMovesBeforeACheck() throws {
        // The second write reads nothing the checked kernel computes and would join the first's
        // loop, but a run whose check fails must leave b as it was.
        let (_, plan) = try planned("""
        func @f(%0: f32[4] var "a", %1: f32[4] var "b", %2: f32[4] feed "x", %3: i32[4] feed "i") {
          %4 = var.write %0, %2
          %5 = check.nonzero %3 node="d" op="FloorDiv" message="Integer division by zero"
          %6 = cast %5 to=f32
          %7 = var.write %1, %2
          return %6
        }
        """)
        XCTAssertEqual(plan.kernels, [.writes([.init(write: 4, variable: 0, value: 2)]), .loop(6), .writes([.init(write: 7, variable: 1, value: 2)])])
    }

    func testAtMostTheLimitOfWritesShareALoop() throws {
        let n = KernelPlan.writesPerLoopLimit + 1
        let params = (0..<n).map { "%\($0): f32[4] var \"v\($0)\"" }.joined(separator: ", ")
        let body = (0..<n).map { "  %\(n + 1 + $0) = var.write %\($0), %\(n)" }.joined(separator: "\n")
        let (_, plan) = try planned("func @f(\(params), %\(n): f32[4] feed \"x\") {\n\(body)\n  return\n}")
        let sizes = plan.kernels.map { k -> Int in if case .writes(let ws) = k { return ws.count } else { return 0 } }
        XCTAssertEqual(sizes, [KernelPlan.writesPerLoopLimit, 1])
    }
}

final class KernelPlanArenaTests: XCTestCase {
    /// A chain of matrix products: each intermediate is read only by the next product.
    let chain = """
    func @f(%0: f32[3,3] feed "a") {
      %1 = dot %0, %0
      %2 = dot %1, %0
      %3 = dot %2, %0
      %4 = dot %3, %0
      %5 = dot %4, %0
      return %5
    }
    """

    func testArenaOffsetsAre64ByteAligned() throws {
        let (_, plan) = try planned(chain)
        let offsets = (1...4).compactMap { arenaOffset(plan, $0) }
        XCTAssertEqual(offsets.count, 4)
        for o in offsets { XCTAssertEqual(o % KernelPlan.alignment, 0) }
        XCTAssertEqual(plan.arenaBytes % KernelPlan.alignment, 0)
    }

    func testBuffersWithDisjointLifetimesShareSpace() throws {
        let (_, plan) = try planned(chain)
        // Four 36-byte buffers round to 64 bytes each; at most two are live at once.
        XCTAssertEqual(plan.arenaBytes, 128)
        XCTAssertLessThan(plan.arenaBytes, 4 * 64)
        XCTAssertEqual(arenaOffset(plan, 1), arenaOffset(plan, 3))
        XCTAssertEqual(arenaOffset(plan, 2), arenaOffset(plan, 4))
        XCTAssertNotEqual(arenaOffset(plan, 1), arenaOffset(plan, 2))
    }

    func testLiveBuffersNeverOverlap() throws {
        let (f, plan) = try planned("""
        func @f(%0: f32[5,7] feed "a", %1: f32[7,5] feed "b", %2: f32[5] var "v") {
          %3 = dot %0, %1
          %4 = exp %3
          %5 = reduce.sum %4 axes=[1]
          %6 = dot %4, %3
          %7 = reduce.max %6 axes=[0]
          %8 = var.read %2
          %9 = var.write %2, %5
          %10 = neg %7
          %11 = add %10, %8
          %12 = mul %4, %4
          %13 = reduce.min %12 axes=[0]
          %14 = add %11, %13
          %15 = dot %3, %3
          %16 = reduce.sum %15 axes=[0, 1]
          return %14, %16
        }
        """)
        assertNoOverlap(f, plan)
        XCTAssertLessThan(plan.arenaBytes, arenaSum(f, plan))
    }

    func testLiveBuffersNeverOverlapInALongMixedFunction() throws {
        // Many buffers of different sizes and lifetimes, built as a ladder of products that
        // each feed a later reduction.
        var lines: [String] = []
        var id = 2
        var pending: [Int] = []
        for step in 0..<12 {
            let src = step == 0 ? 0 : id - 1
            lines.append("  %\(id) = dot %\(src), %1"); id += 1
            if step % 3 == 0 { pending.append(id - 1) }
            if step % 4 == 3, let p = pending.first {
                pending.removeFirst()
                lines.append("  %\(id) = add %\(p), %\(id - 1)"); id += 1
            }
        }
        var acc = id - 1
        for p in pending {
            lines.append("  %\(id) = sub %\(acc), %\(p)"); acc = id; id += 1
        }
        lines.append("  %\(id) = reduce.sum %\(acc) axes=[1]")
        let text = "func @ladder(%0: f32[6,6] feed \"a\", %1: f32[6,6] feed \"b\") {\n" + lines.joined(separator: "\n") + "\n  return %\(id)\n}"
        let (f, plan) = try planned(text)
        assertNoOverlap(f, plan)
        XCTAssertLessThan(plan.arenaBytes, arenaSum(f, plan))
    }

    func arenaSum(_ f: Function, _ plan: KernelPlan) -> Int {
        f.body.filter { arenaOffset(plan, $0.id) != nil }.map { ($0.type!.byteCount + 63) / 64 * 64 }.reduce(0, +)
    }

    /// Two arena buffers may share bytes only if one is dead before the other is written:
    /// a buffer lives from its kernel to the last kernel that reads it, directly or through
    /// values computed inline.
    func assertNoOverlap(_ f: Function, _ plan: KernelPlan, file: StaticString = #filePath, line: UInt = #line) {
        let position = Dictionary(uniqueKeysWithValues: f.body.enumerated().map { ($1.id, $0) })
        let inst = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        var lastRead: [Int: Int] = [:]
        for case let k? in plan.kernels.map(\.value) {
            var stack = inst[k]!.operands
            var seen = Set<Int>()
            while let v = stack.popLast() {
                guard seen.insert(v).inserted else { continue }
                lastRead[v] = max(lastRead[v] ?? 0, position[k]!)
                if plan.storage[v] == .inline, let i = inst[v] { stack += i.operands }
            }
        }
        let buffers = f.body.compactMap { i -> (id: Int, start: Int, end: Int, lo: Int, hi: Int)? in
            guard let o = arenaOffset(plan, i.id) else { return nil }
            XCTAssertEqual(o % 64, 0, "%\(i.id) at \(o)", file: file, line: line)
            XCTAssertLessThanOrEqual(o + i.type!.byteCount, plan.arenaBytes, "%\(i.id) ends past the arena", file: file, line: line)
            let p = position[i.id]!
            return (i.id, p, max(p, lastRead[i.id] ?? p), o, o + i.type!.byteCount)
        }
        XCTAssertGreaterThan(buffers.count, 2, "the test needs several arena buffers", file: file, line: line)
        for (n, a) in buffers.enumerated() {
            for b in buffers[(n + 1)...] where a.start <= b.end && b.start <= a.end {
                XCTAssertTrue(a.hi <= b.lo || b.hi <= a.lo,
                              "%\(a.id) [\(a.lo),\(a.hi)) live \(a.start)...\(a.end) overlaps %\(b.id) [\(b.lo),\(b.hi)) live \(b.start)...\(b.end)",
                              file: file, line: line)
            }
        }
    }
}

/// v = v - s * dot(a, b), TensorFlow's gradient-descent update of a dense layer, runs as one
/// product accumulating into the variable.
final class KernelPlanDescentStepTests: XCTestCase {
    func step(_ product: String, scale: String = "%4 = constant f32[] 0.5") -> String {
        """
        func @f(%0: f32[6,5] var "w", %1: f32[8,6] feed "x", %2: f32[8,5] feed "dy") {
          %3 = var.read %0
          \(scale)
          %5 = broadcast %4 shape=[6,5] dims=[]
          \(product)
          %7 = mul %5, %6
          %8 = sub %3, %7
          %9 = var.write %0, %8
          return
        }
        """
    }

    func testTheProductAccumulatesIntoTheVariableWithoutABufferOrKernelOfItsOwn() throws {
        let (_, plan) = try planned(step("%6 = dot %1, %2 transpose_a=true transpose_b=false"))
        XCTAssertEqual(plan.kernels, [.accumulatedProduct(write: 9, variable: 0, dot: 6, scale: 4)])
        XCTAssertEqual(plan.reasons[9], .stateUpdateByProduct)
        XCTAssertEqual(plan.storage[6], .inline)
        XCTAssertEqual(plan.arenaBytes, 0)
    }

    func testAFedLearningRateAndEitherMultiplicandOrderStillAccumulate() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[6,5] var "w", %1: f32[8,6] feed "x", %2: f32[8,5] feed "dy", %3: f32[] feed "lr") {
          %4 = var.read %0
          %5 = broadcast %3 shape=[6,5] dims=[]
          %6 = dot %1, %2 transpose_a=true transpose_b=false
          %7 = mul %6, %5
          %8 = sub %4, %7
          %9 = var.write %0, %8
          return
        }
        """)
        XCTAssertEqual(plan.kernels, [.accumulatedProduct(write: 9, variable: 0, dot: 6, scale: 3)])
    }

    func testNotWhenTheProductReadsTheVariableOrIsUsedElsewhereOrFusionIsOff() throws {
        // w -= s * (w' x ... ) would read what it overwrites.
        let readsW = try planned("""
        func @f(%0: f32[6,6] var "w", %1: f32[6,6] feed "x") {
          %3 = var.read %0
          %4 = constant f32[] 0.5
          %5 = broadcast %4 shape=[6,6] dims=[]
          %6 = dot %3, %1 transpose_a=false transpose_b=false
          %7 = mul %5, %6
          %8 = sub %3, %7
          %9 = var.write %0, %8
          return
        }
        """).1
        XCTAssertEqual(readsW.kernels, [.product(6), .writes([.init(write: 9, variable: 0, value: 8)])])
        XCTAssertEqual(readsW.reasons[6], .matrixProduct)
        // The gradient is also fetched.
        let fetched = try planned(step("%6 = dot %1, %2 transpose_a=true transpose_b=false").replacingOccurrences(of: "  return\n", with: "  return %6\n")).1
        XCTAssertEqual(fetched.kernels, [.product(6), .writes([.init(write: 9, variable: 0, value: 8)])])
        var f = try Parser.parse(step("%6 = dot %1, %2 transpose_a=true transpose_b=false"))
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        XCTAssertEqual(KernelPlan(f, fuse: false).kernels.last, .writes([.init(write: 9, variable: 0, value: 8)]))
    }
}

final class KernelPlanBroadcastCostTests: XCTestCase {
    func testATranscendentalReadThroughABroadcastIsComputedOnce() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[128,10] feed "x") {
          %1 = reduce.sum %0 axes=[1]
          %2 = log %1
          %3 = reshape %2 shape=[128,1]
          %4 = broadcast %3 shape=[128,10] dims=[0,1]
          %5 = sub %0, %4
          return %5
        }
        """)
        XCTAssertEqual(plan.reasons[2], .recomputedByBroadcast(op: "log", times: 10))
        XCTAssertNotNil(arenaOffset(plan, 2))
        XCTAssertEqual(plan.storage[4], .inline)
    }

    func testCheapValuesAndSmallExpansionsStayInline() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[128,10] feed "x", %1: f32[128] feed "m", %2: f32[128,2] feed "y") {
          %3 = neg %1
          %4 = reshape %3 shape=[128,1]
          %5 = broadcast %4 shape=[128,10] dims=[0,1]
          %6 = sub %0, %5
          %7 = exp %1
          %8 = reshape %7 shape=[128,1]
          %9 = broadcast %8 shape=[128,2] dims=[0,1]
          %10 = add %2, %9
          return %6, %10
        }
        """)
        XCTAssertEqual(plan.storage[3], .inline)   // negation is cheap
        XCTAssertEqual(plan.storage[7], .inline)   // only twice
    }

    /// Batch norm's per-channel terms spread over every position of a [16,8,8,32] image: x minus
    /// the mean (a channel sum over the element count) times a scale of two ops.
    private func perChannel(_ mean: String, _ scale: String, dims: String = "dims=[3]") -> String {
        """
        func @f(%0: f32[16,8,8,32] feed "x", %1: f32[32] feed "s", %2: f32[32] feed "g") {
          %3 = constant f32[32] [\(Array(repeating: "1024.0", count: 32).joined(separator: ", "))]
          %4 = \(mean)
          %5 = broadcast %4 shape=[16,8,8,32] \(dims)
          %6 = sub %0, %5
          %7 = \(scale)
          %8 = broadcast %7 shape=[16,8,8,32] \(dims)
          %9 = mul %6, %8
          return %9
        }
        """
    }

    func testPerChannelArithmeticSpreadOverAnImageIsComputedOnce() throws {
        let (_, plan) = try planned(perChannel("div %1, %3", "mul %2, %4"))
        XCTAssertEqual(plan.reasons[4], .recomputedByBroadcast(op: "division", times: 1024))
        XCTAssertNotNil(arenaOffset(plan, 4))
        // Its two ops (with the mean now in a buffer, one of them a load).
        let two = try planned(perChannel("div %1, %3", "add %2, %2\n  %10 = mul %7, %4").replacingOccurrences(of: "%8 = broadcast %7", with: "%8 = broadcast %10"))
        XCTAssertEqual(two.1.reasons[10], .recomputedByBroadcast(op: "2 ops", times: 1024))
        XCTAssertEqual(plan.storage[6], .inline)
        XCTAssertEqual(plan.storage[7], .inline)   // one multiply, reading the mean's buffer
        XCTAssertEqual(plan.kernels.count, 2)
    }

    func testOneCheapOpOrASpreadAlongOuterAxesStaysInline() throws {
        // One multiply per element costs what loading a computed value would.
        let (_, cheap) = try planned(perChannel("mul %1, %3", "neg %2"))
        XCTAssertEqual(cheap.storage[4], .inline)
        XCTAssertEqual(cheap.storage[7], .inline)
        XCTAssertEqual(cheap.kernels.count, 1)
        // A value per image row is the same along the innermost loop, which LLVM hoists it out of.
        let (_, rows) = try planned("""
        func @f(%0: f32[256,512] feed "x", %1: f32[256] feed "s") {
          %2 = constant f32[256] [\(Array(repeating: "2.0", count: 256).joined(separator: ", "))]
          %3 = div %1, %2
          %4 = broadcast %3 shape=[256,512] dims=[0]
          %5 = mul %0, %4
          return %5
        }
        """)
        XCTAssertEqual(rows.storage[3], .inline)
    }
}

final class KernelPlanPerImageProductTests: XCTestCase {
    /// A 3x3 convolution's input gradient: images of side x side, 32 channels out, 16 in.
    private func inputGradient(fetchProduct: Bool = false, images: Int = 2, side: Int = 8) -> String {
        let rows = images * side * side
        return """
        func @f(%0: f32[\(images),\(side),\(side),32] feed "dy", %1: f32[3,3,16,32] var "w") {
          %2 = reshape %0 shape=[\(rows),32]
          %3 = var.read %1
          %4 = reshape %3 shape=[144,32]
          %5 = dot %2, %4 transpose_a=false transpose_b=true
          %6 = reshape %5 shape=[\(images),\(side),\(side),144]
          %7 = unpatches %6 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1] image=[\(side),\(side)]
          return %7\(fetchProduct ? ", %5" : "")
        }
        """
    }

    func testAConvolutionInputGradientIsSummedImageByImageWithoutAProductBuffer() throws {
        let (_, plan) = try planned(inputGradient())
        XCTAssertEqual(plan.kernels, [.perImageProduct(unpatches: 7, dot: 5)])
        XCTAssertEqual(plan.storage[5], .inline)
        XCTAssertEqual(plan.fused[7]?.contains(5), true)
        XCTAssertEqual(plan.arenaBytes, 0)
    }

    func testNotWhenTheProductIsUsedElsewhereTooLargeTooSmallOrFusionIsOff() throws {
        XCTAssertEqual(try planned(inputGradient(fetchProduct: true)).1.kernels, [.product(5), .unpatches(7)])
        // One image's rows (64x64 positions, 144 values each) would not fit the stack buffer.
        XCTAssertEqual(try planned(inputGradient(images: 1, side: 64)).1.kernels, [.product(5), .unpatches(7)])
        // 2x2 images: 4 x 144 x 32 multiply-adds each, less than a call is worth.
        XCTAssertEqual(try planned(inputGradient(side: 2)).1.kernels, [.product(5), .unpatches(7)])
        var f = try Parser.parse(inputGradient())
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        XCTAssertEqual(KernelPlan(f, fuse: false).kernels.last, .unpatches(7))
        // A target without a product kernel for its pool keeps one product over all images.
        XCTAssertEqual(KernelPlan(f, target: plainTarget).kernels, [.product(5), .unpatches(7)])
    }
}

final class KernelPlanRecomputeTests: XCTestCase {
    /// x - mean (one tensor read, a broadcast) feeding a reduction and two elementwise users.
    func testACheapValueReadingOneTensorIsRecomputedByEachUser() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[64,8] feed "x", %1: f32[8] feed "mean") {
          %2 = broadcast %1 shape=[64,8] dims=[1]
          %3 = sub %0, %2
          %4 = reduce.sum %3 axes=[0]
          %5 = mul %3, %3
          %6 = reduce.sum %5 axes=[0]
          return %4, %6
        }
        """)
        XCTAssertEqual(plan.storage[3], .inline)
        XCTAssertNil(plan.reasons[3])
        XCTAssertEqual(plan.kernels, [.reduction(4), .reduction(6)])
    }

    func testCostlyValuesAndValuesReadingMoreMemoryStayMaterialised() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[64,8] feed "x", %1: f32[64,8] feed "y") {
          %2 = tanh %0
          %3 = add %0, %1
          %4 = neg %2
          %5 = mul %2, %3
          %6 = sub %3, %4
          %7 = div %3, %5
          return %6, %7
        }
        """)
        XCTAssertEqual(plan.reasons[2], .severalUsers(2), "a transcendental is computed once")
        XCTAssertEqual(plan.reasons[3], .severalUsers(3), "three users would read both tensors again")
    }

    func testAMatrixProductOperandKeepsItsBuffer() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4,4] feed "x") {
          %1 = neg %0
          %2 = dot %1, %1 transpose_a=false transpose_b=false
          return %2
        }
        """)
        XCTAssertNotNil(arenaOffset(plan, 1))
        XCTAssertEqual(plan.kernels, [.loop(1), .product(2)])
    }
}

final class KernelPlanSplitReductionTests: XCTestCase {
    func testALargeLeadingAxisReductionGetsPartsAndScratchApartFromItsOutput() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[4096,32] feed "x") {
          %1 = reduce.sum %0 axes=[0]
          %2 = neg %1
          return %2
        }
        """)
        guard case .splitReduction(1, let parts, let scratch, let wide?)? = plan.kernels.first else { return XCTFail("\(plan.kernels)") }
        XCTAssertEqual(parts, TargetDescription.standard.reductionParts)
        let out = try XCTUnwrap(arenaOffset(plan, 1))
        // Float32 slots, then one Double slot per part (a floating-point sum's block totals).
        XCTAssertEqual(wide, KernelPlan.WideSum(offset: scratch + parts * 32 * 4, blockRows: 128))
        let scratchEnd = scratch + parts * 32 * (4 + 8)
        XCTAssertTrue(scratchEnd <= out || out + 32 * 4 <= scratch, "scratch \(scratch) overlaps output \(out)")
        XCTAssertEqual(scratch % KernelPlan.alignment, 0)
        XCTAssertEqual(plan.kernels.dropFirst(), [.loop(2)])
    }

    func testUnsplitFloatSumsOverManyLeadingRowsGetDoubleAccumulators() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[512,8192] feed "x", %1: f32[128,8192] feed "y", %2: i32[512,8192] feed "z") {
          %3 = reduce.sum %0 axes=[0]
          %4 = reduce.sum %1 axes=[0]
          %5 = reduce.sum %2 axes=[0]
          %6 = reduce.max %0 axes=[0]
          %7 = add %3, %4
          %8 = sub %7, %6
          %9 = neg %5
          return %8, %9
        }
        """)
        // Outputs of 8192 are not split. Only the float sum over more than one block of rows
        // sums into Doubles, apart from its output (later kernels may reuse them: they live
        // only while the sum runs).
        guard case .blockedReduction(3, let w)? = plan.kernels.first else { return XCTFail("\(plan.kernels)") }
        XCTAssertEqual(plan.kernels.dropFirst(), [.reduction(4), .reduction(5), .reduction(6), .loop(8), .loop(9)])
        XCTAssertEqual(w.blockRows, 128)
        let wide = w.offset, out = try XCTUnwrap(arenaOffset(plan, 3))
        XCTAssertTrue(wide + 8192 * 8 <= out || out + 8192 * 4 <= wide, "Doubles at \(wide) overlap the output at \(out)")
        XCTAssertEqual(wide % KernelPlan.alignment, 0)
    }

    func testSmallOrTrailingAxisReductionsAreNotSplit() throws {
        let (_, plan) = try planned("""
        func @f(%0: f32[64,32] feed "x", %1: f32[4096,32] feed "y") {
          %2 = reduce.sum %0 axes=[0]
          %3 = reduce.sum %1 axes=[1]
          return %2, %3
        }
        """)
        XCTAssertEqual(plan.kernels, [.reduction(2), .reduction(3)])
    }
}

final class KernelPlanBlockedPatchesTests: XCTestCase {
    /// A 3x3 convolution of `images` images 8x8x8 to 32 channels, and optionally its weight gradient.
    private func convolution(images: Int = 64, patchesAlsoUsed: Bool = false, gradient: Bool = false) -> String {
        let rows = images * 64
        return """
        func @f(%0: f32[\(images),8,8,8] feed "x", %1: f32[72,32] var "w", %2: f32[\(rows),32] feed "dy") {
          %3 = patches %0 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %4 = reshape %3 shape=[\(rows),72]
          %5 = var.read %1
          %6 = dot %4, %5 transpose_a=false transpose_b=false
          \(gradient ? "%7 = dot %4, %2 transpose_a=true transpose_b=false" : "")
          return %6\(gradient ? ", %7" : "")\(patchesAlsoUsed ? ", %3" : "")
        }
        """
    }

    func testAConvolutionGathersBlocksOfPatchRowsWithoutABuffer() throws {
        let (f, plan) = try planned(convolution())
        // Read in place (the standard target has the direct kernel): whole images a block, 64
        // images in 8 blocks for the pool's 8 parts.
        XCTAssertEqual(plan.kernels, [.patchProduct(dot: 6, blocks: KernelPlan.PatchBlocks(patches: 3, rows: 512, count: 8))])
        XCTAssertEqual(plan.storage[3], .inline)
        XCTAssertFalse(plan.views.contains(4))
        XCTAssertEqual(plan.fused[6]?.contains(3), true)
        let scheduler = Scheduler(target: .standard)
        XCTAssertEqual(scheduler.convolutionBlockRows(images: 64, positionsPerImage: 64), 512)
        XCTAssertEqual(scheduler.convolutionBlockRows(images: 3, positionsPerImage: 49), 49)
        // Gathered, 4096 patch rows of 72 floats: 224 rows fit 64 KiB, and 8 blocks would take 512 each.
        var gathers = TargetDescription.standard
        gathers.directConvolutions = false
        XCTAssertEqual(KernelPlan(f, target: gathers).kernels, [.patchProduct(dot: 6, blocks: KernelPlan.PatchBlocks(patches: 3, rows: 224, count: 19))])
        XCTAssertEqual(scheduler.patchBlockRows(patchWidth: 72, positions: 4096), 224)
        XCTAssertEqual(scheduler.patchBlockRows(patchWidth: 9, positions: 4096), 512)
        XCTAssertEqual(scheduler.patchBlockRows(patchWidth: 72, positions: 10), 10)
    }

    func testItsWeightGradientSumsBlocksIntoPartsInScratchApartFromTheOutputs() throws {
        let (f, plan) = try planned(convolution(gradient: true))
        // Both read the image in place by whole images (a 3x3 window of unit stride, 8 channels
        // to 32: Winograd's filter gradient takes it), 64 images in 8 blocks for 8 parts.
        let images = KernelPlan.PatchBlocks(patches: 3, rows: 512, count: 8)
        guard plan.kernels.count == 2, case .patchGradient(7, images, let parts, let scratch) = plan.kernels[1] else { return XCTFail("\(plan.kernels)") }
        XCTAssertEqual(plan.kernels[0], .patchProduct(dot: 6, blocks: images))
        XCTAssertEqual(parts, TargetDescription.standard.reductionParts)
        XCTAssertEqual(plan.storage[3], .inline)
        XCTAssertEqual(plan.storage[7], .result(1))
        XCTAssertEqual(scratch % KernelPlan.alignment, 0)
        // A target that gathers patches: the gradient sums gathered blocks of 224 rows.
        var gathers = TargetDescription.standard
        gathers.directConvolutions = false
        guard case .patchGradient(7, KernelPlan.PatchBlocks(patches: 3, rows: 224, count: 19), 8, _) = KernelPlan(f, target: gathers).kernels[1] else {
            return XCTFail("\(KernelPlan(f, target: gathers).kernels)")
        }
    }

    func testAWeightGradientReadsItsImageWhereWinogradOrTheFewChannelKernelTakesIt() throws {
        let scheduler = Scheduler(target: .standard)
        func reads(_ x: [Int], window: [Int] = [3, 3], strides: [Int] = [1, 1], outputs: Int) throws -> Bool {
            let oh = (x[1] - window[0] + 2) / strides[0] + 1, ow = (x[2] - window[1] + 2) / strides[1] + 1
            let rows = x[0] * oh * ow, k = window[0] * window[1] * x[3]
            var f = try Parser.parse("""
            func @f(%0: f32[\(x.map(String.init).joined(separator: ","))] feed "x", %1: f32[\(rows),\(outputs)] feed "dy") {
              %2 = patches %0 window=[\(window[0]),\(window[1])] strides=[\(strides[0]),\(strides[1])] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
              %3 = reshape %2 shape=[\(rows),\(k)]
              %4 = dot %3, %1 transpose_a=true transpose_b=false
              return %4
            }
            """)
            try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
            let types = f.typeTable(), inst = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
            return scheduler.gradientReadsImageInPlace(inst[2]!, inst[4]!, types)
        }
        XCTAssertTrue(try reads([4, 8, 8, 8], outputs: 32))
        XCTAssertTrue(try reads([4, 8, 8, 64], outputs: 16))
        XCTAssertFalse(try reads([4, 8, 8, 64], outputs: 17), "64 channels times 32 columns is past the kernel's bound")
        XCTAssertFalse(try reads([4, 8, 8, 8], window: [5, 5], outputs: 32))
        XCTAssertFalse(try reads([4, 9, 9, 8], strides: [2, 2], outputs: 32))
        // Under 8 input channels the direct kernel takes any window, stride and channel count.
        XCTAssertTrue(try reads([4, 8, 8, 1], outputs: 16))
        XCTAssertTrue(try reads([4, 8, 8, 4], window: [5, 5], outputs: 300))
        XCTAssertTrue(try reads([4, 9, 9, 7], strides: [2, 2], outputs: 32))
    }

    func testAConvolutionReadingItsImageInPlaceIsBlockedAtAnySizeAndGivesAComputedImageABuffer() throws {
        // 4 images of 8x8x8 computed in the step (x * x): 288 KiB of patches would stay in cache,
        // but nothing is gathered where the convolution reads the image.
        let text = """
        func @f(%0: f32[4,8,8,8] feed "x", %1: f32[72,32] var "w") {
          %2 = mul %0, %0
          %3 = patches %2 window=[3,3] strides=[1,1] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
          %4 = reshape %3 shape=[256,72]
          %5 = var.read %1
          %6 = dot %4, %5 transpose_a=false transpose_b=false
          return %6
        }
        """
        let (f, plan) = try planned(text)
        guard plan.kernels.count == 2, plan.kernels[0] == .loop(2), case .patchProduct(6, _) = plan.kernels[1] else { return XCTFail("\(plan.kernels)") }
        XCTAssertEqual(plan.reasons[2], .convolutionInput)
        // A target that gathers patches keeps them fused into one product, the image inline.
        var gathers = TargetDescription.standard
        gathers.directConvolutions = false
        XCTAssertEqual(KernelPlan(f, target: gathers).kernels, [.patches(3), .product(6)])
    }

    func testNotWhenThePatchesAreUsedElsewhereSmallOrFusionIsOff() throws {
        let (_, shared) = try planned(convolution(patchesAlsoUsed: true, gradient: true))
        XCTAssertEqual(shared.kernels, [.patches(3), .product(6), .product(7)])
        XCTAssertEqual(shared.storage[3], .result(2), "fetched patches keep their buffer")
        // 4 images: 288 KiB of patches stay in cache between writer and readers, on a target that
        // gathers them; where both products read the image in place nothing is gathered at any size.
        var small = try Parser.parse(convolution(images: 4, gradient: true))
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&small)
        var gathers = TargetDescription.standard
        gathers.directConvolutions = false
        XCTAssertEqual(KernelPlan(small, target: gathers).kernels, [.patches(3), .product(6), .product(7)])
        let images = KernelPlan.PatchBlocks(patches: 3, rows: 64, count: 4)
        XCTAssertEqual(KernelPlan(small).kernels, [.patchProduct(dot: 6, blocks: images), .patchGradient(dot: 7, blocks: images, parts: 4, scratch: 0)])
        var f = try Parser.parse(convolution(gradient: true))
        try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        XCTAssertTrue(Set(KernelPlan(f, fuse: false).kernels).isSuperset(of: [.patches(3), .product(6), .product(7)]))
        // A target without a product kernel for its pool keeps one product over all images.
        let plain = KernelPlan(f, target: plainTarget)
        XCTAssertEqual(plain.kernels, [.patches(3), .product(6), .product(7)])
        XCTAssertNotNil(arenaOffset(plain, 3))
    }
}
