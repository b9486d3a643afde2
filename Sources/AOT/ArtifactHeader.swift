// OWNER: helper C. Contract stub, replaced by the real implementation.
enum ArtifactHeader {
    /// `NAME.h`; `library` is the runtime library's file name when there is one (for the link line).
    static func source(_ layout: ArtifactLayout, library: String?) -> String { "" }
}
