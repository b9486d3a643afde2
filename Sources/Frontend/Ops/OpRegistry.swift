import KilnIR

/// An attribute value of a node (TensorFlow's AttrValue).
public enum AttrValue: Hashable, Sendable {
    case int(Int)
    case float(Double)
    case bool(Bool)
    case string(String)
    case type(DType)
    case shape(Shape)
    case tensor(Tensor)
    case ints([Int])
    case types([DType])
    case floats([Double])
    case bools([Bool])
    case strings([String])
    case shapes([Shape])
    /// A function reference (NameAttrList): kept so imported graphs round-trip.
    case function(name: String, attrs: [String: AttrValue])

    public var int: Int? { if case .int(let v) = self { return v }; return nil }
    public var bool: Bool? { if case .bool(let v) = self { return v }; return nil }
    public var type: DType? { if case .type(let v) = self { return v }; return nil }
    public var shape: Shape? { if case .shape(let v) = self { return v }; return nil }
    public var tensor: Tensor? { if case .tensor(let v) = self { return v }; return nil }
    public var string: String? { if case .string(let v) = self { return v }; return nil }
    public var ints: [Int]? { if case .ints(let v) = self { return v }; return nil }
    public var float: Double? { if case .float(let v) = self { return v }; return nil }
    public var stringList: [String]? { if case .strings(let v) = self { return v }; return nil }
}

/// The session's own state an op needs, for the ops the session answers itself (the Runtime
/// keeps one handler per such op: Session.sessionHandlers).
public enum SessionService: String, Sendable, CaseIterable {
    /// Questions about, and counters in, the session's variable store.
    case variableStore
    /// Checkpoint files (the Saver's SaveV2/RestoreV2).
    case checkpoint
    /// The queues the session keeps (input pipelines).
    case queue
    /// The record readers the session keeps.
    case reader
    /// Summary protos built on the host.
    case summary
    /// Collectives across processes: the session's collective round between the compiled parts of
    /// a step answers them together (per dtype, fused), not one op at a time.
    case collective
}

/// Where an op runs.
public enum Execution: Sendable, Equatable {
    /// Lowered to IR and compiled.
    case compiled
    /// By its `hostKernel` (output shapes that depend on input values).
    case host
    /// Answered by the session against state it keeps.
    case session(SessionService)
}

/// One entry of the op table: everything Kiln knows about an op type, and the only place that
/// describes it: arity, attributes with their defaults (`declaring`), the shape function, the
/// lowering or host kernel, the gradient or a not-differentiable mark, and where it runs.
public struct OpDef: Sendable {
    public enum Arity: Sendable { case exactly(Int), atLeast(Int) }

    public let name: String
    public let arity: Arity
    /// Every attribute with a default, declared once: nodes built or imported without one get it.
    public private(set) var attrDefaults: [String: AttrValue]
    /// Input positions that take a variable itself rather than its value (Assign's `ref`).
    public let refInputs: Set<Int>
    /// Output positions that refer to a variable.
    public let refOutputs: Set<Int>
    /// The op is a variable (VariableV2, VarHandleOp): its output 0 is the variable itself, and
    /// lowering makes it a variable parameter of the executable instead of lowering the op.
    public let isVariable: Bool
    /// Has effects beyond its outputs: never pruned from targets, never folded.
    public let isStateful: Bool
    /// Keeps a hidden per-session i64 counter (random ops: each run draws new numbers).
    public let hasCounter: Bool
    /// Static dtypes and shapes of the outputs, at graph construction; throws on bad input.
    public let infer: @Sendable (InferenceContext) throws -> [(DType, Shape)]
    /// IR for the outputs, with concrete shapes, when a session compiles the graph.
    public let lower: @Sendable (inout LoweringContext) throws -> [LoweredValue]
    /// For ops whose output shape depends on input values: computes the outputs on the host.
    /// The session runs the op's inputs, calls this, and feeds the results to the rest.
    public let hostKernel: (@Sendable ([Tensor], [String: AttrValue]) throws -> [Tensor])?
    /// Changes the value of a variable it takes by reference (Assign and friends, the resource
    /// writes): lowering orders these after the reads that do not depend on them.
    public var writesVariable: Bool { isStateful && !refInputs.isEmpty && !isVariable }
    /// Builds the gradients of the inputs from those of the outputs (nil: no gradient flows when
    /// `differentiable` is false; otherwise asking for one is an error naming the op).
    public private(set) var gradient: GradientFunction?
    /// False for ops no gradient flows through (comparisons, shapes, random numbers, ...).
    public private(set) var differentiable = true
    /// Set for ops TensorFlow differentiates but Kiln does not yet (second-order gradients):
    /// asking for their gradient is TensorFlow's "No gradient defined" error, never a silent zero.
    public private(set) var lacksGradient = false
    /// The inputs TensorFlow types as integers (shapes, axes, paddings), checked when a node is
    /// made and when lowering folds them (IntegerInputs.swift).
    private(set) var integerInputs: [IntegerInput] = []
    /// Set for ops the session answers itself (`answeredBySession`).
    public private(set) var sessionService: SessionService?

