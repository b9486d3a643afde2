import KilnIR
import KilnPasses

/// The debugger's instrumentation (CompileOptions.countNonFinite): after each kernel, a small
/// function counts the NaN and infinite elements of the kernel's floating-point output into the
/// kernel's slot of a counter array (`constants[plan.constants.count + 1]`, one i64 per plan
/// kernel). A run then says which kernel first made a non-finite value without any tensor
/// leaving the arena; the debugger names the node inside that kernel's fusion group afterwards.
extension KernelWriter {
    /// The buffers kernel `k` leaves its values in (each variable of shared writes) with their
    /// dtypes, those that are floating-point tensors the counter can read (none for result
    /// copies and inline values).
    func countedOutputs(_ k: KernelPlan.Kernel) -> [(buffer: Int, dtype: DType, count: Int)] {
        let outputs: [(buffer: Int, value: Int)]
        switch k {
        case .writes(let ws): outputs = ws.map { ($0.variable, $0.value) }
        case .accumulatedProduct(let w, let variable, _, _): outputs = [(variable, w)]
        case .resultCopies: return []
        default:
            guard let v = k.value else { return [] }
            outputs = [(v, v)]
        }
        return outputs.compactMap { buffer, value in
            guard let t = types[value] ?? types[buffer], t.dtype.isFloatingPoint, t.elementCount > 0, plan.storage[buffer] != nil,
                  plan.storage[buffer] != .inline else { return nil }
            return (buffer, t.dtype, t.elementCount)
        }
    }

    /// The function counting kernel `n`'s non-finite outputs, run once after its other parts.
    func nonFiniteCountPart(_ k: KernelPlan.Kernel, _ n: Int, entryName: String) -> KernelPart? {
        guard countNonFinite else { return nil }
        let outputs = countedOutputs(k)
        guard !outputs.isEmpty else { return nil }
        return KernelPart(name: "\(entryName)_k\(n)_nonfinite", run: .once) { [self] in
            let count = r.slot(.i64, initial: c64(0))
            for out in outputs {
                // A half value is counted as the float32 it converts to (exactly).
                let p = base(out.buffer)!, t = out.dtype.isHalf ? ScalarType.f32 : ScalarType.register(out.dtype)
                let infinity = r.constant(float: .infinity, t)
                // An integer sum: the target may vectorise it freely.
                r.loop(count: out.count, hints: LoopHints(vectorize: true)) { i in
                    let raw = load(p, i, out.dtype)
                    let x = out.dtype.isHalf ? cast(raw, out.dtype, .float32) : raw
                    let bad = r.not(r.fcmp(.olt, r.math(.fabs, [x]), infinity))
                    r.store(r.int(.add, r.load(count), r.convert(.zext, bad, to: .i64)), count)
                }
            }
            let counters = r.tableEntry(r.parameter(3), plan.constants.count + 1)
            r.store(r.int(.add, r.load(counters, c64(n), .i64), r.load(count)), counters, c64(n))
        }
    }
}
