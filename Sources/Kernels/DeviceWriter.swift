import KilnIR
import KilnPasses

/// A plan written for a device (a `TargetDescription` with `workItems`): every function of
/// `parts(of:)` becomes a `__kernel` launched over work items or work-groups, products become
/// launches of the device library's GEMM, and faults go to the arena's record through one
/// atomic. The renderer must be a `DeviceRenderer` (OpenCL C).
extension KernelWriter {
    /// The device program of the plan: its source and its launches in order. Throws when the
    /// function needs float64 and the device has no cl_khr_fp64.
    public func writeDeviceProgram(entryName: String) throws -> DeviceProgram {
        precondition(target.workItems, "a DeviceProgram is written for a work-item target, not \(target.name)")
        guard let device = r as? any DeviceRenderer & CStyleSource else {
            preconditionFailure("a DeviceProgram needs a device renderer (CStyleRenderer(.openCL))")
        }
        if !target.float64 { try refuseFloat64() }
        var launches: [DeviceLaunch] = []
        var library: Set<String> = []
        // Set once a launch may have recorded a fault: every later launch of ours checks first.
        var guarded = false
        for (n, k) in plan.kernels.enumerated() {
            let faults = mayFault(k)
            deviceChecks = []
            for p in parts(of: k, n, entryName: entryName) {
                switch p.run {
                case .library(let kernel, let arguments, let global):
                    // Library kernels cannot check the record; they never write a variable
                    // (products accumulated into variables are not planned for devices), so
                    // one running after a fault changes nothing the caller sees.
                    library.insert(kernel)
                    launches.append(DeviceLaunch(kernel: kernel, arguments: arguments, global: global, local: nil, planKernel: n, mayFault: false))
                case .items(let count):
                    guard count > 0 else { continue }
                    let g = target.elementGroupSize
                    deviceFunction(p.name, guarded: guarded) {
                        workItem = (device.workItem(.global(0)), count)
                        p.body()
                        precondition(workItem == nil, "\(p.name) has no loop nest over its work items")
                    }
                    launches.append(DeviceLaunch(kernel: p.name, arguments: device.lastFunctionParameters,
                                                 global: [(count + g - 1) / g * g], local: [g], planKernel: n, mayFault: faults))
                case .groups(let count):
                    guard count > 0 else { continue }
                    let g = target.reductionGroupSize
                    deviceFunction(p.name, guarded: guarded, p.body)
                    launches.append(DeviceLaunch(kernel: p.name, arguments: device.lastFunctionParameters,
                                                 global: [count * g], local: [g], planKernel: n, mayFault: faults))
                case .once, .rows, .batchRows, .batchBlocks:
                    preconditionFailure("\(p.name): a native run on a device")
                }
                if faults { guarded = true }
            }
            if faults && !deviceChecks.isEmpty, let record = plan.faultRecord {
                // One work item turns the record's key into site, position and value.
                deviceFunction("\(entryName)_k\(n)_fault", guarded: false) { writeFaultFinish(record) }
                launches.append(DeviceLaunch(kernel: "\(entryName)_k\(n)_fault", arguments: device.lastFunctionParameters,
                                             global: [1], local: [1], planKernel: n, mayFault: true))
            }
        }
        return DeviceProgram(source: device.source, launches: launches, libraryKernels: library, usesFloat64: device.usesFloat64)
    }

    /// Float64 tensors need cl_khr_fp64: name the first value (or parameter) that has one.
    func refuseFloat64() throws {
        for (k, p) in f.params.enumerated() where p.type.dtype == .float64 {
            throw KilnError.unimplemented("parameter \(k) of \(f.name) is float64, but the device \(target.name) has no cl_khr_fp64 (double precision)")
        }
        for i in f.body where i.type?.dtype == .float64 {
            throw KilnError.unimplemented("%\(i.id) (\(i.op.mnemonic)) of \(f.name) computes float64, but the device \(target.name) has no cl_khr_fp64 (double precision)")
        }
    }

