import CLLVM
import CKilnRT
import KilnIR
import Foundation

/// The process-wide ORC LLJIT. Each executable adds one module under its own resource tracker,
/// so dropping the executable frees its code.
final class JIT: @unchecked Sendable {
    static let shared: JIT = {
        do { return try JIT() } catch { fatalError("cannot start the LLVM JIT: \(error)") }
    }()

    let jit: LLVMOrcLLJITRef
    let triple: String
    let dataLayout: String
    private let lock = NSLock()
    private var counter = 0

    private init() throws {
        // One worker per core; an OpenBLAS call and a pool job never run at the same time.
        // KILN_THREADS overrides the core count (e.g. 1 to share a machine).
        let threads = Int(ProcessInfo.processInfo.environment["KILN_THREADS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount
        kiln_pool_start(Int32(max(1, threads)))
        LLVMInitializeNativeTarget()
        LLVMInitializeNativeAsmPrinter()
        LLVMInitializeNativeAsmParser()
        let builder = LLVMOrcCreateLLJITBuilder()
        let tmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(try TargetMachine.create())
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, tmb)
        var j: LLVMOrcLLJITRef?
        try check(LLVMOrcCreateLLJIT(&j, builder))
        jit = j!
        triple = String(cString: LLVMOrcLLJITGetTripleString(jit))
        dataLayout = String(cString: LLVMOrcLLJITGetDataLayoutStr(jit))

        let main = LLVMOrcLLJITGetMainJITDylib(jit)
        // libm and friends come from the process.
        var gen: LLVMOrcDefinitionGeneratorRef?
        try check(LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit), nil, nil))
        LLVMOrcJITDylibAddGenerator(main, gen)
        // BLAS and runtime helpers are bound to exact addresses, never looked up by name.
        var pairs = (BLAS.shared.symbols + RuntimeHelpers.symbols).map { name, addr in
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

    /// Links object files (the JIT takes ownership of the buffers) and returns the address of
    /// `symbol` and the tracker that owns them all.
    func add(objects: [LLVMMemoryBufferRef], symbol: String) throws -> (UInt64, LLVMOrcResourceTrackerRef) {
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
        return (addr, rt)
    }

    func remove(_ rt: LLVMOrcResourceTrackerRef) {
        _ = LLVMOrcResourceTrackerRemove(rt)
        LLVMOrcReleaseResourceTracker(rt)
    }
}

func check(_ err: LLVMErrorRef?) throws {
    guard let err else { return }
    let msg = LLVMGetErrorMessage(err)!
    defer { LLVMDisposeErrorMessage(msg) }
    throw KilnError.internalError("LLVM: \(String(cString: msg))")
}

enum TargetMachine {
    /// A target machine for this host's exact CPU and features, at the highest optimisation level.
    static func create() throws -> LLVMTargetMachineRef {
        let triple = LLVMGetDefaultTargetTriple()!
        defer { LLVMDisposeMessage(triple) }
        var target: LLVMTargetRef?
        var err: UnsafeMutablePointer<CChar>?
        if LLVMGetTargetFromTriple(triple, &target, &err) != 0 {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("LLVM target: \(String(cString: err!))")
        }
        return LLVMCreateTargetMachine(target, triple, HostCPU.name, HostCPU.featureString,
                                       LLVMCodeGenLevelAggressive, LLVMRelocDefault, LLVMCodeModelJITDefault)
    }
}
