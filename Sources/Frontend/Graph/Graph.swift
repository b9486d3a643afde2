import Foundation
import KilnIR
#if canImport(Glibc)
import Glibc
#endif

/// A node of the graph: one op of the registry with its inputs, attributes and placement.
public final class Operation: Hashable, CustomStringConvertible, @unchecked Sendable {
    public let name: String
    public let type: String
    /// Never changed after init; `var` only so deinit can hand them to the release queue.
    public private(set) var inputs: [Output]
    public private(set) var controlInputs: [Operation]
    public let attrs: [String: AttrValue]
    public let device: String
    /// dtype and static shape of each output.
    public let outputSpecs: [(dtype: DType, shape: Shape)]
    /// Position in the graph; creation order is a valid execution order.
    public let id: Int
    public unowned let graph: Graph
    /// Return addresses of the call stack that made this node (innermost first), symbolized only
    /// when the debugger asks where the node was created; empty for nodes made without it
    /// (imported GraphDefs keep theirs, pointing into the importer).
    public let creationStack: [UInt]

    init(name: String, type: String, inputs: [Output], controlInputs: [Operation], attrs: [String: AttrValue],
         device: String, outputSpecs: [(DType, Shape)], id: Int, graph: Graph, creationStack: [UInt] = []) {
        self.creationStack = creationStack
        self.name = name
        self.type = type
        self.inputs = inputs
        self.controlInputs = controlInputs
        self.attrs = attrs
        self.device = device
        self.outputSpecs = outputSpecs
        self.id = id
        self.graph = graph
    }

    public var outputs: [Output] { outputSpecs.indices.map { Output(op: self, index: $0) } }
    public func output(_ i: Int = 0) -> Output { Output(op: self, index: i) }

    /// Each op holds its inputs, so freeing the last op of a chain would free the one before it
    /// from inside its deinit, and so on: one nested deinit per op, a stack overflow at a few ten
    /// thousand ops (when a caller still holds the chain's end after the graph is gone). Instead
    /// the inputs go to a per-thread queue that the outermost deinit drains in a loop.
    deinit {
        if inputs.isEmpty && controlInputs.isEmpty { return }
        let queue = ReleaseQueue.current
        queue.ops.append(contentsOf: inputs.lazy.map(\.op))
        queue.ops.append(contentsOf: controlInputs)
        inputs = []
        controlInputs = []
        if queue.draining { return }
        queue.draining = true
        while let op = queue.ops.popLast() { withExtendedLifetime(op) {} }
        queue.draining = false
    }

    public static func == (a: Operation, b: Operation) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }
    public var description: String { "<Operation '\(name)' type=\(type)>" }
}

/// Operations waiting to be released by the deinit that is draining this thread's queue.
private final class ReleaseQueue {
    var ops: [Operation] = []
    var draining = false

    static var current: ReleaseQueue {
        let d = Thread.current.threadDictionary
        if let q = d["kiln.operationReleaseQueue"] as? ReleaseQueue { return q }
        let q = ReleaseQueue()
        d["kiln.operationReleaseQueue"] = q
        return q
    }
}

/// A symbolic tensor: output `index` of an operation (TensorFlow's `name:index`).
public struct Output: Hashable, CustomStringConvertible, @unchecked Sendable {
    public let op: Operation
    public let index: Int

    public var dtype: DType { op.outputSpecs[index].dtype }
    public var shape: Shape { op.outputSpecs[index].shape }
    public var name: String { "\(op.name):\(index)" }
    public var graph: Graph { op.graph }
    /// Outputs of variables (and of ops that return the variable) refer to mutable state.
    public var isRef: Bool { OpRegistry.def(op.type)?.refOutputs.contains(index) ?? false }

    public var description: String { "<Output '\(name)' shape=\(shape) dtype=\(dtype)>" }
}

/// Anything usable where a tensor is expected: an `Output`, or a `Variable` (its value).
public protocol OutputConvertible {
    var output: Output { get }
}

extension Output: OutputConvertible {
    public var output: Output { self }
}

/// A dataflow graph of named operations, built TensorFlow-1.x style.
public final class Graph: @unchecked Sendable {
    public private(set) var operations: [Operation] = []
    private var byName: [String: Operation] = [:]
    private var namesInUse: [String: Int] = [:]
    private var nameStack = ""
    private var deviceStack: [String] = []
    private var controlStack: [[Operation]] = []
    public private(set) var isFinalized = false
    /// Named collections (TensorFlow's GraphKeys), holding any objects.
    public var collections: [String: [Any]] = [:]
    /// Graph-level random seed.
    public var seed: Int?
    /// Bumped on every change; sessions use it to notice new nodes.
    public private(set) var version = 0
    /// Open variable scopes, innermost last (TensorFlow's variable_scope stack).
    var variableScopes: [VariableScope] = []
    /// How often each variable-scope name was opened (for default names: BatchNorm, BatchNorm_1).
    var variableScopeCounts: [String: Int] = [:]
    /// Variables made by getVariable, by full name.
    var variableStore: [String: Variable] = [:]
    /// Default arguments for layer functions, innermost last (slim's arg_scope).
    var argScopes: [LayerDefaults] = []

