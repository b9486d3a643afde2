import XCTest
import KilnIR
import KilnPasses
@testable import KilnCPU
import KilnKernels

/// Seeded random graphs of elementwise, broadcast, reduce, pad, concat, slice and transpose ops,
/// each compiled fused and unfused, must match the reference evaluator. This is what keeps
/// fusion honest: any index-map or liveness mistake shows up as a mismatch here.
final class RandomGraphTests: XCTestCase {
    struct RNG {
        var source: SplitMix64
        mutating func next() -> UInt64 { source.next() }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
    }

    /// Builds a random function over two rank-2 feeds; every op keeps values in a small range.
    func randomFunction(_ seed: UInt64) throws -> Function {
        var r = RNG(source: SplitMix64(seed: seed))
        var b = FunctionBuilder(name: "g\(seed)")
        let shapes = [[r.int(4) + 2, r.int(5) + 2], [r.int(3) + 2, r.int(4) + 3]]
        var pool = [b.addParam("a", kind: .feed, type: TensorType(.float32, shapes[0])),
                    b.addParam("b", kind: .feed, type: TensorType(.float32, shapes[1]))]
        for _ in 0..<(r.int(10) + 4) {
            let x = r.pick(pool)
            let t = b.type(of: x)
            var v: Int
            switch r.int(9) {
            case 0: v = try b.emit(.unary(r.pick([.tanh, .sigmoid, .abs, .neg, .exp])), [x])
                if case .unary(.exp) = b.function.body.last!.op { v = try b.emit(.unary(.tanh), [v]) }
            case 1:
                let y = pool.filter { b.type(of: $0) == t }.randomElementSeeded(&r) ?? x
                v = try b.emit(.binary(r.pick([.add, .sub, .mul, .max, .min])), [x, y])
            case 2:
                let c = b.scalar(Double(r.int(5)) * 0.25 - 0.5, .float32)
                v = try b.emit(.binary(r.pick([.add, .mul, .max])), [x, try b.broadcast(c, to: t.shape)])
            case 3 where t.rank == 2:
                v = try b.emit(.transpose(perm: [1, 0]), [x])
            case 4:
                let lo = t.shape.map { _ in r.int(2) }, hi = t.shape.map { _ in r.int(2) }
                let mode: PadMode = t.shape.allSatisfy({ $0 >= 3 }) ? r.pick(PadMode.allCases) : .constant
                v = try b.emit(.pad(low: lo, high: hi, mode: mode), [x, b.scalar(0.5, .float32)])
            case 5 where t.shape.allSatisfy({ $0 >= 2 }):
                v = try b.emit(.slice(start: t.shape.map { _ in r.int(2) }, strides: t.shape.map { _ in 1 }, shape: t.shape.map { $0 - 1 }), [x])
            case 6 where t.rank == 2:
                let axis = r.int(2)
                v = try b.emit(.concat(axis: axis), [x, x])
            case 7 where t.rank == 2:
                let axis = r.int(2)
                let red = try b.emit(.reduce(r.pick([.sum, .max]), axes: [axis]), [x])
                // Broadcast back so later ops keep a matrix to work on.
                v = try b.emit(.broadcast(shape: t.shape, dims: [1 - axis]), [red])
            case 8 where t.rank == 2:
                v = try b.emit(.reshape(shape: [t.shape[1], t.shape[0]]), [x])
            default:
                v = try b.emit(.unary(.tanh), [x])
            }
            pool.append(v)
        }
        // Fetch the last value and one other, so some values have two users.
        b.setResults([pool.last!, pool[pool.count / 2]])
        return b.function
    }

    func testTwoHundredRandomGraphsMatchTheReferenceFusedAndUnfused() throws {
        var failures = 0
        for seed in UInt64(1)...200 {
            var f = try randomFunction(seed)
            try PassManager.standard().run(&f)
            let inputs = try f.params.map { p in
                try Tensor(shape: p.type.shape, scalars: (0..<p.type.elementCount).map { Float(($0 * 29 + Int(seed)) % 17) / 8 - 1 })
            }
            let want = try ReferenceEvaluator.run(f, parameters: inputs).results
            for fuse in [true, false] {
                let exe = try LLVMBackend().compile(f, options: CompileOptions(fuse: fuse))
                var p = inputs
                let got = try exe.run(&p)
                for (g, w) in zip(got, want) {
                    let bad = g.shape != w.shape || (0..<w.elementCount).contains { abs(g.double(at: $0) - w.double(at: $0)) > 1e-5 * max(1, abs(w.double(at: $0))) }
                    if bad {
                        failures += 1
                        XCTFail("seed \(seed) fuse=\(fuse) differs:\n\(Printer.print(f))")
                    }
                }
            }
        }
        print("random graphs: \(400 - failures) passed, \(failures) failed")
    }
}

extension Array {
    func randomElementSeeded(_ r: inout RandomGraphTests.RNG) -> Element? { isEmpty ? nil : self[r.int(count)] }
}
