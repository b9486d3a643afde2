import CLLVM
import Foundation
import KilnIR
import KilnKernels
import KilnPasses

/// A relocatable object file LLVM wrote for a target, and the C runtime functions it calls.
public struct ObjectCode: Sendable {
    public var bytes: [UInt8]
    /// The runtime functions (`kiln_sgemm`, unprefixed) the optimised code still calls.
    public var runtimeCalls: Set<String>
}

/// Ahead-of-time objects: one LLVM module holding `KernelWriter`'s kernels and entry, the plan's
/// constants and their table, and glue written by the caller as LLVM IR text, optimised as
/// `LLVMBackend` optimises and written as an object for any target (not loaded here).
public enum ObjectEmitter {
    /// What the module's parts are named and which of its symbols stay global.
    public struct Names {
        /// The module and source-file name (the object holds no other name of its origin).
        public var module: String
        /// The entry `KernelWriter` writes, which the glue calls.
        public var entry: String
        /// The constant table (`ptr [constants..., null]`), which the glue passes to the entry.
        public var constantTable: String
        /// Put before every external `kiln_*` function the module calls (`NAME_kiln_sgemm`).
        public var runtimePrefix: String
        /// The functions that stay global; every other definition becomes internal.
        public var exported: Set<String>

        public init(module: String, entry: String, constantTable: String, runtimePrefix: String, exported: Set<String>) {
            self.module = module
            self.entry = entry
            self.constantTable = constantTable
            self.runtimePrefix = runtimePrefix
            self.exported = exported
        }
    }

    /// Writes the object. `glue` gets the runtime functions the kernels call (unprefixed) and
    /// returns LLVM IR text that may declare `names.entry`, `names.constantTable` and any
    /// `kiln_*` runtime function by their plain names, and must define `names.exported`.
    public static func emit(_ function: Function, plan: KernelPlan, target: CPUTarget, description: TargetDescription, names: Names,
                            glue: (_ kernelRuntimeCalls: Set<String>) throws -> String) throws -> ObjectCode {
        kiln_llvm_initialize_all_targets()
        let ctx = LLVMContextCreate()!
        defer { LLVMContextDispose(ctx) }
        let diagnostics = Diagnostics()
        LLVMContextSetDiagnosticHandler(ctx, { info, box in
            guard let info, let box, LLVMGetDiagInfoSeverity(info) == LLVMDSError, let d = LLVMGetDiagInfoDescription(info) else { return }
            Unmanaged<Diagnostics>.fromOpaque(box).takeUnretainedValue().errors.append(String(cString: d))
            LLVMDisposeMessage(d)
        }, Unmanaged.passUnretained(diagnostics).toOpaque())

        let tm = try target.targetMachine(relocation: LLVMRelocPIC)
        defer { LLVMDisposeTargetMachine(tm) }
        let data = LLVMCreateTargetDataLayout(tm)!
        defer { LLVMDisposeTargetData(data) }
        let layoutString = LLVMCopyStringRepOfTargetData(data)!
        defer { LLVMDisposeMessage(layoutString) }

        let renderer = LLVMRenderer(context: ctx, moduleName: names.module, cpu: target)
        KernelWriter(renderer: renderer, function: function, plan: plan, target: description).write(entryName: names.entry)
        let module = try renderer.finish()
        defer { LLVMDisposeModule(module) }
        LLVMSetSourceFileName(module, names.module, names.module.utf8.count)
        LLVMSetTarget(module, target.triple)
        LLVMSetDataLayout(module, layoutString)
        addConstants(plan.constants, table: names.constantTable, module: module, context: ctx,
                     bigEndian: LLVMByteOrder(data) == LLVMBigEndian)
        let kernelCalls = runtimeCalls(module, prefix: "")

        // The glue: parsed in the same context and linked in (the kernels module keeps its name).
        let text = try glue(kernelCalls)
        var glueModule: LLVMModuleRef?
        var err: UnsafeMutablePointer<CChar>?
        let buffer = text.withCString { LLVMCreateMemoryBufferWithMemoryRangeCopy($0, text.utf8.count, "\(names.module)_glue") }
        // LLVMParseIRInContext takes the buffer.
        guard LLVMParseIRInContext(ctx, buffer, &glueModule, &err) == 0, let glueModule else {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("the artifact glue is invalid LLVM IR: \(err.map { String(cString: $0) } ?? "no message")")
        }
        LLVMSetTarget(glueModule, target.triple)
        LLVMSetDataLayout(glueModule, layoutString)
        guard LLVMLinkModules2(module, glueModule) == 0 else {   // takes glueModule
            throw KilnError.internalError("cannot link the artifact glue: \(diagnostics.errors.joined(separator: "; "))")
        }

        try bind(module, names: names, target: target)
        if LLVMVerifyModule(module, LLVMReturnStatusAction, &err) != 0 {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("the artifact's LLVM module is invalid: \(String(cString: err!))")
        }
        LLVMDisposeMessage(err)
        err = nil

        try LLVMBackend.optimise(module, for: tm, passes: LLVMBackend.kernelPasses)

        var obj: LLVMMemoryBufferRef?
        guard LLVMTargetMachineEmitToMemoryBuffer(tm, module, LLVMObjectFile, &err, &obj) == 0, let obj else {
            defer { LLVMDisposeMessage(err) }
            throw KilnError.internalError("LLVM code generation for \(target.triple) failed: \(err.map { String(cString: $0) } ?? diagnostics.errors.joined(separator: "; "))")
        }
        defer { LLVMDisposeMemoryBuffer(obj) }
        guard diagnostics.errors.isEmpty else {
            throw KilnError.internalError("LLVM code generation for \(target.triple) failed: \(diagnostics.errors.joined(separator: "; "))")
        }
        let bytes = Array(UnsafeRawBufferPointer(start: LLVMGetBufferStart(obj), count: LLVMGetBufferSize(obj)))
        return ObjectCode(bytes: bytes, runtimeCalls: runtimeCalls(module, prefix: names.runtimePrefix))
    }