    /// Where the op runs: answered by the session, by its host kernel, or compiled.
    public var execution: Execution {
        if let sessionService { return .session(sessionService) }
        return hostKernel != nil ? .host : .compiled
    }
    /// Whether the entry says how gradients pass through the op (a gradient or the mark).
    public var hasGradientRule: Bool { gradient != nil || !differentiable || lacksGradient }

    public init(_ name: String, arity: Arity, attrs: [String: AttrValue] = [:], refInputs: Set<Int> = [], refOutputs: Set<Int> = [],
                stateful: Bool = false, counter: Bool = false, variable: Bool = false,
                infer: @escaping @Sendable (InferenceContext) throws -> [(DType, Shape)],
                lower: @escaping @Sendable (inout LoweringContext) throws -> [LoweredValue] = { ctx in
                    throw KilnError.internalError("'\(ctx.op.name)' (op: '\(ctx.op.type)') runs on the host and is never compiled")
                },
                hostKernel: (@Sendable ([Tensor], [String: AttrValue]) throws -> [Tensor])? = nil) {
        self.name = name
        self.arity = arity
        self.attrDefaults = attrs
        self.refInputs = refInputs
        self.refOutputs = refOutputs
        self.isVariable = variable
        self.isStateful = stateful || counter || variable
        self.hasCounter = counter
        self.infer = infer
        self.lower = lower
        self.hostKernel = hostKernel
    }

    /// This entry with its gradient function.
    public func gradient(_ g: @escaping GradientFunction) -> OpDef {
        var d = self
        d.gradient = g
        return d
    }

    /// This entry with typed attributes and their defaults (readers use `attrs[key]`).
    public func declaring(_ attrs: any AttrDeclaration...) -> OpDef { declaring(attrs) }

    public func declaring(_ attrs: [any AttrDeclaration]) -> OpDef {
        var d = self
        for a in attrs { d.attrDefaults[a.name] = a.defaultAttrValue }
        return d
    }

    /// This entry with the inputs TensorFlow types as integers.
    func integerInputs(_ inputs: [IntegerInput]) -> OpDef {
        var d = self
        d.integerInputs = inputs
        return d
    }

    /// This entry, marked as answered by the session from `service`.
    public func answeredBySession(_ service: SessionService) -> OpDef {
        var d = self
        d.sessionService = service
        return d
    }

    /// This entry, marked as one whose TensorFlow gradient Kiln does not implement.
    public func gradientNotImplemented() -> OpDef {
        var d = self
        d.lacksGradient = true
        return d
    }

    /// This entry, marked as one no gradient flows through.
    public func notDifferentiable() -> OpDef {
        var d = self
        d.differentiable = false
        return d
    }