    /// A `__kernel` of the program; after a launch that may have faulted it returns at once
    /// when the record holds a fault (its key is set), so nothing after the fault is written.
    func deviceFunction(_ name: String, guarded: Bool, _ body: () -> Void) {
        r.beginFunction(RFunction(name: name, ranged: false), exported: false, kernel: true)
        pointers = [:]
        faultSlots = []
        if guarded, let record = plan.faultRecord {
            let key = r.load(scratch(record, "fault"), c64(Self.faultKeySlot), .i64)
            r.ifThen(r.icmp(.ne, key, c64(0)), unlikely: true) { r.returnNow() }
        }
        body()
        precondition(faultSlots.isEmpty, "\(name): a device records faults through the record's key")
        r.endFunction()
    }

    // MARK: faults

    /// The record's 64-bit word (after kiln_fault's site, position, value and lock) that failing
    /// work items fold their (site, position) into with an atomic max of its complement: the
    /// lowest site, then the lowest position, wins whatever order work items run in.
    static let faultKeySlot = 4
    /// Bits of the key below the site: positions up to 2^48.
    static let faultPositionBits = 48

    /// Element `idx` of check `i` failed: fold it into the record's key.
    func recordDeviceFault(_ i: Instruction, _ c: Check, _ x: RValue, _ idx: Index) {
        guard !diagnosing, let offset = plan.faultRecord, let device = r as? any DeviceRenderer else { return }
        deviceChecks.insert(i.id)
        let site = plan.checks.firstIndex(of: i.id)! + 1
        let failed = checkFails(c, checkedValue(c, x, types[i.operands[0]]!.dtype), idx)
        r.ifThen(failed, unlikely: true) {
            let key = r.int(.or, c64(site << Self.faultPositionBits), idx.linear)
            device.atomicMaxUnsigned(scratch(offset, "fault"), c64(Self.faultKeySlot), r.not(key))
        }
    }

    /// The last launch of a kernel that may fault: when the key is set and the record is not,
    /// writes kiln_fault's site, position and the failing value (computed again at that
    /// position), as the native runtime's record holds them.
    func writeFaultFinish(_ offset: Int) {
        let record = scratch(offset, "fault")
        let site = r.load(record, c64(0), .i64), key = r.load(record, c64(Self.faultKeySlot), .i64)
        r.ifThen(r.int(.or, r.icmp(.ne, site, c64(0)), r.icmp(.eq, key, c64(0))), unlikely: false) { r.returnNow() }
        let k = r.not(key)
        let failedSite = r.int(.lshr, k, c64(Self.faultPositionBits))
        let position = r.int(.and, k, c64((1 << Self.faultPositionBits) - 1))
        for check in deviceChecks.sorted() {
            let s = plan.checks.firstIndex(of: check)! + 1
            let x = inst[check]!.operands[0], xt = types[x]!
            r.ifThen(r.icmp(.eq, failedSite, c64(s)), unlikely: false) {
                diagnosing = true
                // A finite check reports the kinds of this first failing element only.
                let c = { if case .check(let c) = inst[check]!.op { return c } else { preconditionFailure("plan check %\(check) is not a check") } }()
                let value = checkedValue(c, element(x, Index(linear: position, shape: xt.shape, writer: self)), xt.dtype)
                diagnosing = false
                r.store(value, record, c64(2))
                r.store(position, record, c64(1))
                r.store(c64(s), record, c64(0))
            }
        }
    }

    // MARK: products

