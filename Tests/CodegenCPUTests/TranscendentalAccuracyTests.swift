import XCTest
import Foundation
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// The vectorisable float32 exp/log/tanh/log1p against double-precision libm over wide ranges.
final class TranscendentalAccuracyTests: XCTestCase {
    func maxRelativeError(_ op: UnaryOp, _ xs: [Float], _ truth: (Double) -> Double) throws -> Double {
        var b = FunctionBuilder(name: "acc")
        let p = b.addParam("x", kind: .feed, type: TensorType(.float32, [xs.count]))
        b.setResults([try b.emit(.unary(op), [p])])
        let exe = try LLVMBackend().compile(b.function)
        var params = [try Tensor(shape: [xs.count], scalars: xs)]
        let got = try exe.run(&params)[0].scalars(as: Float.self)
        var worst = 0.0
        for (x, y) in zip(xs, got) {
            let want = Double(Float(truth(Double(x))))
            if want.isNaN { XCTAssertTrue(y.isNaN, "\(op)(\(x)) = \(y), want NaN"); continue }
            if want.isInfinite { XCTAssertEqual(Double(y), want, "\(op)(\(x))"); continue }
            let err = abs(Double(y) - want) / max(abs(want), Double(Float.leastNormalMagnitude))
            worst = max(worst, err)
        }
        return worst
    }

    func spread(_ lo: Float, _ hi: Float, _ n: Int = 20000) -> [Float] { (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) } }

    func testExpIsWithinFourUlpAcrossItsRange() throws {
        XCTAssertLessThan(try maxRelativeError(.exp, spread(-87, 88) + [0, -0.0, .infinity, -.infinity, .nan, 100, -200], Foundation.exp), 5e-7)
    }

    func testLogIsWithinFourUlpIncludingSubnormals() throws {
        let xs = spread(1e-6, 10) + spread(10, 1e6) + [Float.leastNonzeroMagnitude, Float.leastNormalMagnitude / 1000, 0, -1, .infinity, .nan, 1]
        XCTAssertLessThan(try maxRelativeError(.log, xs, Foundation.log), 5e-7)
    }

    func testTanhAndLog1pStayAccurate() throws {
        XCTAssertLessThan(try maxRelativeError(.tanh, spread(-12, 12) + [1e-5, -1e-5, 0, .nan, .infinity], Foundation.tanh), 5e-7)
        XCTAssertLessThan(try maxRelativeError(.log1p, spread(-0.99, 5) + [1e-7, -1e-7, 1e-3, 0], Foundation.log1p), 5e-7)
    }

    /// Distance in float32 steps (ulps) between two floats of the same sign or zero.
    func ulps(_ a: Float, _ b: Float) -> Int64 {
        func ordered(_ x: Float) -> Int64 { let i = Int64(Int32(bitPattern: x.bitPattern)); return i < 0 ? Int64(Int32.min) - i : i }
        return abs(ordered(a) - ordered(b))
    }

    func testErfAndErfcAreWithinTwoUlpOfLibm() throws {
        // Every 211th float from 0 to 12 (erf is 1 and erfc underflows beyond), both signs, and specials.
        var xs: [Float] = []
        for bits in stride(from: UInt32(0), to: Float(12).bitPattern, by: 211) { let x = Float(bitPattern: bits); xs += [x, -x] }
        xs += [.infinity, -.infinity, .nan, 2.5, -2.5, 2.4999998, 1e-40, -0.0]
        for (op, truth) in [(UnaryOp.erf, Foundation.erf), (.erfc, Foundation.erfc)] as [(UnaryOp, (Double) -> Double)] {
            var b = FunctionBuilder(name: "erf")
            let p = b.addParam("x", kind: .feed, type: TensorType(.float32, [xs.count]))
            b.setResults([try b.emit(.unary(op), [p])])
            var params = [try Tensor(shape: [xs.count], scalars: xs)]
            let got = try LLVMBackend().compile(b.function).run(&params)[0].scalars(as: Float.self)
            var worst: (Int64, Float) = (0, 0)
            for (x, y) in zip(xs, got) {
                let want = Float(truth(Double(x)))
                if want.isNaN { XCTAssertTrue(y.isNaN, "\(op)(\(x)) = \(y)"); continue }
                let d = ulps(y, want)
                if d > worst.0 { worst = (d, x) }
            }
            XCTAssertLessThanOrEqual(worst.0, 2, "\(op) is \(worst.0) ulp off at \(worst.1)")
        }
    }
}
