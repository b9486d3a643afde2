import XCTest
import KilnIR
import KilnPasses
import KilnKernels
import KilnTestSupport

/// Variable writes that share one loop (`KernelPlan.Kernel.writes`) leave every variable as
/// separate loops would on every backend: an optimiser's slots and variable updated together,
/// on the pool when large; reads of written variables at the same element seeing earlier writes'
/// values and later writes' old ones; a write moved back past others to join a loop; writes that
/// read a written variable at another element kept apart.
final class SharedWriteLoopTests: XCTestCase {
    func values(_ shape: [Int], _ seed: Int, offset: Float = 0) throws -> Tensor {
        let n = shape.reduce(1, *)
        return try Tensor(shape: shape, scalars: (0..<n).map { Float(($0 * 37 + seed * 11) % 97) / 97 + offset })
    }

    /// Writes per shared loop in the plan, one count per `.writes` kernel.
    static func writeGroups(_ exe: any Executable) -> [Int] {
        exe.plan.kernels.compactMap { k in if case .writes(let ws) = k { return ws.count } else { return nil } }
    }

    /// An Adam update of a variable of `shape`, the slots then the variable, which reads both
    /// slots' new values.
    func adam(_ shape: [Int]) throws -> KernelCase {
        let f = try KernelCase.parse(WriteLoopPrograms.adam(shape))
        let n = shape.reduce(1, *)
        return KernelCase("Adam step of f32\(shape) (\(n) elements)", f,
                          [try values(shape, 1), try values(shape, 2, offset: -0.5), try values(shape, 3), try values(shape, 4, offset: -0.5),
                           Tensor(Float(0.01))],
                          inspect: { exe, _ in
                              Self.writeGroups(exe) == [3] ? nil : "planned \(exe.plan.kernels), expected the three writes in one loop"
                          })
    }

    func testSharedWritesLeaveEveryVariableAsSeparateLoopsWould() throws {
        let swap = try KernelCase.parse("""
        func @swap(%0: f32[5,7] var "a", %1: f32[5,7] var "b") {
          %2 = var.read %0
          %3 = var.read %1
          %4 = var.write %0, %3
          %5 = var.write %1, %2
          return
        }
        """)
        // The first write reads, at its own element, the variable the second overwrites: the
        // old value.
        let before = try KernelCase.parse("""
        func @before(%0: f32[64] var "a", %1: f32[64] var "b", %2: f32[64] feed "x") {
          %3 = var.read %1
          %4 = add %3, %2
          %5 = var.write %0, %4
          %6 = var.write %1, %2
          return
        }
        """)
        let transposed = try KernelCase.parse(WriteLoopPrograms.transposedRead(6))
        // Here w's update reads the step before its increment: nothing can move.
        let pinned = try KernelCase.parse(WriteLoopPrograms.movingAverage(300, scaledByStep: true))
        // The average reads the incremented step: the increment is carried before w's update and
        // the average joins w's loop.
        let average = try KernelCase.parse(WriteLoopPrograms.movingAverage(300, scaledByStep: false))
        let averageInputs = [try values([300], 1), try values([300], 2), Tensor(Float(3)), try values([300], 3)]
        let cases = [
            KernelCase("a moving average after a step its variable's update reads", pinned, averageInputs, agreement: .exact),
            KernelCase("a moving average joining its variable's update past the step's", average, averageInputs, agreement: .exact, inspect: { exe, _ in
                Self.writeGroups(exe) == [1, 2] ? nil : "planned \(exe.plan.kernels), expected the step's write, then w's and the average's in one loop"
            }),
            try adam([37]),
            // Large enough to be split across the worker pool by rows.
            try adam([256, 160]),
            KernelCase("swapped variables", swap, [try values([5, 7], 1), try values([5, 7], 2)], agreement: .exact, inspect: { exe, _ in
                Self.writeGroups(exe) == [2] ? nil : "planned \(exe.plan.kernels), expected both writes in one loop after the copy"
            }),
            KernelCase("a read of the next write's variable sees its old value", before,
                       [try values([64], 1), try values([64], 2), try values([64], 3)], agreement: .exact, inspect: { exe, _ in
                Self.writeGroups(exe) == [2] ? nil : "planned \(exe.plan.kernels), expected both writes in one loop"
            }),
            // Judged by its values alone: sharing a loop would read elements of a not yet written.
            KernelCase("a write reading a written variable transposed", transposed,
                       [try values([6, 6], 1), try values([6, 6], 2), try values([6, 6], 3)], agreement: .exact),
        ]
        BackendRunner.run("shared write loops", cases)
    }
}
