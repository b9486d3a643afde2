import Foundation
import KilnIR
import KilnKernels
import KilnFrontend

/// One tensor of a debugged run: a node's output, where it came in the run's execution order,
/// and its value when the debugger kept it.
public struct DebugTensor: CustomStringConvertible, Sendable {
    /// `scope/Log:0`.
    public let name: String
    public let op: String
    public let dtype: DType
    /// The concrete shape when the value is known, else the static one.
    public let shape: Shape
    /// Position of the node in the run's execution order (0 first).
    public let executionIndex: Int
    public let value: Tensor?

    public var description: String { "\(name) (\(op)) \(dtype.name)\(shape) #\(executionIndex)" }
}

/// What `DebugSession.run` returns: the fetches' values and the tensors that matched the filter,
/// in execution order (the first is where the condition arose).
public struct DebugRun: Sendable {
    public let results: [Tensor]
    public let matches: [DebugTensor]
}

/// tfdbg's LocalCLIDebugWrapperSession for Kiln: runs a session's steps with tensor filters and
/// answers questions about the graph (`nodeInfo`, `listInputs`, `printTensor`).
///
/// `has_inf_or_nan` takes the fast path: the step runs once as an executable whose kernels count
/// their non-finite outputs (NonFiniteCounts.swift), fused as usual and with nothing dumped; when
/// a kernel counted some, only the values its fusion group reads are computed again from the
/// step's inputs (kept from before the run) with every node of the group materialised, and the
/// group's nodes are tested in execution order. Any other filter takes the slower path: the step
/// runs once with every node's output fetched, and the filter sees each.
public final class DebugSession {
    public let session: Session
    /// A filter sees each tensor of the run (name, op, shape) and its value.
    public typealias TensorFilter = @Sendable (DebugTensor, Tensor) -> Bool
    private var filters: [String: TensorFilter] = [:]
    /// Every tensor of the last run, in execution order; values where the debugger kept them.
    /// Made when asked for, so a step under the debugger does not pay for naming every tensor.
    public var lastRunTensors: [DebugTensor] {
        lastOrder.enumerated().flatMap { k, op in op.outputs.map { tensor($0, index: k, value: lastValues[$0]) } }
    }
    public private(set) var lastMatches: [DebugTensor] = []
    private var lastOrder: [KilnFrontend.Operation] = []
    private var lastValues: [Output: Tensor] = [:]
    /// The execution order of each run signature, for the graph version it was computed on.
    private var orders: [String: (version: Int, order: [KilnFrontend.Operation])] = [:]

    /// tfdbg's built-in filter: a floating-point tensor holding a NaN or an infinity.
    public static let hasInfOrNaN: TensorFilter = { _, t in nonFiniteCount(t) > 0 }
    public static let hasInfOrNaNName = "has_inf_or_nan"

    /// Whether the session has an OpenCL device ops may be placed on (its kernels do not count
    /// non-finite values: has_inf_or_nan takes the slower path there).
    private let hasDevices: Bool

    public init(wrapping session: Session) {
        self.session = session
        hasDevices = ((try? Session.devices(config: session.config)) ?? []).contains { !$0.isCPU }
        filters[Self.hasInfOrNaNName] = Self.hasInfOrNaN
    }

    public var graph: Graph { session.graph }

    /// Registers `predicate` under `name` for `run(..., until: name)`.
    public func addTensorFilter(_ name: String, _ predicate: @escaping TensorFilter) {
        filters[name] = predicate
    }

    public var filterNames: [String] { filters.keys.sorted() }

    /// Runs one step (as `Session.run`); with `until`, returns the tensors the filter matches in
    /// execution order.
    public func run(_ fetches: [Output], feeds: [Output: Tensor] = [:], targets: [KilnFrontend.Operation] = [],
                    until filter: String? = nil) throws -> DebugRun {
        let order = try executionOrder(fetches: fetches, feeds: feeds, targets: targets)
        guard let filter else {
            let results = try session.run(fetches, feeds: feeds, targets: targets)
            record(order, values: Dictionary(zip(fetches, results), uniquingKeysWith: { a, _ in a }), matches: [])
            return DebugRun(results: results, matches: [])
        }
        guard let predicate = filters[filter] else {
            throw KilnError.invalidArgument("no tensor filter named '\(filter)' (known: \(filterNames.joined(separator: ", ")))")
        }
        if filter == Self.hasInfOrNaNName, session.config.fusion, let run = try runCountingNonFinite(fetches, feeds: feeds, targets: targets, order: order) {
            return run
        }
        return try runEveryTensor(fetches, feeds: feeds, targets: targets, order: order, predicate: predicate)
    }