    public init() {}

    public func operation(named name: String) -> Operation? { byName[name] }

    /// "x:0" or "x" (output 0).
    public func tensor(named name: String) throws -> Output {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        let opName = String(parts[0])
        let index = parts.count > 1 ? Int(parts[1]) : 0
        guard let op = byName[opName] else { throw KilnError.notFound("the graph has no operation named '\(opName)'") }
        guard let index, index >= 0, index < op.outputSpecs.count else {
            throw KilnError.invalidArgument("'\(name)' names output \(parts.count > 1 ? String(parts[1]) : "?") of '\(opName)', which has \(op.outputSpecs.count) output(s)")
        }
        return op.output(index)
    }

    /// After this, adding an operation throws (so a training loop cannot grow the graph by accident).
    public func finalize() { isFinalized = true }

    // MARK: naming (TensorFlow's rules)

    /// `name` made unique in the current name scope: "MatMul", "MatMul_1", "a/b".
    public func uniqueName(_ name: String, markAsUsed: Bool = true) -> String {
        var name = nameStack.isEmpty ? name : nameStack + "/" + name
        var key = name.lowercased()
        var i = namesInUse[key] ?? 0
        if markAsUsed { namesInUse[key] = i + 1 }
        if i > 0 {
            let baseKey = key
            while namesInUse[key] != nil {
                key = "\(baseKey)_\(i)"
                i += 1
            }
            if markAsUsed { namesInUse[key] = 1 }
            name = "\(name)_\(i - 1)"
        }
        return name
    }

    public var currentNameScope: String { nameStack }