    /// A float product whose operands have buffers: one launch of the library's GEMM
    /// (`kiln_gemm_f32`/`kiln_gemm_f64`), its batch through strides. Nil where the product
    /// takes the loop nest (integers, an operand computed inline, an empty inner dimension).
    func libraryProduct(_ i: Instruction) -> Run? {
        guard case .dot(let ta, let tb) = i.op else { preconditionFailure("product of \(i.op.mnemonic)") }
        let at = types[i.operands[0]]!, bt = types[i.operands[1]]!, t = i.type!
        guard t.dtype == .float32 || t.dtype == .float64 else { return nil }
        let rank = at.rank
        let (m, n) = (t.shape[rank - 2], t.shape[rank - 1])
        let k = ta ? at.shape[rank - 2] : at.shape[rank - 1]
        let batch = t.shape.dropLast(2).reduce(1, *)
        guard k > 0, let a = deviceBuffer(i.operands[0]), let b = deviceBuffer(i.operands[1]), let c = deviceBuffer(i.id) else { return nil }
        if m == 0 || n == 0 || batch == 0 {
            // Nothing to write: an empty loop nest (no launch).
            return .items(0)
        }
        let f32 = t.dtype == .float32
        let arguments: [DeviceArgument] = [
            .int32(ta ? 1 : 0), .int32(tb ? 1 : 0), .int64(Int64(m)), .int64(Int64(n)), .int64(Int64(k)),
            a.root, .int64(Int64(a.offset)), .int64(Int64(at.shape[rank - 1])), .int64(Int64(at.shape.suffix(2).reduce(1, *))),
            b.root, .int64(Int64(b.offset)), .int64(Int64(bt.shape[rank - 1])), .int64(Int64(bt.shape.suffix(2).reduce(1, *))),
            c.root, .int64(Int64(c.offset)), .int64(Int64(n)), .int64(Int64(m * n)),
            f32 ? .float32(1) : .float64(1), .int32(0),
        ]
        return .library(kernel: f32 ? "kiln_gemm_f32" : "kiln_gemm_f64", arguments: arguments, global: [n, m, batch])
    }

    /// The device buffer holding `v`'s elements and the element where they start, following
    /// views and in-place variable reads as `bufferPointer` does; nil for values computed inline.
    func deviceBuffer(_ v: Int) -> (root: DeviceArgument, offset: Int)? {
        var v = v
        let size = types[v]!.dtype.byteSize
        while true {
            switch plan.storage[v] {
            case .param(let i)?, .variable(param: let i)?: return (.input(i), 0)
            case .constant(let k)?: return (.constant(k), 0)
            case .result(let k)?: return (.output(k), 0)
            case .arena(let offset)?:
                precondition(offset % size == 0, "arena offsets are aligned")
                return (.arena, offset / size)
            case .inline?, nil:
                guard let i = inst[v] else { return nil }
                if i.op == .varRead { v = i.operands[0]; continue }
                if plan.views.contains(v) { v = i.operands[0]; continue }
                return nil
            }
        }
    }

    // MARK: concats

    /// Operands of a wide concat per device kernel: at most this many buffer parameters, well
    /// within the 1024 bytes of parameters every OpenCL device takes.
    static let concatOperandsPerKernel = 64

    /// A concat written one operand at a time, on a device: kernels of up to 64 operands, work
    /// item g storing element g of each of its kernel's operands that has one (thousands of
    /// operands are a few hundred kernels of one launch each, not a launch per operand).
    func deviceConcat(_ i: Instruction, _ name: String) -> [KernelPart] {
        let axis = concatAxis(i), t = i.type!
        var parts: [KernelPart] = []
        var offset = 0
        for start in stride(from: 0, to: i.operands.count, by: Self.concatOperandsPerKernel) {
            let operands = Array(i.operands[start..<min(start + Self.concatOperandsPerKernel, i.operands.count)])
            var offsets: [Int] = []
            for o in operands {
                offsets.append(offset)
                offset += types[o]!.shape[axis]
            }
            let count = operands.map { types[$0]!.elementCount }.max() ?? 0
            parts.append(KernelPart(name: "\(name)_\(start / Self.concatOperandsPerKernel)", run: .items(count)) { [self] in
                let gid = workItem!.index
                workItem = nil
                let out = base(i.id)!
                for (o, at) in zip(operands, offsets) {
                    let s = types[o]!.shape, n = s.reduce(1, *)
                    guard n > 0 else { continue }
                    r.ifThen(r.icmp(.slt, gid, c64(n)), unlikely: false) {
                        let idx = Index(linear: gid, shape: s, writer: self)
                        var multi = idx.multi
                        multi[axis] = r.int(.add, multi[axis], c64(at))
                        store(element(o, idx), out, Index(multi: multi, shape: t.shape, writer: self).linear, t.dtype)
                    }
                }
            })
        }
        return parts
    }

