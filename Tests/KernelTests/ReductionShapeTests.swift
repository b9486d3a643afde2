import XCTest
import KilnIR
import KilnPasses
import KilnKernels

/// Reductions of every shape class against the reference, on every backend: sums over 1, 7,
/// 255, 256, 257 and 100000 elements (a device's serial loop, one work-group tree, and a tree
/// in parts), and rows reduced over trailing, leading, inner and all axes by every reduce op.
/// On a device the plan is checked to have taken the intended class.
final class ReductionShapeTests: XCTestCase {
    static func values(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Float.random(in: -1..<1, using: &rng) }
    }

    /// On a device: whether the reduction `%1` is split into parts, as `split` says.
    static func deviceSplit(_ split: Bool) -> @Sendable (any Executable, TargetDescription) -> String? {
        { exe, target in
            guard target.workItems else { return nil }
            let isSplit = exe.plan.kernels.contains { if case .splitReduction = $0 { return true } else { return false } }
            return isSplit == split ? nil : "planned \(exe.plan.kernels), expected \(split ? "a reduction in parts" : "one reduction")"
        }
    }

    func testSumsOfEverySizeClass() throws {
        var cases: [KernelCase] = []
        for n in [1, 7, 255, 256, 257, 100_000] {
            let f = try KernelCase.parse("""
            func @s(%0: f32[\(n)] feed "x") {
              %1 = reduce.sum %0 axes=[0]
              %2 = reduce.max %0 axes=[0]
              return %1, %2
            }
            """)
            // 100000 values in [-1, 1): the sum is ~100, each term's rounding ~1e-8 of it.
            cases.append(KernelCase("sum and max of \(n)", f, [try Tensor(shape: [n], scalars: Self.values(n, seed: UInt64(n)))],
                                    agreement: .relative(1e-5), inspect: Self.deviceSplit(n >= 65536)))
        }
        BackendRunner.run("reduction shapes: sums of every size", cases)
    }

    func testRowsOfEveryShapeClass() throws {
        var cases: [KernelCase] = []
        // (shape, axes): trailing, leading, inner, several, all; short and long reduced extents.
        let shapes: [([Int], [Int])] = [([5, 7], [1]), ([5, 300], [1]), ([7, 5], [0]), ([300, 5], [0]), ([4, 9, 70], [1]), ([4, 130, 3], [1]),
                                        ([6, 5, 4], [0, 2]), ([3, 40000], [1]), ([70000, 2], [0]), ([8, 9, 10], [0, 1, 2]), ([0, 5], [0])]
        for (shape, axes) in shapes {
            let n = shape.reduce(1, *)
            let reduced = axes.map { shape[$0] }.reduce(1, *), outputs = n / max(reduced, 1)
            for op in ReduceOp.allCases {
                for d in [DType.float32, .int32] {
                    let xs: Tensor
                    if d == .float32 {
                        // Products of many values would under- or overflow: near 1 for prod.
                        let v = Self.values(n, seed: UInt64(n + axes.count))
                        xs = try Tensor(shape: shape, scalars: op == .prod ? v.map { 1 + $0 / 1024 } : v)
                    } else {
                        let ints: [Int32] = (0..<n).map { (i: Int) -> Int32 in
                            if op == .prod { return i % 3 == 0 ? -1 : 1 }
                            return Int32((i * 7) % 19 - 9)
                        }
                        xs = try Tensor(shape: shape, scalars: ints)
                    }
                    let f = try KernelCase.parse("""
                    func @r(%0: \(d == .float32 ? "f32" : "i32")[\(shape.map(String.init).joined(separator: ","))] feed "x") {
                      %1 = reduce.\(op) %0 axes=[\(axes.map(String.init).joined(separator: ","))]
                      return %1
                    }
                    """)
                    let split = outputs <= 64 && reduced >= 65536
                    // A float product's rounding depends on its association (70000 factors: ~1e-5).
                    cases.append(KernelCase("\(op) of \(d.name)\(shape) over \(axes)", f, [xs], agreement: .relative(op == .prod ? 1e-4 : 1e-5),
                                            inspect: Self.deviceSplit(split)))
                }
            }
        }
        BackendRunner.run("reduction shapes: rows of every class", cases)
    }
}