    // MARK: paths

    /// The slower path, for any filter: the step runs once with the output of every node it
    /// runs fetched (numbers only: strings and variable refs are not tensors a filter tests; a
    /// variable's value read through `read` is its value after the step, as a fetched ref is).
    private func runEveryTensor(_ fetches: [Output], feeds: [Output: Tensor], targets: [KilnFrontend.Operation],
                                order: [KilnFrontend.Operation], predicate: TensorFilter) throws -> DebugRun {
        var extra: [Output] = []
        for op in order where OpRegistry.def(op.type)?.isVariable != true {
            for o in op.outputs where o.dtype != .string && !o.isRef && feeds[o] == nil { extra.append(o) }
        }
        let all = try session.run(fetches + extra, feeds: feeds, targets: targets)
        var values: [Output: Tensor] = [:]
        for (o, t) in zip(fetches + extra, all) where values[o] == nil { values[o] = t }
        for (o, t) in feeds { values[o] = t }
        var matches: [DebugTensor] = []
        for (k, op) in order.enumerated() {
            for o in op.outputs {
                guard let v = values[o] else { continue }
                let t = tensor(o, index: k, value: v)
                if predicate(t, v) { matches.append(t) }
            }
        }
        record(order, values: values, matches: matches)
        return DebugRun(results: Array(all.prefix(fetches.count)), matches: matches)
    }

