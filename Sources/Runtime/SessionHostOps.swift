import KilnIR
import KilnFrontend

/// How the session answers one op it computes itself: its outputs, or nil to leave it to
/// compiled code this run.
typealias SessionOpHandler = @Sendable (Session, KilnFrontend.Operation, [Output: Tensor]) throws -> [Tensor]?

/// The ops a session computes on the host instead of compiling: ops with a `hostKernel`
/// (data-dependent output shapes), questions about the session's variable store, checkpoint
/// I/O, and the string plumbing around it (compiled code has no strings).
extension Session {
    /// How the host answers an op, looked up once per host plan: a per-record run of an input
    /// pipeline looked up each op's registry entry (a struct of a dozen references) and its
    /// handler by name several times a run.
    enum HostAnswer {
        /// A collective op (HorovodAllreduce): answered by the step's collective round.
        case collective
        case session(SessionOpHandler)
        case kernel(@Sendable ([Tensor], [String: AttrValue]) throws -> [Tensor])
        /// A compiled op the host answers in some cases (see hostOutputs).
        case compiledOp
        case none
    }

    static func hostAnswer(_ op: KilnFrontend.Operation) throws -> HostAnswer {
        // Called for the host plan's candidates only (SessionHostPlan.swift): ops mayRunOnHost allows.
        guard let def = OpRegistry.def(op.type) else { return .none }
        if let service = def.sessionService {
            if service == .collective { return .collective }
            guard let handler = Session.sessionHandlers[op.type] else {
                throw KilnError.internalError("'\(op.name)': \(op.type) is answered by the session (\(service.rawValue)), which has no handler for it")
            }
            return .session(handler)
        }
        if let kernel = def.hostKernel { return .kernel(kernel) }
        switch op.type {
        case "Const", "Identity", "PlaceholderWithDefault", "Reshape", "RandomShuffle": return .compiledOp
        default: return .none
        }
    }

    /// The outputs of `op` (answered as its host plan says) if the session computes it on the
    /// host, nil if it is compiled. `feeds` holds the tensors already known (fed, or computed on
    /// the host earlier in graph order).
    func hostOutputs(of op: KilnFrontend.Operation, answer: HostAnswer, feeds: [Output: Tensor]) throws -> [Tensor]? {
        switch answer {
        case .none: return nil
        case .collective: throw KilnError.internalError("'\(op.name)' (op: \(op.type)) is answered by the step's collective round, not one op at a time")
        case .session(let handler): return try handler(self, op, feeds)
        case .kernel(let hostKernel):
            let inputs = try hostInputs(of: op, feeds: feeds)
            // It computes from its inputs alone, with the lock let go: other threads' runs (a
            // second reader thread's record, a training step back from its compiled part)
            // proceed meanwhile instead of waiting for the parse.
            var outputs: [Tensor] = []
            try withoutLock { outputs = try hostKernel(inputs, op.attrs) }
            return outputs
        case .compiledOp: break
        }
        // Compiled ops the host answers when they carry strings, which compiled code cannot hold.
        switch op.type {
        case "Const":
            guard let value = op.attrs["value"]?.tensor, value.dtype == .string else { return nil }
            return [value]
        case "Identity" where Session.followsHostOp(op):
            // An input producer's limit_epochs: the value, passed on after the epoch counter ran
            // (compiled code cannot wait for an op computed on the host).
            return [try feeds[op.inputs[0]] ?? hostInputs(of: op, feeds: feeds)[0]]
        case "Identity", "PlaceholderWithDefault":
            // A string passed along (the Saver's filename and save/control_dependency).
            guard op.output().dtype == .string, let value = feeds[op.inputs[0]] else { return nil }
            return [value]
        case "Reshape":
            // Of a value the host computed this run (decode_raw's bytes as an image): metadata
            // only, and a compiled run just for it cost more than the pipeline's parse.
            guard let x = feeds[op.inputs[0]], let target = op.inputs[1].op.attrs["value"]?.tensor else { return nil }
            let dims = (0..<target.elementCount).map { Int(target.double(at: $0)) }
            return [try x.reshaped(to: ArrayOps.resolveReshape(x.elementCount, dims) { KilnError.invalidArgument("\($0) (node '\(op.name)')") })]
        case "RandomShuffle" where op.output().dtype == .string:
            return [try shuffledStrings(op, feeds: feeds)]
        default:
            return nil
        }
    }

    /// The session's answer to each op whose registry entry marks it answered by the session,
    /// by op type. The Frontend cannot see the session's state, so these stay here, one table;
    /// SessionOpTableTests checks it against the registry both ways.
    static let sessionHandlers: [String: SessionOpHandler] = {
        var all: [String: SessionOpHandler] = variableStoreHandlers
        for table in [queueHandlers, readerHandlers, SummaryKernels.kernels.mapValues(summaryHandler)] {
            all.merge(table) { _, _ in preconditionFailure("an op with two session handlers") }
        }
        return all
    }()

    /// The ops answered from the variable store and checkpoint files.
    static let variableStoreHandlers: [String: SessionOpHandler] = [
        "ReportUninitializedVariables": { session, op, _ in
            let initialized = Set(session.variables.keys.map(\.name))
            let missing = op.attrs[HostOps.varNames].filter { !initialized.contains($0) }
            return [try Tensor(shape: [missing.count], strings: missing.map { Array($0.utf8) })]
        },
        "VarIsInitializedOp": isInitialized,
        "IsVariableInitialized": isInitialized,
        "KilnInitializedValue": { session, op, _ in
            // Uninitialised: nil, so it compiles to the initial value it takes as input.
            let name = op.attrs[HostOps.variable]
            guard let variable = session.graph.operation(named: name) else {
                throw KilnError.invalidArgument("'\(op.name)' (op: \(op.type)) names no variable of this graph ('\(name)')")
            }
            return try session.withVariablesHeld {
                try session.syncToHost(variable)
                return session.variables[variable].map { [$0] }
            }
        },
        "CountUpTo": { session, op, _ in [try session.withVariablesHeld { try session.countUpTo(op) }] },
        "SaveV2": { session, op, feeds in
            try CheckpointKernels.save(try session.hostInputs(of: op, feeds: feeds), node: op)
            return []
        },
        "RestoreV2": { session, op, feeds in try CheckpointKernels.restore(try session.hostInputs(of: op, feeds: feeds), node: op) },
    ]

