import KilnIR

/// What an op's lowering sees: the IR builder, the node, and its inputs already lowered.
/// A class, so that `ctx.type(try ctx.value(0))` sees the read `value` just emitted (a struct
/// receiver would be copied before its argument runs).
public final class LoweringContext {
    public var builder: FunctionBuilder
    public let op: Operation
    let inputValues: [LoweredValue]
    /// The op's hidden counter variable, for ops with `hasCounter`.
    public let counter: Int?
    /// Seed for ops whose graph and op seeds are both unset (different in every session).
    public let sessionSeed: UInt64
    /// Evaluates a primitive on constants (the reference evaluator, injected by the runtime).
    public let evaluator: ConstantEvaluator?
    /// What `fold` has found, shared by all ops of one lowering.
    let folds: FoldCache

    init(builder: FunctionBuilder, op: Operation, inputValues: [LoweredValue], counter: Int?, sessionSeed: UInt64, evaluator: ConstantEvaluator?,
         folds: FoldCache = FoldCache()) {
        self.builder = builder
        self.op = op
        self.inputValues = inputValues
        self.counter = counter
        self.sessionSeed = sessionSeed
        self.evaluator = evaluator
        self.folds = folds
    }

    public var attrs: [String: AttrValue] { op.attrs }

    /// The IR value of input `i`; a variable input is read here, in program order.
    public func value(_ i: Int) throws -> Int {
        switch inputValues[i] {
        case .value(let v): return v
        case .variable(let p): return try builder.emit(.varRead, [p])
        }
    }

    /// Input `i` passed along unread. For ops TensorFlow implements by handing on the input
    /// tensor itself (Identity, StopGradient): given a variable, TensorFlow 1 hands on the
    /// variable's buffer, so their consumers see the variable as of when they run, not as of
    /// when the forwarding op ran. `<name>/read` is such an Identity.
    public func forward(_ i: Int) -> LoweredValue { inputValues[i] }

    /// The variable parameter behind ref input `i`.
    public func variable(_ i: Int) throws -> Int {
        guard case .variable(let p) = inputValues[i] else {
            throw KilnError.invalidArgument("input \(i) of '\(op.name)' (op: '\(op.type)') must be a variable, got '\(op.inputs[i].name)'")
        }
        return p
    }

    public func type(_ id: Int) -> TensorType { builder.type(of: id) }

    /// Input `i` as a compile-time constant (axes, shapes, paddings).
    /// Shape arithmetic (Shape -> StridedSlice -> Pack -> Reshape, gradient shapes, ...) is known
    /// once feed shapes are: such inputs are folded here with the evaluator the runtime provides.
    public func constant(_ i: Int) throws -> Tensor {
        if let t = staticValue(of: op.inputs[i]) { return try checkedInteger(t, i) }
        if case .value(let v) = inputValues[i], let t = try fold(v) { return try checkedInteger(t, i) }
        throw KilnError.unimplemented("input \(i) of '\(op.name)' (op: '\(op.type)') must be a constant known when the graph is compiled, got '\(op.inputs[i].name)' (\(op.inputs[i].op.type))")
    }

    /// A folded shape or axis must have the integer dtype and the form the op's definition asks
    /// for, now that its concrete shape is known (at graph construction it may not have been).
    private func checkedInteger(_ t: Tensor, _ i: Int) throws -> Tensor {
        if let entry = IntegerInput.entry(op.type, input: i, of: op.inputs.count) {
            try entry.check(dtype: t.dtype, shape: Shape(t.shape), explicitType: nil, input: op.inputs[i].name, node: op.name, op: op.type)
        }
        return t
    }

    /// The value of IR value `v` if it depends only on constants. Each value is evaluated at most
    /// once per lowering (the cache), walking operands with an explicit stack, not recursion:
    /// the values a shape depends on may form a chain as long as the graph.
    func fold(_ v: Int) throws -> Tensor? {
        let f = builder.function
        var stack = [v]
        while let x = stack.last {
            if folds.values[x] != nil { stack.removeLast(); continue }
            guard x >= f.params.count else { folds.values[x] = .some(nil); continue }
            let inst = f.body[x - f.params.count]
            if case .constant(let t) = inst.op { folds.values[x] = t; continue }
            guard let evaluator, inst.op.producesValue, !inst.op.hasSideEffects, inst.op != .varRead else { folds.values[x] = .some(nil); continue }
            if case .random = inst.op { folds.values[x] = .some(nil); continue }
            // Operands in order; the first that does not fold settles it (the rest are not evaluated).
            var operands: [Tensor] = [], blocked = false, pending: Int?
            for o in inst.operands {
                switch folds.values[o] {
                case nil: pending = o
                case .some(nil): blocked = true
                case .some(.some(let t)): operands.append(t)
                }
                if pending != nil || blocked { break }
            }
            if let pending { stack.append(pending); continue }
            let value: Tensor? = blocked ? nil : try evaluator(inst.op, operands)
            folds.values[x] = .some(value)
        }
        return folds.values[v]!
    }

