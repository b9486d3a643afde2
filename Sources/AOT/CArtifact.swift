import KilnIR
import KilnPasses

// OWNER: helper C. Contract stub, replaced by the real implementation.
enum CArtifact {
    /// What the planner assumes for the portable C file.
    static let description = TargetDescription(name: "c99 artifact", vectorBytes: 32, ownProducts: true, ownProductRange: 0...Int.max,
                                               parallelThreshold: Int.max)
    /// The whole artifact as one C99 file.
    static func source(_ layout: ArtifactLayout) throws -> String {
        throw KilnError.unimplemented("C artifacts are not written yet")
    }
}
