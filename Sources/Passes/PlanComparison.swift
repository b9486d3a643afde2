import KilnIR
#if canImport(Glibc)
import Glibc
#endif

// THROWAWAY: compares the typed plan with the old one (KILN_PLAN_COMPARE=1). Deleted with LegacyKernelPlan.
extension KernelPlan {
    static let compareWithLegacy = getenv("KILN_PLAN_COMPARE") != nil

    /// Appends one line per compared plan to the file KILN_PLAN_COMPARE names.
    static func logComparison(_ line: String) {
        guard let path = getenv("KILN_PLAN_COMPARE"), let file = fopen(path, "a") else { return }
        fputs(line + "\n", file)
        fclose(file)
    }

    func legacyMismatch(_ f: Function, fuse: Bool, target: TargetDescription) -> String? {
        let old = LegacyKernelPlan(f, fuse: fuse, perImageProducts: target.ownProducts)
        var problems: [String] = []
        func check(_ ok: Bool, _ what: @autoclosure () -> String) { if !ok { problems.append(what()) } }
        func s(_ x: LegacyKernelPlan.Storage) -> Storage {
            switch x {
            case .param(let i): return .param(i)
            case .variable(let i): return .variable(param: i)
            case .constant(let i): return .constant(i)
            case .arena(let o): return .arena(offset: o)
            case .result(let r): return .result(r)
            case .inline: return .inline
            }
        }
        check(old.storage.mapValues(s) == storage, "storage")
        let newKernels = kernels.filter { $0.value != nil }
        check(old.kernels == newKernels.map { $0.value! }, "kernel order \(old.kernels) vs \(newKernels)")
        let copies = kernels.compactMap { k -> [ResultCopy]? in if case .resultCopies(let c) = k { return c } else { return nil } }.first ?? []
        check(old.resultCopies.map { ResultCopy(result: $0.result, value: $0.value) } == copies, "result copies")
        check(copies.isEmpty || kernels.last.map { if case .resultCopies = $0 { return true } else { return false } } == true, "copies last")
        check(old.reasons == reasons.mapValues(\.description), "reasons \(old.reasons) vs \(reasons.mapValues(\.description))")
        check(old.constants == constants, "constants")
        check(old.fused == fused, "fused")
        check(old.views == views, "views")
        check(old.arenaBytes == arenaBytes, "arena \(old.arenaBytes) vs \(arenaBytes)")
        check(old.checks == checks && old.faultRecord == faultRecord, "checks")
        let inst = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        // Each kernel's case against the old dictionaries.
        var seen = (acc: 0, perImage: 0, patch: 0, grad: 0, split: 0, blocked: 0)
        for k in newKernels {
            let v = k.value!
            let i = inst[v]!
            switch k {
            case .accumulatedProduct(let w, let variable, let dot, let scale):
                seen.acc += 1
                check(old.accumulatedProducts[w].map { $0.dot == dot && $0.scale == scale } == true && variable == i.operands[0], "acc \(w)")
            case .write(let w, let variable, let value):
                check(old.accumulatedProducts[w] == nil && i.op == .varWrite && variable == i.operands[0] && value == i.operands[1], "write \(w)")
            case .perImageProduct(let u, let d):
                seen.perImage += 1
                check(old.productsPerImage[u] == d, "perImage \(u)")
            case .unpatches:
                check(old.productsPerImage[v] == nil, "unpatches \(v)")
                if case .unpatches = i.op {} else { check(false, "unpatches op") }
            case .patchProduct(let d, let blocks):
                seen.patch += 1
                check(old.patchProducts[d].map { $0.patches == blocks.patches && $0.rows == blocks.rows && $0.count == blocks.count } == true, "patch \(d)")
            case .patchGradient(let d, let blocks, let parts, let scratch):
                seen.grad += 1
                check(old.patchGradients[d].map { $0.blocks.patches == blocks.patches && $0.blocks.rows == blocks.rows && $0.blocks.count == blocks.count && $0.parts == parts && $0.scratch == scratch } == true, "grad \(d)")
            case .product:
                check(old.patchProducts[v] == nil && old.patchGradients[v] == nil, "product \(v)")
                if case .dot = i.op {} else { check(false, "product op") }
            case .splitReduction(let r, let parts, let scratch, let wide):
                seen.split += 1
                check(old.splitReductions[r].map { $0.parts == parts && $0.scratch == scratch } == true, "split \(r)")
                check((wide != nil) == LegacyKernelPlan.isLeadingFloatSum(i, types: f.typeTable()), "split wide")
                if let wide { check(wide.offset == scratch + parts * i.type!.byteCount && wide.blockRows == 128, "split wide offset") }
            case .blockedReduction(let r, let wide):
                seen.blocked += 1
                check(old.blockedReductions[r] == wide.offset && wide.blockRows == 128, "blocked \(r)")
            case .reduction:
                check(old.splitReductions[v] == nil && old.blockedReductions[v] == nil, "reduction \(v)")
                if case .reduce = i.op {} else { check(false, "reduction op") }
            case .wideConcat:
                check(LegacyKernelPlan.writesByOperand(i), "wide concat")
            case .loop:
                switch i.op {
                case .varWrite, .dot, .reduce, .argReduce, .reduceWindow, .unpatches, .patches: check(false, "loop of \(i.op.mnemonic)")
                case .concat: check(!LegacyKernelPlan.writesByOperand(i), "loop of wide concat")
                default: break
                }
            case .argReduction: if case .argReduce = i.op {} else { check(false, "argReduction op") }
            case .windowReduction: if case .reduceWindow = i.op {} else { check(false, "window op") }
            case .patches: if case .patches = i.op {} else { check(false, "patches op") }
            case .resultCopies: check(false, "copies")
            }
        }
        // Dictionaries whose entries have kernels in the old plan (patterns of un-materialised dots do not).
        check(seen.acc == old.accumulatedProducts.count, "acc count")
        check(seen.perImage == old.productsPerImage.count, "perImage count")
        check(seen.patch == old.patchProducts.keys.filter { old.kernels.contains($0) }.count, "patch count")
        check(seen.grad == old.patchGradients.keys.filter { old.kernels.contains($0) }.count, "grad count")
        check(seen.split == old.splitReductions.count && seen.blocked == old.blockedReductions.count, "reduction counts")
        Self.logComparison("@\(f.name) fuse=\(fuse) own=\(target.ownProducts) body=\(f.body.count) kernels=\(kernels.count) arena=\(arenaBytes) \(problems.isEmpty ? "same" : "DIFFERENT")")
        return problems.isEmpty ? nil : "plan of @\(f.name) differs from the old plan: " + problems.joined(separator: "; ")
    }
}
