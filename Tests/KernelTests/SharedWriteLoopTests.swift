import XCTest
import KilnIR
import KilnPasses
import KilnKernels

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
        let s = shape.map(String.init).joined(separator: ",")
        let f = try KernelCase.parse("""
        func @adam(%0: f32[\(s)] var "w", %1: f32[\(s)] var "m", %2: f32[\(s)] var "v", %3: f32[\(s)] feed "g", %4: f32[] feed "lr") {
          %5 = constant f32[] 0.9
          %6 = broadcast %5 shape=[\(s)] dims=[]
          %7 = constant f32[] 0.1
          %8 = broadcast %7 shape=[\(s)] dims=[]
          %9 = var.read %1
          %10 = mul %9, %6
          %11 = mul %3, %8
          %12 = add %10, %11
          %13 = var.write %1, %12
          %14 = constant f32[] 0.999
          %15 = broadcast %14 shape=[\(s)] dims=[]
          %16 = constant f32[] 0.001
          %17 = broadcast %16 shape=[\(s)] dims=[]
          %18 = var.read %2
          %19 = mul %18, %15
          %20 = mul %3, %3
          %21 = mul %20, %17
          %22 = add %19, %21
          %23 = var.write %2, %22
          %24 = broadcast %4 shape=[\(s)] dims=[]
          %25 = var.read %1
          %26 = mul %24, %25
          %27 = var.read %2
          %28 = sqrt %27
          %29 = constant f32[] 1e-8
          %30 = broadcast %29 shape=[\(s)] dims=[]
          %31 = add %28, %30
          %32 = div %26, %31
          %33 = var.read %0
          %34 = sub %33, %32
          %35 = var.write %0, %34
          return
        }
        """)
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
        let transposed = try KernelCase.parse("""
        func @transposed(%0: f32[6,6] var "a", %1: f32[6,6] var "b", %2: f32[6,6] feed "x") {
          %3 = var.write %0, %2
          %4 = var.read %0
          %5 = transpose %4 perm=[1,0]
          %6 = add %5, %2
          %7 = var.write %1, %6
          return
        }
        """)
        // The average reads the incremented step: the increment is carried before w's update and
        // the average joins w's loop.
        let average = try KernelCase.parse("""
        func @average(%0: f32[300] var "w", %1: f32[300] var "shadow", %2: f32[] var "step", %3: f32[300] feed "g") {
          %4 = var.read %0
          %5 = sub %4, %3
          %6 = var.write %0, %5
          %7 = var.read %2
          %8 = constant f32[] 1.0
          %9 = add %7, %8
          %10 = var.write %2, %9
          %11 = var.read %2
          %12 = broadcast %11 shape=[300] dims=[]
          %13 = var.read %1
          %14 = var.read %0
          %15 = sub %13, %14
          %16 = div %15, %12
          %17 = sub %13, %16
          %18 = var.write %1, %17
          return
        }
        """)
        // Here w's update reads the step before its increment: nothing can move.
        let pinned = try KernelCase.parse("""
        func @pinned(%0: f32[300] var "w", %1: f32[300] var "shadow", %2: f32[] var "step", %3: f32[300] feed "g") {
          %4 = var.read %0
          %5 = var.read %2
          %6 = broadcast %5 shape=[300] dims=[]
          %7 = mul %3, %6
          %8 = sub %4, %7
          %9 = var.write %0, %8
          %10 = var.read %2
          %11 = constant f32[] 1.0
          %12 = add %10, %11
          %13 = var.write %2, %12
          %14 = var.read %2
          %15 = broadcast %14 shape=[300] dims=[]
          %16 = var.read %1
          %17 = var.read %0
          %18 = sub %16, %17
          %19 = div %18, %15
          %20 = sub %16, %19
          %21 = var.write %1, %20
          return
        }
        """)
        let cases = [
            KernelCase("a moving average after a step its variable's update reads", pinned,
                       [try values([300], 1), try values([300], 2), Tensor(Float(3)), try values([300], 3)], agreement: .exact),
            KernelCase("a moving average joining its variable's update past the step's", average,
                       [try values([300], 1), try values([300], 2), Tensor(Float(3)), try values([300], 3)], agreement: .exact, inspect: { exe, _ in
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
