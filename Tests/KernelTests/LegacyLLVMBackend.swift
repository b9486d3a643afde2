import KilnIR
import KilnPasses
import KilnKernels
@testable import KilnCPU

// Today's CPUCompiler seen through the Backend protocol, until LLVMBackend replaces it (then this
// file goes).
struct LegacyLLVMBackend: Backend {
    let name = "llvm"
    var target: TargetDescription {
        TargetDescription(name: "llvm \(HostCPU.name)", vectorBytes: HostCPU.hasAVX512 ? 64 : 32, ownProducts: MatrixProducts.ownKernelAvailable)
    }

    func compile(_ f: Function, options: CompileOptions) throws -> any Executable {
        LegacyLLVMExecutable(try CPUCompiler.compile(f, options: CPUCompileOptions(
            keepLLVMIR: options.keepSource, keepAssembly: options.keepAssembly, profile: options.profile, fuse: options.fuse,
            shards: options.shards, memoryLimit: options.memoryLimit)))
    }
}

final class LegacyLLVMExecutable: Executable {
    let exe: CPUExecutable
    init(_ exe: CPUExecutable) { self.exe = exe }
    var backendName: String { "llvm" }
    var function: Function { exe.function }
    var plan: KernelPlan { exe.plan }
    var stats: CompileStats {
        var s = CompileStats()
        s.emitMs = exe.stats.emitMs
        s.optimizeMs = exe.stats.optimizeMs
        s.loadMs = exe.stats.jitMs
        s.shards = exe.stats.shards
        s.source = exe.stats.llvmIR
        s.assembly = exe.stats.assembly
        return s
    }
    var resultTypes: [TensorType] { exe.resultTypes }
    var arenaBytes: Int { exe.arenaBytes }
    var kernelNanoseconds: [UInt64] { exe.kernelNanoseconds }
    var profiledRuns: Int { exe.profiledRuns }
    func run(inputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?, outputs: UnsafeMutablePointer<UnsafeMutableRawPointer?>?) throws {
        try exe.run(inputs: inputs, outputs: outputs)
    }
}