    /// The fast path for has_inf_or_nan (see the type's comment); nil when the run cannot take
    /// it (it would run on a device: the slower path then runs the step instead).
    private func runCountingNonFinite(_ fetches: [Output], feeds: [Output: Tensor], targets: [KilnFrontend.Operation],
                                      order: [KilnFrontend.Operation]) throws -> DebugRun? {
        guard !hasDevices else { return nil }
        session.countingThread = Thread.current
        session.lastCountedRun = nil
        defer {
            session.countingThread = nil
            session.lastCountedRun = nil
        }
        let results = try session.run(fetches, feeds: feeds, targets: targets)
        var values = Dictionary(zip(fetches, results), uniquingKeysWith: { a, _ in a })
        guard let counted = session.lastCountedRun, let exe = counted.step.executable as? NativeExecutable,
              let counts = exe.nonFiniteCounts else {
            throw KilnError.unimplemented("has_inf_or_nan could not count this run's non-finite values (it ran on a device); add a custom filter to test every tensor on the unfused path")
        }
        var matches: [DebugTensor] = []
        // A NaN can come in with the step: a feed, or a variable an earlier step spoiled (its
        // value as the step read it). No kernel computes those; they come first.
        let lowered = counted.step.lowered
        // (A used input holding one makes some kernel count: only then are the inputs scanned.)
        if counts.contains(where: { $0 > 0 }) {
            let spoiled = counted.inputs.indices.filter { DebugSession.nonFiniteCount(counted.inputs[$0]) > 0 }
            let position = Dictionary(order.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
            var seen = Set<Output>()
            func add(_ o: Output, _ value: Tensor?) {
                guard seen.insert(o).inserted else { return }
                if let value { values[o] = value }
                matches.append(tensor(o, index: position[o.op] ?? -1, value: value))
            }
            for k in spoiled {
                let o = k < lowered.feeds.count ? lowered.feeds[k] : lowered.variables[k - lowered.feeds.count].output(0)
                add(o, counted.inputs[k])
            }
            let first = counts.firstIndex(where: { $0 > 0 })!
            for (id, value) in try recomputeGroup(counted, exe, kernel: first) where DebugSession.nonFiniteCount(value) > 0 {
                if let o = counted.step.lowered.origins[id] { add(o, value) }
            }
            // Later kernels that counted some: their outputs (not their fused insides).
            for n in counts.indices.dropFirst(first + 1) where counts[n] > 0 {
                if let v = exe.plan.kernels[n].value, let o = counted.step.lowered.origins[v] { add(o, nil) }
            }
        }
        record(order, values: values, matches: matches)
        return DebugRun(results: results, matches: matches)
    }

    /// The values of kernel `n`'s fusion group, by instruction in execution order, computed
    /// again from the run's inputs: only what the group reads is recomputed (fused as before),
    /// each group member is a result of its own, and nothing is written.
    private func recomputeGroup(_ counted: CountedRun, _ exe: NativeExecutable, kernel n: Int) throws -> [(Int, Tensor)] {
        let f = exe.function, plan = exe.plan
        let kernel = plan.kernels[n]
        var group = Set(kernel.value.flatMap { plan.fused[$0] } ?? [])
        switch kernel {
        case .writes(let ws): group.formUnion(ws.map(\.value))
        case .accumulatedProduct(_, _, let value, _): group.insert(value)
        default: if let v = kernel.value { group.insert(v) }
        }
        let byId = Dictionary(uniqueKeysWithValues: f.body.map { ($0.id, $0) })
        let members = f.body.filter { group.contains($0.id) && $0.op != .varWrite && $0.type?.dtype.isFloatingPoint == true }.map(\.id)
        var needed = Set<Int>(), stack = members
        while let id = stack.popLast() {
            guard let i = byId[id], needed.insert(id).inserted else { continue }
            stack.append(contentsOf: i.operands)
        }
        let body = f.body.filter { needed.contains($0.id) && $0.op != .varWrite }
        let part = Function(name: f.name + "_debug_k\(n)", params: f.params, body: body, results: members)
        let exe = try session.backend.compile(part, options: CompileOptions(memoryLimit: session.config.memoryLimit))
        var outputs = try exe.resultTypes.map { try Tensor(zeros: $0.dtype, shape: $0.shape) }
        let inputs = counted.inputs
        try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(inputs.count, 1)) { ins in
            for (k, t) in inputs.enumerated() { ins[k] = t.buffer.pointer }
            try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: max(outputs.count, 1)) { outs in
                for k in outputs.indices { outs[k] = try outputs[k].withUnsafeMutableBytes { $0.baseAddress } }
                try withExtendedLifetime(inputs) { try exe.run(inputs: ins.baseAddress, outputs: outs.baseAddress) }
            }
        }
        return Array(zip(members, outputs))
    }

    // MARK: bookkeeping

    private func executionOrder(fetches: [Output], feeds: [Output: Tensor], targets: [KilnFrontend.Operation]) throws -> [KilnFrontend.Operation] {
        let key = [fetches.map(\.name).joined(separator: ","), feeds.keys.map(\.name).sorted().joined(separator: ","),
                   targets.map(\.name).joined(separator: ",")].joined(separator: "|")
        if let known = orders[key], known.version == graph.version { return known.order }
        let order = try Lowering.executionOrder(Lowering.prune(fetches: fetches, feeds: Set(feeds.keys), targets: targets), feeds: Set(feeds.keys))
        orders[key] = (graph.version, order)
        return order
    }

    private func tensor(_ o: Output, index: Int, value: Tensor?) -> DebugTensor {
        DebugTensor(name: o.name, op: o.op.type, dtype: o.dtype, shape: value.map { Shape($0.shape) } ?? o.shape, executionIndex: index, value: value)
    }

    private func record(_ order: [KilnFrontend.Operation], values: [Output: Tensor], matches: [DebugTensor]) {
        lastOrder = order
        lastValues = values
        lastMatches = matches
    }

    /// The NaN and infinite elements of a floating-point tensor (0 for other dtypes).
    public static func nonFiniteCount(_ t: Tensor) -> Int {
        switch t.dtype {
        case .float32: return t.withUnsafeBytes { $0.bindMemory(to: Float.self).reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        case .float64: return t.withUnsafeBytes { $0.bindMemory(to: Double.self).reduce(0) { $0 + ($1.isFinite ? 0 : 1) } }
        default: return 0
        }
    }
}