    public func error(_ why: String) -> KilnError {
        KilnError.invalidArgument("\(why) for '\(op.name)' (op: '\(op.type)')")
    }
}

public typealias ConstantEvaluator = @Sendable (Op, [Tensor]) throws -> Tensor

/// IR values `LoweringContext.fold` has settled: their constant value, or nil where they do not
/// fold.
final class FoldCache {
    var values: [Int: Tensor?] = [:]
}

/// A pruned subgraph lowered to one IR function, with the map from its parameters back to the
/// graph: feeds first, in `feeds` order, then variables.
public struct LoweredGraph {
    public var function: Function
    public var feeds: [Output]
    public var variables: [Operation]
    /// Variables whose first access in the function is a read: they must be initialised.
    public var readBeforeWrite: Set<Operation>
    /// Hidden state (random counters) that starts at zero instead of needing an initialiser.
    public var autoInitialized: Set<Operation>
    /// The graph tensor each instruction was lowered for: a node's output for the value it
    /// returns, its first output for the steps in between (what the debugger names).
    public var origins: [Int: Output] = [:]
}

public enum Lowering {
    /// The ops that must run to compute `fetches` and run `targets` when `feeds` are given.
    /// With `within` (one device's segment of a run), ops outside it are left out: their values
    /// are fed, and control edges to them are kept by running the segments in order.
    public static func prune(fetches: [Output], feeds: Set<Output>, targets: [Operation], within: Set<Operation>? = nil) -> [Operation] {
        var needed = Set<Operation>()
        var stack = fetches.filter { !feeds.contains($0) }.map(\.op) + targets
        while let op = stack.popLast() {
            if let within, !within.contains(op) { continue }
            guard needed.insert(op).inserted else { continue }
            for i in op.inputs where !feeds.contains(i) { stack.append(i.op) }
            stack.append(contentsOf: op.controlInputs)
        }
        return needed.sorted { $0.id < $1.id }
    }

    /// Every value a node computes must fit the memory limit, also one fused into its consumer
    /// (a reduction over a declared 4 TB broadcast allocates nothing but would compute for hours).
    /// `buffer` is the largest buffer of the device the node runs on (OpenCL's
    /// CL_DEVICE_MAX_MEM_ALLOC_SIZE) and what sets it.
    static func checkSize(_ t: TensorType, node op: Operation, limit: Int, buffer: (bytes: Int, reason: String)? = nil) throws {
        let size = "\(t.checkedByteCount.map { "\($0) bytes" } ?? "more than 2^63 bytes")"
        if t.byteCount > limit {
            throw KilnError.resourceExhausted("OOM when allocating tensor with shape\(t.shape) and type \(t.dtype.name) (\(size)) for node '\(op.name)' (op: '\(op.type)'): above the memory limit of \(limit) bytes (SessionConfig.memoryLimit, KILN_MEMORY_LIMIT)")
        }
        if let buffer, t.byteCount > buffer.bytes {
            throw KilnError.resourceExhausted("OOM when allocating tensor with shape\(t.shape) and type \(t.dtype.name) (\(size)) for node '\(op.name)' (op: '\(op.type)'): above the largest buffer of \(buffer.bytes) bytes (\(buffer.reason))")
        }
    }