    /// Errors LLVM reports through the context while the object is made.
    private final class Diagnostics {
        var errors: [String] = []
    }

    /// Each constant as a private, read-only, 64-byte aligned global, and the table the entry
    /// reads them from: the constants in plan order, then the profile slots (null: an artifact
    /// does not profile).
    private static func addConstants(_ constants: [Tensor], table: String, module: LLVMModuleRef, context ctx: LLVMContextRef, bigEndian: Bool) {
        let i8 = LLVMInt8TypeInContext(ctx)!, ptr = LLVMPointerTypeInContext(ctx, 0)!
        var entries: [LLVMValueRef?] = []
        for (k, c) in constants.enumerated() {
            var bytes = c.withUnsafeBytes { Array($0.prefix(c.byteCount)) }
            // Kiln's tensors hold host (little-endian) bytes; a big-endian target reads each
            // element the other way round.
            let width = c.dtype.byteSize
            if bigEndian, width > 1 {
                for start in stride(from: 0, to: bytes.count - width + 1, by: width) { bytes[start..<start + width].reverse() }
            }
            let initializer = bytes.isEmpty ? LLVMConstArray(i8, nil, 0)! : bytes.withUnsafeBufferPointer { p in
                p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { LLVMConstStringInContext(ctx, $0, UInt32(p.count), 1)! }
            }
            let g = LLVMAddGlobal(module, LLVMArrayType(i8, UInt32(bytes.count)), "\(table)_\(k)")!
            LLVMSetInitializer(g, initializer)
            LLVMSetGlobalConstant(g, 1)
            LLVMSetLinkage(g, LLVMPrivateLinkage)
            LLVMSetAlignment(g, 64)
            entries.append(g)
        }
        entries.append(LLVMConstPointerNull(ptr))
        let g = LLVMAddGlobal(module, LLVMArrayType(ptr, UInt32(entries.count)), table)!
        LLVMSetInitializer(g, LLVMConstArray(ptr, &entries, UInt32(entries.count)))
        LLVMSetGlobalConstant(g, 1)
    }

    /// After linking: every definition but the exported functions becomes internal (so only
    /// they are global symbols of the object), every external `kiln_*` function gets the
    /// artifact's prefix, and the glue gets the kernels' CPU attributes.
    private static func bind(_ module: LLVMModuleRef, names: Names, target: CPUTarget) throws {
        let wideVectors = target.artifactVectorBytes == 64
        var defined: Set<String> = []
        var f = LLVMGetFirstFunction(module)
        while let fn = f {
            f = LLVMGetNextFunction(fn)
            let name = valueName(fn)
            if LLVMIsDeclaration(fn) != 0 {
                if name.hasPrefix("kiln_") { LLVMSetValueName2(fn, names.runtimePrefix + name, (names.runtimePrefix + name).utf8.count) }
                continue
            }
            defined.insert(name)
            if names.exported.contains(name) {
                LLVMSetLinkage(fn, LLVMExternalLinkage)
                LLVMSetVisibility(fn, LLVMDefaultVisibility)
            } else {
                LLVMSetLinkage(fn, LLVMInternalLinkage)
            }
            var attributes: [(String, String)] = []
            if LLVMGetStringAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), "target-cpu", 10) == nil {
                attributes += [("target-cpu", target.name), ("target-features", target.features)]
            }
            // As the JIT does for an AVX-512 host, also when a named CPU implies AVX-512.
            if wideVectors, LLVMGetStringAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), "prefer-vector-width", 19) == nil {
                attributes.append(("prefer-vector-width", "512"))
            }
            let ctx = LLVMGetModuleContext(module)
            for (k, v) in attributes {
                LLVMAddAttributeAtIndex(fn, LLVMAttributeIndex(bitPattern: -1), LLVMCreateStringAttribute(ctx, k, UInt32(k.utf8.count), v, UInt32(v.utf8.count)))
            }
        }
        let missing = names.exported.subtracting(defined)
        guard missing.isEmpty else {
            throw KilnError.internalError("the artifact glue does not define \(missing.sorted().joined(separator: ", "))")
        }
        var g = LLVMGetFirstGlobal(module)
        while let global = g {
            g = LLVMGetNextGlobal(global)
            if LLVMIsDeclaration(global) != 0 {
                throw KilnError.internalError("the artifact module uses the undefined global '\(valueName(global))'")
            }
            if LLVMGetLinkage(global) != LLVMPrivateLinkage { LLVMSetLinkage(global, LLVMInternalLinkage) }
        }
    }

    /// Names of the `kiln_*` functions (after `prefix`) the module declares and still calls.
    private static func runtimeCalls(_ module: LLVMModuleRef, prefix: String) -> Set<String> {
        var calls: Set<String> = []
        var f = LLVMGetFirstFunction(module)
        while let fn = f {
            f = LLVMGetNextFunction(fn)
            let name = valueName(fn)
            if LLVMIsDeclaration(fn) != 0, LLVMGetFirstUse(fn) != nil, name.hasPrefix(prefix + "kiln_") {
                calls.insert(String(name.dropFirst(prefix.count)))
            }
        }
        return calls
    }

    private static func valueName(_ v: LLVMValueRef) -> String {
        var n = 0
        guard let p = LLVMGetValueName2(v, &n) else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
    }
}
