import CKilnRT
import Foundation
import KilnIR
import KilnKernels
import KilnPasses

/// Compiles IR functions to C99: KernelWriter renders the plan through `CStyleRenderer(.c99)`
/// into one file (every kernel and the entry), the system C compiler builds it into a shared
/// object, and `dlopen` loads it. The code reaches the C runtime only through the table
/// `kiln_bind` receives (`kiln_runtime_functions()`), so the host program exports nothing.
public struct CBackend: Backend {
    public var name: String { "c" }
    public let target: TargetDescription
    public let compiler: CCompiler

    /// The compiler `KILN_CC` names (else `cc`); throws `unavailable` when there is none.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        compiler = try CCompiler(environment: environment)
        // The code runs on this machine (-march=native): the host's vectors and, where the runtime
        // has it, Kiln's own float32 product on the pool, as for LLVM; KILN_GEMM as there.
        let vectorBytes = kiln_cpu_has_avx512() != 0 ? 64 : kiln_cpu_has_avx2_fma() != 0 ? 32 : 16
        let gemm = environment["KILN_GEMM"]
        var d = TargetDescription(name: "c99 \(compiler.command[0])", vectorBytes: vectorBytes,
                                  ownProducts: kiln_sgemm_available() != 0 && gemm != "blas")
        d.directConvolutions = d.ownProducts
        if gemm == "kiln" { d.ownProductRange = 0...Int.max }
        target = d
    }

    public func compile(_ f: Function, options: CompileOptions = CompileOptions()) throws -> any Executable {
        let t0 = DispatchTime.now()
        var plan = KernelPlan(f, fuse: options.fuse, target: target)
        var stats = CompileStats()
        let batchRows = BatchRows.plan(options.batch, &plan, stats: &stats)
        // Each value fits the limit (lowering checks), but the values live at once may not.
        if plan.arenaBytes > options.memoryLimit {
            throw KilnError.resourceExhausted("OOM when allocating the arena of '\(f.name)': \(plan.arenaBytes) bytes for the values live at once, above the memory limit of \(options.memoryLimit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
        }
        // Each executable is its own shared object, loaded RTLD_LOCAL: names need not be unique.
        let entryName = "kiln_" + f.name.filter { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
        let renderer = CStyleRenderer(.c99, title: "@\(f.name)")
        let writer = KernelWriter(renderer: renderer, function: f, plan: plan, target: target, profile: options.profile)
        writer.countNonFinite = options.countNonFinite
        writer.batch = batchRows
        writer.write(entryName: entryName)
        guard renderer.refusals.isEmpty else {
            throw KilnError.internalError("C99 cannot express \(renderer.refusals.joined(separator: "; "))")
        }
        let source = renderer.source
        let t1 = DispatchTime.now()
        // KILN_DEBUG=5 shows the assembly of a compile now, so it compiles.
        let object = try compiler.load(source: source, cache: options.keepAssembly ? nil : CodeCache.shared(kind: "c", root: options.codeCacheRoot))
        let bind = unsafeBitCast(try object.symbol("kiln_bind"), to: (@convention(c) (UnsafeRawPointer?) -> Void).self)
        bind(UnsafeRawPointer(kiln_runtime_functions()))
        let entry = unsafeBitCast(try object.symbol(entryName), to: NativeExecutable.Entry.self)
        stats.emitMs = Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6
        stats.optimizeMs = object.compileMs
        stats.loadMs = object.loadMs
        if object.fromCache { stats.objectsFromDisk = 1 } else { stats.objectsCompiled = 1 }
        if options.keepSource { stats.source = source }
        if options.keepAssembly { stats.assembly = try compiler.assembly(source: source) }
        // The executable holds the shared object; releasing it dlcloses (its files are gone already).
        return try NativeExecutable(entry: entry, function: f, plan: plan, stats: stats, backendName: name, profile: options.profile,
                                    countNonFinite: options.countNonFinite, batchRows: batchRows, release: { withExtendedLifetime(object) {} })
    }
}