    func checkArity(_ n: Int, node: String) throws {
        switch arity {
        case .exactly(let k) where n != k, .atLeast(let k) where n < k:
            throw KilnError.invalidArgument("node '\(node)' (op: '\(name)') takes \(arity) input(s), got \(n)")
        default: break
        }
    }
}

/// The one op table (DESIGN decision 1). Families register their entries in `Ops/`.
public enum OpRegistry {
    static let table: [String: OpDef] = {
        var t: [String: OpDef] = [:]
        for def in StateOps.defs + ArrayOps.defs + ShapeOps.defs + ElementwiseOps.defs + MathOps.defs + NNOps.defs + RandomOps.defs + HostOps.defs + QueueOps.defs + InputOps.defs + ParsingOps.defs + ReaderOps.defs + SummaryOps.defs + GradientOps.defs + GradientHelperOps.defs + ControlOps.defs + DebugOps.defs + CollectiveOps.defs {
            precondition(t[def.name] == nil, "op \(def.name) registered twice")
            t[def.name] = def
        }
        return t
    }()

    public static func def(_ type: String) -> OpDef? { table[type] }
    public static var registeredTypes: [String] { table.keys.sorted() }
}

/// What a shape function sees: the new node's inputs and attributes.
public struct InferenceContext {
    public let nodeName: String
    public let opType: String
    public let inputs: [Output]
    public let attrs: [String: AttrValue]
    /// The inputs' concrete shapes when lowering re-checks a node whose static shapes were
    /// partly unknown; nil at graph construction.
    var concreteShapes: [Shape]? = nil

    public func dtype(_ i: Int) -> DType { inputs[i].dtype }
    public func shape(_ i: Int) -> Shape { concreteShapes?[i] ?? inputs[i].shape }

    public func attr(_ k: String) throws -> AttrValue {
        guard let v = attrs[k] else { throw error("missing attribute '\(k)'") }
        return v
    }

    /// The value of input `i` when it is a constant known at graph construction.
    public func constantValue(_ i: Int) -> Tensor? { staticValue(of: inputs[i]) }

    /// A message in TensorFlow's style, naming the node, op and input shapes.
    public func error(_ why: String) -> KilnError {
        let shapes = inputs.map { $0.shape.description }.joined(separator: ", ")
        return KilnError.invalidArgument("\(why) for '\(nodeName)' (op: '\(opType)') with input shapes: \(shapes).")
    }

    /// All inputs must share one dtype; returns it.
    public func sameDType(_ indices: [Int]? = nil) throws -> DType {
        let idx = indices ?? Array(inputs.indices)
        let d = dtype(idx[0])
        for i in idx where dtype(i) != d {
            throw KilnError.invalidArgument("'\(nodeName)' (op: '\(opType)') expects inputs of one dtype, got \(idx.map { dtype($0).name }.joined(separator: " and ")) (inputs \(idx.map { inputs[$0].name }.joined(separator: ", ")))")
        }
        return d
    }
}

/// The value of `o` if it is computable without running the graph (a Const, possibly reshaped
/// or cast); used where TensorFlow needs "constant" inputs such as axes and shapes.
func staticValue(of o: Output) -> Tensor? {
    var o = o
    // A loop, not recursion: a chain of Identity ops may be as long as the graph.
    while o.op.type == "Identity" { o = o.op.inputs[0] }
    switch o.op.type {
    case "Const": return o.op.attrs["value"]?.tensor
    case "Shape":
        guard let dims = o.op.inputs[0].shape.concrete else { return nil }
        // An int32 shape that cannot hold a dimension is an error when the op runs, never a value.
        if o.dtype == .int32 && dims.contains(where: { $0 > Int(Int32.max) }) { return nil }
        return try? Tensor(literal: dims.map(Int64.init), dtype: o.dtype)
    default: return nil
    }
}

/// A lowered output: an IR value, or a variable that consumers read when they need its value.
public enum LoweredValue: Sendable {
    case value(Int)
    case variable(param: Int)
}
