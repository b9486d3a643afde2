import KilnIR
import KilnPasses

// OWNER: helper O. Contract stub, replaced by the real implementation.
extension CPUTarget {
    /// The target `kiln compile --target TRIPLE --cpu CPU` names (nil: the host's triple; the
    /// host's CPU for the host's triple, a generic CPU for another), validated against LLVM.
    public static func resolve(triple: String?, cpu: String?) throws -> CPUTarget {
        guard triple == nil, cpu == nil else { throw KilnError.unimplemented("cross targets are not resolved yet") }
        return .host
    }

    /// What the planner assumes for an artifact on this CPU: every float32 product on Kiln's own
    /// kernel (no OpenBLAS in an artifact).
    public var artifactDescription: TargetDescription {
        var d = description
        d.ownProducts = true
        d.ownProductRange = 0...Int.max
        return d
    }
}
