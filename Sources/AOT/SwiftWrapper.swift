// OWNER: helper C. Contract stub, replaced by the real implementation.
enum SwiftWrapper {
    /// `NAME.swift`.
    static func source(_ layout: ArtifactLayout) -> String { "" }
}
