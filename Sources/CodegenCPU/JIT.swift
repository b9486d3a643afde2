import CLLVM
import CKilnRT
import KilnIR
import Foundation

/// The process-wide ORC LLJIT, for the host CPU. Each executable adds its objects under its own
/// resource tracker, so dropping the executable frees its code.
final class JIT: @unchecked Sendable {
    static let shared: JIT = {
        do { return try JIT() } catch { fatalError("cannot start the LLVM JIT: \(error)") }
    }()

    let jit: LLVMOrcLLJITRef
    private let lock = NSLock()
    private var counter = 0

    private init() throws {
        initializeNativeTarget()
        let builder = LLVMOrcCreateLLJITBuilder()
        let tmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(try CPUTarget.host.targetMachine())
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, tmb)
        var j: LLVMOrcLLJITRef?
        try check(LLVMOrcCreateLLJIT(&j, builder))
        jit = j!

        let main = LLVMOrcLLJITGetMainJITDylib(jit)
        // libm and friends come from the process.
        var gen: LLVMOrcDefinitionGeneratorRef?
        try check(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil))
        LLVMOrcJITDylibAddGenerator(main, gen)
        // The C runtime's functions are bound to their addresses here, never looked up by name
        // (an executable need not export them).
        let api = kiln_runtime_functions()!.pointee
        func address<F>(_ f: F?) -> UnsafeRawPointer { unsafeBitCast(f!, to: UnsafeRawPointer.self) }
        let runtime: [(String, UnsafeRawPointer)] = [
            ("kiln_parallel_for", address(api.parallel_for)), ("kiln_sgemm", address(api.sgemm)),
            ("kiln_blas_sgemm", address(api.blas_sgemm)), ("kiln_blas_dgemm", address(api.blas_dgemm)),
            ("kiln_fault_record", address(api.fault_record)), ("kiln_ipow_i64", address(api.ipow_i64)),
            ("kiln_profile_tick", address(api.profile_tick)), ("kiln_hgemm", address(api.hgemm)),
            ("kiln_conv2d_f32", address(api.conv2d_f32)), ("kiln_conv2d_filter_gradient_f32", address(api.conv2d_filter_gradient_f32)),
        ]
        var pairs = runtime.map { name, addr in
            LLVMOrcCSymbolMapPair(
                Name: LLVMOrcLLJITMangleAndIntern(jit, name),
                Sym: LLVMJITEvaluatedSymbol(
                    Address: LLVMOrcExecutorAddress(UInt(bitPattern: addr)),
                    Flags: LLVMJITSymbolFlags(GenericFlags: UInt8(LLVMJITSymbolGenericFlagsExported.rawValue | LLVMJITSymbolGenericFlagsCallable.rawValue), TargetFlags: 0)))
        }
        try check(LLVMOrcJITDylibDefine(main, LLVMOrcAbsoluteSymbols(&pairs, pairs.count)))
    }

    func uniqueName(_ base: String) -> String {
        lock.lock()
        defer { lock.unlock() }
        counter += 1
        return "\(base)_\(counter)"
    }

    /// Code linked now, by entry symbol: its address, the tracker that owns it and how many
    /// executables use it. Executables whose code is named by its hash share one copy.
    private var linked: [String: (address: UInt64, tracker: LLVMOrcResourceTrackerRef, users: Int)] = [:]

    /// The address of `symbol` when code defining it is linked already, counting one more user.
    func acquire(_ symbol: String) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        return use(symbol)
    }

    /// `acquire` with the lock held.
    private func use(_ symbol: String) -> UInt64? {
        guard var entry = linked[symbol] else { return nil }
        entry.users += 1
        linked[symbol] = entry
        return entry.address
    }

    /// Links object files (the JIT takes ownership of the buffers) and returns the address of
    /// `symbol`, whose one user the caller is (`release` when done). When another thread linked
    /// the same code meanwhile, the objects are dropped and its copy is used.
    func add(objects: [LLVMMemoryBufferRef], symbol: String) throws -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        if let address = use(symbol) {
            objects.forEach { LLVMDisposeMemoryBuffer($0) }
            return address
        }
        let rt = LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(jit))!
        for (k, obj) in objects.enumerated() {
            if let err = LLVMOrcLLJITAddObjectFileWithRT(jit, rt, obj) {
                for rest in objects[(k + 1)...] { LLVMDisposeMemoryBuffer(rest) }
                remove(rt)
                try check(err)
            }
        }
        var addr: LLVMOrcExecutorAddress = 0
        do { try check(LLVMOrcLLJITLookup(jit, &addr, symbol)) } catch { remove(rt); throw error }
        linked[symbol] = (addr, rt, 1)
        return addr
    }

    /// One user of `symbol`'s code is done; the last one unloads it.
    func release(_ symbol: String) {
        lock.lock()
        defer { lock.unlock() }
        guard var entry = linked[symbol] else { return }
        entry.users -= 1
        if entry.users > 0 {
            linked[symbol] = entry
        } else {
            linked[symbol] = nil
            remove(entry.tracker)
        }
    }

    private func remove(_ rt: LLVMOrcResourceTrackerRef) {
        _ = LLVMOrcResourceTrackerRemove(rt)
        LLVMOrcReleaseResourceTracker(rt)
    }
}

/// LLVM's native target, code generator and assembly parser, registered once per process, and
/// `llvmOptions` set (LLVM's options are process-wide; every module Kiln compiles, JIT or
/// artifact, makes its target machine after this).
private let nativeTargetInitialized: Bool = {
    LLVMInitializeNativeTarget()
    LLVMInitializeNativeAsmPrinter()
    LLVMInitializeNativeAsmParser()
    // Kept for the process: LLVM holds on to the program name it is given.
    var arguments = (["kiln"] + llvmOptions).map { UnsafePointer(strdup($0)) }
    LLVMParseCommandLineOptions(Int32(arguments.count), &arguments, nil)
    return true
}()

/// Options that make LLVM's work on Kiln's kernels cheaper at no cost to the code: the MLP
/// training step's first compile 36 -> 30 ms and Adam's 61 -> 49 (medians of 21 compiles), every
/// `kiln bench` workload unchanged within noise. A vectorised loop gets no second, narrower
/// vector loop for its remainder (kernels' trip counts are compile-time constants or pool
/// ranges of thousands of elements: the remainder is a few scalar iterations), and code
/// generation skips loop strength reduction (a tenth to a fifth of it on these small loops,
/// whose addressing is already an induction variable times a constant stride). Instructions are
/// selected the fast way where that can (the loops' scalar control; vector arithmetic falls
/// back to the DAG selector): the digits step's code generation a fifth cheaper, its first
/// compile 78 -> 74 ms, every step the same.
let llvmOptions = ["-enable-epilogue-vectorization=false", "-disable-lsr", "-fast-isel"]

func initializeNativeTarget() { _ = nativeTargetInitialized }

func check(_ err: LLVMErrorRef?) throws {
    guard let err else { return }
    let msg = LLVMGetErrorMessage(err)!
    defer { LLVMDisposeErrorMessage(msg) }
    throw KilnError.internalError("LLVM: \(String(cString: msg))")
}
