import XCTest
import KilnIR
import KilnPasses
import KilnKernels

/// Small hand-written functions every backend must compute as the reference evaluator does:
/// a product, a fused bias and relu, a variable updated in place, and the window kernels'
/// special paths (an unrolled argmax over a short axis, few-channel patches, a pooling gradient
/// read through a reshape of its taps), on values with many ties and padding on every side.
final class SmallKernelTests: XCTestCase {
    func tensor(_ shape: [Int], period: Int = 5) throws -> Tensor {
        let n = shape.reduce(1, *)
        return try Tensor(shape: shape, scalars: (0..<n).map { Float(($0 * 7 + $0 / 3) % period) - 2 })
    }

    func testSmallFunctionsMatchTheReference() throws {
        let cases = [
            KernelCase("matrix product", try KernelCase.parse("""
            func @m(%0: f32[2,3] feed "a", %1: f32[3,2] feed "b") {
              %2 = dot %0, %1 transpose_a=false transpose_b=false
              return %2
            }
            """), [try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6] as [Float]), try Tensor(shape: [3, 2], scalars: [1, 0, 0, 1, 1, 1] as [Float])]),
            KernelCase("fused bias and relu", try KernelCase.parse("""
            func @m(%0: f32[2,3] feed "x", %1: f32[3] feed "b") {
              %2 = broadcast %1 shape=[2,3] dims=[1]
              %3 = add %0, %2
              %4 = constant f32[] 0.0
              %5 = broadcast %4 shape=[2,3] dims=[]
              %6 = max %3, %5
              %7 = reduce.sum %6 axes=[1]
              return %6, %7
            }
            """), [try Tensor(shape: [2, 3], scalars: [1, -2, 3, -4, 5, -6] as [Float]), try Tensor(shape: [3], scalars: [0.5, 0.5, -10] as [Float])]),
            KernelCase("variable counter", try KernelCase.parse("""
            func @m(%0: i32[] var "counter") {
              %1 = var.read %0
              %2 = constant i32[] 1
              %3 = add %1, %2
              %4 = var.write %0, %3
              return %3
            }
            """), [Tensor(Int32(41))]),
            KernelCase("argmax over a short inner axis keeps the first of ties", try KernelCase.parse("""
            func @m(%0: f32[3,5,17] feed "x") {
              %1 = argmax %0 axis=1 output_type=i64
              %2 = argmin %0 axis=1 output_type=i32
              return %1, %2
            }
            """), [try tensor([3, 5, 17], period: 3)]),
            KernelCase("few-channel patches with padding and stride", try KernelCase.parse("""
            func @m(%0: f32[2,5,6,2] feed "x", %1: f32[2,4,4,1] feed "g") {
              %2 = patches %0 window=[3,3] strides=[2,2] dilations=[1,1] pad_low=[1,1] pad_high=[1,1]
              %3 = patches %1 window=[3,2] strides=[1,1] dilations=[2,1] pad_low=[2,0] pad_high=[2,1]
              return %2, %3
            }
            """), [try tensor([2, 5, 6, 2]), try tensor([2, 4, 4, 1])], agreement: .exact),
            KernelCase("pooling gradient read through a reshape of its taps", try KernelCase.parse("""
            func @m(%0: f32[2,2,3,4,3] feed "taps") {
              %1 = neg %0
              %2 = reshape %1 shape=[2,2,3,12]
              %3 = unpatches %2 window=[2,2] strides=[2,2] dilations=[1,1] pad_low=[0,0] pad_high=[0,0] image=[4,6]
              %4 = unpatches %2 window=[2,2] strides=[3,3] dilations=[1,1] pad_low=[1,0] pad_high=[0,0] image=[5,8]
              return %3, %4
            }
            """), [try tensor([2, 2, 3, 4, 3])], agreement: .exact),
        ]
        BackendRunner.run("small kernels", cases, batch: 8)
    }

    /// With profiling on, every run adds each kernel's time (reached through the constant table,
    /// so no backend bakes an address into its code), and the results are unchanged.
    func testProfiledRunsAccumulateKernelTimes() throws {
        let f = try KernelCase.parse("""
        func @v(%0: f32[4096] feed "x") {
          %1 = constant f32[] 0.5
          %2 = broadcast %1 shape=[4096] dims=[]
          %3 = mul %0, %2
          %4 = tanh %3
          %5 = reduce.sum %4 axes=[0]
          return %4, %5
        }
        """, passes: .standard)
        let x = try Tensor(shape: [4096], scalars: (0..<4096).map { Float($0 % 10) / 4 })
        let want = try ReferenceEvaluator.run(f, parameters: [x]).results
        BackendRunner.run("profiling", check: "profiled runs accumulate each kernel's time") { backend in
            let exe = try backend.compile(f, options: CompileOptions(profile: true))
            for _ in 0..<2 {
                var p = [x]
                let got = try exe.run(&p)
                for (k, (g, w)) in zip(got, want).enumerated() {
                    if let d = KernelCase.disagreement(g, w, .relative(1e-5)) { return "result \(k): \(d)" }
                }
            }
            if exe.profiledRuns != 2 { return "\(exe.profiledRuns) profiled runs after 2" }
            if exe.kernelNanoseconds.count != exe.plan.kernels.count {
                return "\(exe.kernelNanoseconds.count) kernel times for \(exe.plan.kernels.count) kernels"
            }
            return exe.kernelNanoseconds.reduce(0, +) > 0 ? nil : "no kernel took any time"
        }
    }
}
