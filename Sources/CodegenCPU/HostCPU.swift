import CLLVM

/// The host CPU as LLVM sees it: code is compiled for exactly this machine.
public enum HostCPU {
    public static let name: String = {
        let p = LLVMGetHostCPUName()!
        defer { LLVMDisposeMessage(p) }
        return String(cString: p)
    }()

    /// LLVM's feature string, e.g. "+avx2,+avx512f,-sse4a,...".
    public static let featureString: String = {
        let p = LLVMGetHostCPUFeatures()!
        defer { LLVMDisposeMessage(p) }
        return String(cString: p)
    }()

    public static let features: Set<String> = Set(
        featureString.split(separator: ",").filter { $0.hasPrefix("+") }.map { String($0.dropFirst()) })

    public static var hasAVX512: Bool { features.contains("avx512f") }
}