    /// Lowers the subgraph for (fetches, feeds, targets) with concrete feed types (restricted to
    /// the ops `within`, if given). `bufferLimit`: the largest buffer of the device the ops run on.
    public static func lower(fetches: [Output], feeds: [(Output, TensorType)], targets: [Operation], name: String = "main",
                             sessionSeed: UInt64 = 0, evaluator: ConstantEvaluator? = nil, memoryLimit: Int = .max,
                             within: Set<Operation>? = nil, bufferLimit: (bytes: Int, reason: String)? = nil) throws -> LoweredGraph {
        let feedSet = Set(feeds.map(\.0))
        let ops = prune(fetches: fetches, feeds: feedSet, targets: targets, within: within)
        let order = try executionOrder(ops, feeds: feedSet)
        var b = FunctionBuilder(name: name)
        var lowered: [Output: LoweredValue] = [:]
        for (o, t) in feeds { lowered[o] = .value(b.addParam(o.name, kind: .feed, type: t)) }
        var variables: [Operation] = []
        let isVariable = { (op: Operation) in OpRegistry.def(op.type)?.isVariable == true }
        for op in ops where isVariable(op) {
            guard let shape = op.attrs["shape"]?.shape?.concrete, let dtype = op.attrs["dtype"]?.type else {
                throw KilnError.invalidArgument("variable '\(op.name)' needs a fully defined shape, got \(op.attrs["shape"]?.shape?.description ?? "none")")
            }
            try checkSize(TensorType(dtype, shape), node: op, limit: memoryLimit, buffer: bufferLimit)
            variables.append(op)
            lowered[op.output(0)] = .variable(param: b.addParam(op.name, kind: .variable, type: TensorType(dtype, shape)))
        }
        let folds = FoldCache()
        var origins: [Int: Output] = [:]
        var counters: [Operation: Int] = [:]
        for op in ops where OpRegistry.def(op.type)?.hasCounter == true {
            variables.append(op)
            counters[op] = b.addParam(op.name + "/counter", kind: .variable, type: TensorType(.int64, []))
        }
        for op in order where !isVariable(op) {
            let def = OpRegistry.def(op.type)!
            let inputs = try op.inputs.map { i -> LoweredValue in
                guard let v = lowered[i] else { throw KilnError.internalError("input '\(i.name)' of '\(op.name)' was not lowered") }
                return v
            }
            // A shape unknown when the node was made is known now: the shape function checks it
            // (ranks, dimensions, windows) as TensorFlow's kernels would, before the lowering
            // relies on it.
            if op.inputs.contains(where: { !$0.shape.isFullyDefined }) {
                let shapes = inputs.map { v -> Shape in
                    switch v {
                    case .value(let id), .variable(param: let id): return Shape(b.type(of: id).shape)
                    }
                }
                let ctx = InferenceContext(nodeName: op.name, opType: op.type, inputs: op.inputs, attrs: op.attrs, concreteShapes: shapes)
                _ = try def.infer(ctx)
            }
            let firstNew = b.function.body.count
            let wide = try HalfLowering.widened(op, inputs, &b)
            var ctx = LoweringContext(builder: b, op: op, inputValues: wide ?? inputs, counter: counters[op], sessionSeed: sessionSeed,
                                      evaluator: evaluator, folds: folds)
            // The context must hold the only reference to the function being built: a second one
            // here would make its first emit copy the whole body (quadratic over the graph).
            b = FunctionBuilder(name: name)
            var outs: [LoweredValue]
            do {
                do {
                    outs = try def.lower(&ctx)
                } catch where wide != nil {
                    // A lowering that insists on its inputs' declared half type gets them; the
                    // pass then computes it per primitive. (What it emitted before failing is pure and dead.)
                    ctx = LoweringContext(builder: ctx.builder, op: op, inputValues: inputs, counter: counters[op], sessionSeed: sessionSeed,
                                          evaluator: evaluator, folds: folds)
                    outs = try def.lower(&ctx)
                }
            } catch let e as KilnError where !e.message.contains("'\(op.name)'") {
                // Errors from the IR builder (a value too large, a bad primitive) name no node.
                throw KilnError(e.code, "\(e.message) (node '\(op.name)' (op: '\(op.type)'))")
            }
            b = ctx.builder
            if wide != nil { outs = try HalfLowering.rounded(outs, op, &b) }
            for inst in b.function.body[firstNew...] {
                if let t = inst.type { try checkSize(t, node: op, limit: memoryLimit, buffer: bufferLimit) }
            }
            for (k, v) in outs.enumerated() where !feedSet.contains(op.output(k)) { lowered[op.output(k)] = v }
            if !op.outputSpecs.isEmpty {
                var returned: [Int: Int] = [:]
                for (k, v) in outs.enumerated() { if case .value(let id) = v { returned[id] = k } }
                for inst in b.function.body[firstNew...] { origins[inst.id] = op.output(returned[inst.id] ?? 0) }
            }
        }
        // A fetched variable (or a tensor forwarding one, like `<name>/read`) is read after the
        // whole run, as TensorFlow copies a fetched ref buffer out once the step is done.
        var results: [Int] = []
        for f in fetches {
            switch lowered[f] {
            case .value(let v)?: results.append(v)
            case .variable(let p)?: results.append(try b.emit(.varRead, [p]))
            case nil: throw KilnError.internalError("fetch '\(f.name)' was not lowered")
            }
        }
        // A CheckNumerics whose value nothing reads (a target, or a control input: what
        // addCheckNumericsOps makes) must still run: its value becomes an extra result after the
        // fetches, so dead-code elimination keeps the check. Callers take the first
        // `fetches.count` results.
        var read = Set<Output>(fetches)
        for op in ops { read.formUnion(op.inputs) }
        for op in order where op.type == "CheckNumerics" && !read.contains(op.output(0)) {
            if case .value(let v)? = lowered[op.output(0)] { results.append(v) }
        }
        b.setResults(results)
        let function = b.function
        var first: [Int: Op] = [:]
        for inst in function.body where inst.op == .varRead || inst.op == .varWrite {
            if first[inst.operands[0]] == nil { first[inst.operands[0]] = inst.op }
        }
        let base = feeds.count
        let readFirst = Set(variables.enumerated().filter { first[base + $0.offset] == .varRead }.map(\.element))
        return LoweredGraph(function: function, feeds: feeds.map(\.0), variables: variables,
                            readBeforeWrite: readFirst.subtracting(counters.keys), autoInitialized: Set(counters.keys), origins: origins)
    }
}
