import XCTest
import KilnIR
import KilnPasses
import KilnKernels

/// A gradient-descent step computed inside the product (the product accumulates into the
/// variable) matches the reference evaluator's separate product, scale and subtraction, for
/// every layout and for sizes that go to Kiln's own product and to OpenBLAS.
final class ProductKernelTests: XCTestCase {
    func testAccumulatedDescentStepsMatchTheReference() throws {
        var cases: [KernelCase] = []
        for (ta, tb) in [(true, false), (false, false), (false, true), (true, true)] {
            for (m, n, k) in [(96, 40, 64), (300, 200, 128), (5, 3, 2)] {
                let a = ta ? [k, m] : [m, k], b = tb ? [n, k] : [k, n]
                let f = try KernelCase.parse("""
                func @f(%0: f32[\(m),\(n)] var "w", %1: f32[\(a[0]),\(a[1])] feed "a", %2: f32[\(b[0]),\(b[1])] feed "b", %3: f32[] feed "lr") {
                  %4 = var.read %0
                  %5 = broadcast %3 shape=[\(m),\(n)] dims=[]
                  %6 = dot %1, %2 transpose_a=\(ta) transpose_b=\(tb)
                  %7 = mul %6, %5
                  %8 = sub %4, %7
                  %9 = var.write %0, %8
                  return
                }
                """, passes: .standard)
                func seq(_ count: Int, _ s: Int) -> [Float] { (0..<count).map { Float(($0 * 29 + s) % 83) / 83 - 0.5 } }
                let inputs = [try Tensor(shape: [m, n], scalars: seq(m * n, 1)), try Tensor(shape: a, scalars: seq(a[0] * a[1], 2)),
                              try Tensor(shape: b, scalars: seq(b[0] * b[1], 3)), try Tensor(shape: [], scalars: [Float(0.25)])]
                cases.append(KernelCase("descent step m=\(m) n=\(n) k=\(k) transpose_a=\(ta) transpose_b=\(tb)", f, inputs, inspect: { exe, target in
                    if target.workItems {
                        // A device's library product takes alpha as an argument: the step is a
                        // product, then the write.
                        guard case .product(6)? = exe.plan.kernels.first, case .writes? = exe.plan.kernels.last, exe.plan.kernels.count == 2 else {
                            return "planned \(exe.plan.kernels), expected a product and the variable's write"
                        }
                        return nil
                    }
                    guard case .accumulatedProduct? = exe.plan.kernels.first, exe.plan.kernels.count == 1 else {
                        return "planned \(exe.plan.kernels), expected one product accumulating into the variable"
                    }
                    return nil
                }))
            }
        }
        BackendRunner.run("products: accumulated descent steps", cases)
    }
}