    /// Runs `body` inside a name scope. A name ending in "/" re-enters that exact scope.
    public func nameScope<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        let saved = nameStack
        if name.hasSuffix("/") { nameStack = String(name.dropLast()) } else if !name.isEmpty { nameStack = uniqueName(name) }
        defer { nameStack = saved }
        return try body()
    }

    /// Runs `body` with ops placed on `device` ("/cpu:0", "/device:CPU:0", ...).
    public func device<R>(_ device: String, _ body: () throws -> R) rethrows -> R {
        deviceStack.append(device)
        defer { deviceStack.removeLast() }
        return try body()
    }

    /// Ops created in `body` run only after `ops` (and the producers of `outputs`) have run.
    public func controlDependencies<R>(_ ops: [Operation], _ body: () throws -> R) rethrows -> R {
        controlStack.append(ops)
        defer { controlStack.removeLast() }
        return try body()
    }

    /// Runs `body` with no control dependencies in effect (TensorFlow's control_dependencies(None)).
    public func withoutControlDependencies<R>(_ body: () throws -> R) rethrows -> R {
        let saved = controlStack
        controlStack = []
        defer { controlStack = saved }
        return try body()
    }

    // MARK: adding operations

    /// Adds an op of the registry after checking its inputs, attrs and shapes. Every op of the
    /// API comes through here, and so will every imported GraphDef node.
    @discardableResult
    public func addOperation(_ type: String, name: String? = nil, inputs: [Output] = [], controlInputs: [Operation] = [],
                             attrs: [String: AttrValue] = [:], nameIsFinal: Bool = false) throws -> Operation {
        if isFinalized { throw KilnError.failedPrecondition("Graph is finalized and cannot be modified (adding a \(type) op)") }
        guard let def = OpRegistry.def(type) else { throw KilnError.unimplemented("op type '\(type)' is not registered in Kiln") }
        for i in inputs where i.graph !== self {
            throw KilnError.invalidArgument("input '\(i.name)' of a new \(type) op belongs to another graph")
        }
        let opName: String
        // TensorFlow: a name ending in "/" (what a name scope returns) is the op's exact name, so
        // an op can carry its scope's name (`train`, `l2_regularizer`) instead of `scope/Op`.
        let exact = nameIsFinal ? name : name.flatMap { $0.hasSuffix("/") && $0.count > 1 ? String($0.dropLast()) : nil }
        if let name = exact {
            // Already made unique by the caller (an op and its helper nodes share one scope).
            if byName[name] != nil { throw KilnError.alreadyExists("the graph already has an operation named '\(name)'") }
            namesInUse[name.lowercased()] = max(namesInUse[name.lowercased()] ?? 0, 1)
            opName = name
        } else {
            opName = uniqueName(name ?? type)
        }
        var full = def.attrDefaults
        for (k, v) in attrs { full[k] = v }
        try Graph.checkDeclaredShapes(&full, node: opName, op: type)
        let ctx = InferenceContext(nodeName: opName, opType: type, inputs: inputs, attrs: full)
        try def.checkArity(inputs.count, node: opName)
        for (i, input) in inputs.enumerated() {
            guard let entry = IntegerInput.entry(type, input: i, of: inputs.count) else { continue }
            try entry.check(dtype: input.dtype, shape: input.shape, explicitType: attrs[entry.attr]?.type,
                            input: input.name, node: opName, op: type)
        }
        let specs = try def.infer(ctx)
        try Graph.checkInferredShapes(specs, node: opName, op: type)
        // A set beside the list: a control scope over thousands of ops must not be quadratic.
        var controls: [Operation] = [], seen = Set<Operation>()
        for c in controlStack.joined() where seen.insert(c).inserted { controls.append(c) }
        for c in controlInputs where seen.insert(c).inserted { controls.append(c) }
        // Ops that already depend on a control input through data need no edge; keep it simple and explicit.
        let op = Operation(name: opName, type: type, inputs: inputs, controlInputs: controls, attrs: full,
                           device: deviceStack.last ?? "", outputSpecs: specs, id: operations.count, graph: self,
                           creationStack: Graph.recordsCreationStacks ? Graph.callStack() : [])
        operations.append(op)
        byName[opName] = op
        version += 1
        return op
    }

    /// Shape attrs (a placeholder's or variable's) allow -1 only as "unknown", as TensorFlow's
    /// PartialTensorShape does (it becomes nil here); anything below is refused.
    static func checkDeclaredShapes(_ attrs: inout [String: AttrValue], node: String, op: String) throws {
        func checked(_ s: Shape, _ key: String) throws -> Shape {
            guard let dims = s.dims else { return s }
            if let d = dims.compactMap({ $0 }).first(where: { $0 < -1 }) {
                throw KilnError.invalidArgument("Dimension \(d) must be >= -1 in attr '\(key)' = \(s) of '\(node)' (op: '\(op)')")
            }
            let out = Shape(dims: dims.map { $0 == -1 ? nil : $0 })
            if Sizes.product(out.dims!.compactMap { $0 }) == nil {
                throw KilnError.invalidArgument("attr '\(key)' of '\(node)' (op: '\(op)') declares shape \(s), whose element count overflows")
            }
            return out
        }
        for (key, value) in attrs {
            switch value {
            case .shape(let s): attrs[key] = .shape(try checked(s, key))
            case .shapes(let l): attrs[key] = .shapes(try l.map { try checked($0, key) })
            default: continue
            }
        }
    }

    /// A shape function's result must be a shape some tensor could have: no negative dimension,
    /// and a size that fits in memory addresses.
    static func checkInferredShapes(_ specs: [(DType, Shape)], node: String, op: String) throws {
        for (k, (dtype, shape)) in specs.enumerated() {
            guard let dims = shape.dims else { continue }
            let known = dims.compactMap { $0 }
            if let d = known.first(where: { $0 < 0 }) {
                throw KilnError.invalidArgument("output \(k) of '\(node)' (op: '\(op)') would have shape \(shape), with the negative dimension \(d)")
            }
            if Sizes.product(known).flatMap({ Sizes.bytes($0, dtype) }) == nil {
                throw KilnError.invalidArgument("output \(k) of '\(node)' (op: '\(op)') would have shape \(shape) of \(dtype.name), more than 2^63 bytes")
            }
        }
    }

    /// glibc's `backtrace` (execinfo.h, which the Glibc module does not export), looked up once.
    private static let glibcBacktrace: (@convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32) -> Int32)? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "backtrace") else { return nil }
        return unsafeBitCast(sym, to: (@convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32) -> Int32).self)
    }()

    /// Whether new nodes record the call stack that made them (for the debugger's `nodeInfo`).
    /// glibc's unwinder takes about a microsecond a frame, tens of microseconds a node, several
    /// times the cost of making the node: on by default where Kiln is built for debugging, off
    /// in release builds; KILN_SOURCE_LOCATIONS=1 or =0 overrides either. Off: nodes carry no
    /// source location ("unknown").
    nonisolated(unsafe) public static var recordsCreationStacks: Bool = {
        switch ProcessInfo.processInfo.environment["KILN_SOURCE_LOCATIONS"] {
        case "1": return true
        case "0": return false
        default:
            #if DEBUG
            return true
            #else
            return false
            #endif
        }
    }()

    /// The raw return addresses of the current call stack (glibc's `backtrace`, no
    /// symbolization), at most 32 frames: deep enough for a user's line under layers,
    /// gradients and optimizers.
    static func callStack() -> [UInt] {
        guard let backtrace = glibcBacktrace else { return [] }
        return withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: 32) { buffer in
            let n = Int(backtrace(buffer.baseAddress, 32))
            return (0..<n).map { UInt(bitPattern: buffer[$0]) }
        }
    }

    public func addToCollection(_ key: String, _ value: Any) { collections[key, default: []].append(value) }
    public func collection(_ key: String) -> [Any] { collections[key] ?? [] }
}