    // MARK: reductions

    /// Reductions over at most this many elements per output run one work item per output
    /// (in order); longer ones a work-group tree per output.
    static let serialReductionLimit = 64

    /// A reduction on a device: per output element, its inputs in order by one work item when
    /// few, else a work-group's tree.
    func deviceReduction(_ i: Instruction, _ name: String) -> [KernelPart] {
        guard case .reduce(let red, let axes) = i.op else { preconditionFailure("reduction of \(i.op.mnemonic)") }
        let x = i.operands[0], xt = types[x]!, t = i.type!
        let reduced = axes.map { xt.shape[$0] }, count = reduced.reduce(1, *)
        if count <= Self.serialReductionLimit {
            return [KernelPart(name: name, run: .items(t.elementCount)) { [self] in
                let out = base(i.id)!
                let acc = r.slot(.register(t.dtype), initial: nil)
                loopNest(t.shape) { o in
                    r.store(reduceIdentity(red, t.dtype), acc)
                    if count > 0 {
                        r.loop(count: count, hints: LoopHints()) { j in
                            r.store(binary(red.combiner, r.load(acc), reducedElement(i, o, j), t.dtype), acc)
                        }
                    }
                    store(r.load(acc), out, o.linear, t.dtype)
                }
            }]
        }
        return [KernelPart(name: name, run: .groups(t.elementCount)) { [self] in
            let device = r as! any DeviceRenderer
            let o = device.workItem(.group(0))
            let value = groupReduce(i, output: o, from: c64(0), count: c64(count), span: count)
            r.ifThen(r.icmp(.eq, device.workItem(.local(0)), c64(0)), unlikely: false) {
                store(value, base(i.id)!, o, t.dtype)
            }
        }]
    }

    /// A reduction to few outputs over many inputs: launch one computes, per output and part q,
    /// a work-group tree over the part's share of the inputs into slot q of the scratch; launch
    /// two combines each output's parts in order (the writer's parts sum, one work item each).
    func deviceSplitReduction(_ i: Instruction, _ name: String, parts: Int, scratch offset: Int) -> [KernelPart] {
        guard case .reduce(_, let axes) = i.op else { preconditionFailure("reduction of \(i.op.mnemonic)") }
        let xt = types[i.operands[0]]!, t = i.type!
        let count = axes.map { xt.shape[$0] }.reduce(1, *), outputs = t.elementCount
        let span = (count + parts - 1) / parts
        return [
            KernelPart(name: name, run: .groups(outputs * parts)) { [self] in
                let device = r as! any DeviceRenderer
                let g = device.workItem(.group(0))
                let o = r.int(.udiv, g, c64(parts)), q = r.int(.urem, g, c64(parts))
                let (first, end) = partRange(q, of: c64(count), parts: parts)
                let value = groupReduce(i, output: o, from: first, count: r.int(.sub, end, first), span: span)
                r.ifThen(r.icmp(.eq, device.workItem(.local(0)), c64(0)), unlikely: false) {
                    store(value, scratch(offset, "scratch\(i.id)"), r.int(.add, r.int(.mul, q, c64(outputs)), o), t.dtype)
                }
            },
            KernelPart(name: name + "_sum", run: .items(outputs)) { [self] in
                // The parts in order, one work item per output, in a rolled loop (unrolled, 64
                // NaN-aware maxima in a row take PoCL's compiler minutes).
                guard case .reduce(let red, _) = i.op else { return }
                let partials = scratch(offset, "scratch\(i.id)"), out = base(i.id)!
                let acc = r.slot(.register(t.dtype), initial: nil)
                loopNest(t.shape) { o in
                    r.store(load(partials, o.linear, t.dtype), acc)
                    r.loop(count: parts - 1, hints: LoopHints(keepRolled: true)) { q in
                        let at = r.int(.add, r.int(.mul, r.int(.add, q, c64(1)), c64(outputs)), o.linear)
                        r.store(binary(red.combiner, r.load(acc), load(partials, at, t.dtype), t.dtype), acc)
                    }
                    store(r.load(acc), out, o.linear, t.dtype)
                }
            },
        ]
    }