    private static let isInitialized: SessionOpHandler = { session, op, _ in
        guard let variable = op.inputs[0].underlyingVariable else {
            throw KilnError.invalidArgument("input 0 of '\(op.name)' (op: \(op.type)) must be a variable, got '\(op.inputs[0].name)'")
        }
        return [Tensor(session.variables[variable] != nil)]
    }

    private static func summaryHandler(_ kernel: @escaping SummaryKernels.Kernel) -> SessionOpHandler {
        { session, op, feeds in try SummaryKernels.run(kernel, session.hostInputs(of: op, feeds: feeds), attrs: op.attrs, node: op.name) }
    }

    /// Ops answered from the session's variable store or checkpoint files (not its queues,
    /// readers or summaries).
    static func answersFromStore(_ type: String) -> Bool {
        switch OpRegistry.def(type)?.sessionService {
        case .variableStore?, .checkpoint?: return true
        default: return false
        }
    }

    /// An Identity that waits for an input-pipeline op through a control edge (TensorFlow's
    /// limit_epochs: the input after CountUpTo; or after a queue op): answered on the host too,
    /// after that op. (Other host ops through a control edge stay an error: see compiledFeeds.)
    static func followsHostOp(_ op: KilnFrontend.Operation) -> Bool {
        op.type == "Identity" && op.controlInputs.contains {
            $0.type == "CountUpTo" || OpRegistry.def($0.type)?.sessionService == .queue
        }
    }

    /// CountUpTo: the epoch counter's value, counted up in the variable store; outOfRange at the limit.
    fileprivate func countUpTo(_ op: KilnFrontend.Operation) throws -> Tensor {
        guard let variable = op.inputs[0].underlyingVariable else {
            throw KilnError.invalidArgument("input 0 of '\(op.name)' (op: \(op.type)) must be a variable, got '\(op.inputs[0].name)'")
        }
        try syncToHost(variable)
        guard let value = variables[variable] else { throw KilnError.failedPrecondition("Attempting to use uninitialized value \(variable.name)") }
        let limit = op.attrs[InputOps.limit]
        let count = Int(value.double(at: 0))
        guard count < limit else { throw KilnError.outOfRange("Reached limit of \(limit)") }
        let next = value.dtype == .int64 ? Tensor(Int64(count + 1)) : Tensor(Int32(clamping: count + 1))
        writeHostValue(next, of: variable)
        return value
    }

    /// RandomShuffle of strings (string_input_producer's shuffled file names), which compiled code
    /// cannot hold: a fresh permutation every run, fixed by the op's seeds when it has any.
    private func shuffledStrings(_ op: KilnFrontend.Operation, feeds: [Output: Tensor]) throws -> Tensor {
        let x = try feeds[op.inputs[0]] ?? hostInputs(of: op, feeds: feeds)[0]
        guard x.rank >= 1, x.shape[0] > 1 else { return x }
        let seed = UInt64(bitPattern: Int64(op.attrs[RandomOps.seed])), seed2 = UInt64(bitPattern: Int64(op.attrs[RandomOps.seed2]))
        let draw = hostDraws[op, default: 0]
        hostDraws[op] = draw + 1
        var rng = SplitMix64(seed: (seed == 0 && seed2 == 0 ? sessionSeed : seed &* 0x9E37_79B9_7F4A_7C15 ^ seed2) &+ draw &* 0xD1B5_4A32_D192_ED03 ^ UInt64(op.id))
        let rows = x.shape[0], width = x.strings.count / rows
        let order = (0..<rows).shuffled(using: &rng)
        var shuffled = TensorStrings()
        for r in order { shuffled.append(x.strings, elements: (r * width)..<((r + 1) * width)) }
        return try Tensor(shape: x.shape, strings: shuffled)
    }
    /// Answered on the host only in some runs (KilnInitializedValue once its variable has a
    /// value): a run signature containing one is never marked free of host ops.
    static let sometimesAnsweredOps: Set<String> = ["KilnInitializedValue"]

    /// The input values of a host op: fed ones directly, the rest computed by a run of their own.
    func hostInputs(of op: KilnFrontend.Operation, feeds: [Output: Tensor]) throws -> [Tensor] {
        // Const inputs (a parse op's defaults and keys) are read from the graph: a host op whose
        // other inputs are fed then needs no compiled run at all.
        func known(_ i: Output) -> Tensor? {
            if let v = feeds[i] { return v }
            return i.op.type == "Const" ? i.op.attrs["value"]?.tensor : nil
        }
        var values: [Tensor] = []
        values.reserveCapacity(op.inputs.count)
        for i in op.inputs {
            guard let v = known(i), v.dtype == i.dtype, i.shape.admits(v.shape) else { break }
            values.append(v)
        }
        // All known (the common case inside an input pipeline): no run of their own needed.
        if values.count == op.inputs.count { return values }
        var given = feeds
        for i in op.inputs where given[i] == nil { if let v = known(i) { given[i] = v } }
        return try runLocked(op.inputs, feeds: given, targets: [])
    }
}
