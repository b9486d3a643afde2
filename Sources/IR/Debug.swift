import Foundation

/// `KILN_DEBUG` levels: 1 compile summary, 2 (reserved for per-kernel times), 3 IR after each
/// pass, 4 the kernels as rendered (optimised LLVM IR, or C), 5 assembly. Read once; a level of 0 costs nothing at run time.
/// In the IR module so every layer (the code caches, the OpenCL backend, the session) reads the
/// one level and writes its lines one way.
public enum Debug {
    public static let level: Int = Int(ProcessInfo.processInfo.environment["KILN_DEBUG"] ?? "") ?? 0
    /// Constants of more elements than this show as their type and count in logged IR.
    public static let constantElements = 64

    public static func log(_ s: String) {
        FileHandle.standardError.write(Data(("kiln: " + s + "\n").utf8))
    }
}
