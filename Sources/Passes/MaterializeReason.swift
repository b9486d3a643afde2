/// Why the plan gave a value a buffer and a kernel of its own instead of computing it inside its
/// consumers' loops. `description` is the sentence `KILN_DEBUG=2` prints after "own kernel because".
public enum MaterializeReason: Hashable, Sendable, CustomStringConvertible {
    /// A result of the function: it is written to the caller's buffer.
    case fetchedResult
    /// A matrix product is a call of its own (a library or Kiln's kernel), not an element rule.
    case matrixProduct
    /// Matrix products read their operands from memory.
    case productOperand
    /// Image patches run as a loop nest over (n, oh, ow, kh, kw, c), which needs no index division.
    case patchesGatheredOnce
    /// Reductions (and argmax, windows, unpatches) read many elements for each of theirs.
    case reductionResult
    /// A concat of more than `KernelPlan.inlineConcatOperandsLimit` operands, written operand by operand.
    case wideConcat(operands: Int)
    /// An elementwise value with this many users, each of which would compute it again.
    case severalUsers(Int)
    /// A costly op (exp, log, pow, ...) read through a broadcast that would repeat it `times` times.
    case recomputedByBroadcast(op: String, times: Int)
    /// Every value gets a kernel when fusion is off.
    case fusionOff
    /// Fusing it would make a kernel's expression deeper than `KernelPlan.fusedDepthLimit`.
    case fusedTooDeep
    /// A variable write's value that reads the variable through an index map.
    case readsOverwrittenVariable
    /// A check that a variable write's loop would evaluate: it runs before the write.
    case checkBeforeWrite
    /// A variable read still needed after a later write of the variable: copied before the write.
    case readAfterWrite
    /// A variable write `v -= s * dot(a, b)` computed by the product accumulating into the variable.
    case stateUpdateByProduct
    /// The image of a convolution that reads it in place (`TargetDescription.directConvolutions`).
    case convolutionInput

    public var description: String {
        switch self {
        case .fetchedResult: return "fetched result"
        case .matrixProduct: return "matrix product kernel"
        case .productOperand: return "operand of a matrix product needs a buffer"
        case .patchesGatheredOnce: return "image patches are gathered once"
        case .reductionResult: return "reduction result is read by many elements"
        case .wideConcat(let n): return "concat of \(n) operands is written one operand at a time"
        case .severalUsers(let n): return "\(n) users would each recompute it"
        case .recomputedByBroadcast(let op, let times): return "its \(op) would be recomputed \(times) times by a broadcast"
        case .fusionOff: return "fusion is off"
        case .fusedTooDeep: return "fused expression would be deeper than \(KernelPlan.fusedDepthLimit) ops"
        case .readsOverwrittenVariable: return "reads the variable it overwrites through an index map"
        case .checkBeforeWrite: return "a failed check must stop the run before the variable is written"
        case .readAfterWrite: return "read is used after a later write of the same variable"
        case .stateUpdateByProduct: return "state update computed by its matrix product (v -= s * product)"
        case .convolutionInput: return "a convolution reads its image in place"
        }
    }
}