    /// Element j (row-major over the reduced axes) of output `o`'s inputs.
    func reducedElement(_ i: Instruction, _ o: Index, _ j: RValue) -> RValue {
        guard case .reduce(_, let axes) = i.op else { preconditionFailure("reduction of \(i.op.mnemonic)") }
        let x = i.operands[0], xt = types[x]!
        let kept = (0..<xt.rank).filter { !axes.contains($0) }
        let rIdx = Index(linear: j, shape: axes.map { xt.shape[$0] }, writer: self).multi
        var multi = [RValue](repeating: c64(0), count: xt.rank)
        for (k, a) in kept.enumerated() { multi[a] = o.multi[k] }
        for (k, a) in axes.enumerated() { multi[a] = rIdx[k] }
        return element(x, Index(multi: multi, shape: xt.shape, writer: self))
    }

    /// The work-group's reduction of inputs [first, first + count) of output `o` (a linear
    /// index), `count` at most `span`: work item l adds inputs l, l + G, l + 2G, ... in order,
    /// then the group's values are combined pairwise in local memory, halves first (a fixed
    /// association for a fixed group size G). Every work item gets the result.
    func groupReduce(_ i: Instruction, output o: RValue, from first: RValue, count: RValue, span: Int) -> RValue {
        guard case .reduce(let red, _) = i.op else { preconditionFailure("reduction of \(i.op.mnemonic)") }
        let device = r as! any DeviceRenderer
        let t = i.type!, g = target.reductionGroupSize
        let out = Index(linear: o, shape: t.shape, writer: self)
        let lid = device.workItem(.local(0))
        let acc = r.slot(.register(t.dtype), initial: reduceIdentity(red, t.dtype))
        let steps = (span + g - 1) / g
        if steps > 0 {
            r.loop(count: steps, hints: LoopHints(keepRolled: true)) { s in
                let j = r.int(.add, r.int(.mul, s, c64(g)), lid)
                r.ifThen(r.icmp(.slt, j, count), unlikely: false) {
                    r.store(binary(red.combiner, r.load(acc), reducedElement(i, out, r.int(.add, first, j)), t.dtype), acc)
                }
            }
        }
        let tree = device.localArray(.memory(t.dtype), count: g, name: "tree")
        store(r.load(acc), tree, lid, t.dtype)
        device.barrier()
        var half = g / 2
        while half >= 1 {
            r.ifThen(r.icmp(.slt, lid, c64(half)), unlikely: false) {
                let a = load(tree, lid, t.dtype), b = load(tree, r.int(.add, lid, c64(half)), t.dtype)
                store(binary(red.combiner, a, b, t.dtype), tree, lid, t.dtype)
            }
            device.barrier()
            half /= 2
        }
        return load(tree, c64(0), t.dtype)
    }
}

/// A renderer whose output is one translation unit (the program's source).
public protocol CStyleSource {
    var source: String { get }
    /// Whether the source needs `cl_khr_fp64`.
    var usesFloat64: Bool { get }
}
