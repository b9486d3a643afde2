import KilnIR

// OWNER: helper O. Contract stub, replaced by the real implementation.
enum ObjectArtifact {
    /// The artifact's ELF object for `layout.spec.target` and whether it calls the C runtime.
    static func write(_ layout: ArtifactLayout) throws -> (bytes: [UInt8], callsRuntime: Bool) {
        throw KilnError.unimplemented("object artifacts are not written yet")
    }
}
