import Foundation
import KilnAOT
import KilnCPU
import KilnFrontend
import KilnIR
import KilnPasses

/// `kiln compile`'s driver: a graph file, feeds with concrete types, fetches and an optional
/// checkpoint become a frozen `ArtifactSpec` (the variables' values compiled in as constants),
/// which `AheadOfTime.compile` writes as an object or C file, header and Swift wrapper.
/// Everything a user can get wrong is an error naming what is wrong, in TensorFlow's words
/// where TensorFlow has them.
public enum ArtifactCompiler {
    /// What one `kiln compile` asks for.
    public struct Request {
        public var graph: String
        /// `NAME=DTYPE[d0,d1,...]`, in the order of the artifact's feeds.
        public var feeds: [String]
        public var fetches: [String]
        public var name: String
        public var directory: String
        public var checkpoint: String?
        public var triple: String?
        public var cpu: String?
        /// `object` or `c`.
        public var emit: String

        public init(graph: String, feeds: [String], fetches: [String], name: String, directory: String, checkpoint: String? = nil,
                    triple: String? = nil, cpu: String? = nil, emit: String = "object") {
            self.graph = graph
            self.feeds = feeds
            self.fetches = fetches
            self.name = name
            self.directory = directory
            self.checkpoint = checkpoint
            self.triple = triple
            self.cpu = cpu
            self.emit = emit
        }
    }

    /// The files written and how long each step took.
    public struct Result {
        /// Every file written, with its size in bytes: code (`.o`/`.c`), runtime library, header, Swift wrapper.
        public var files: [(path: String, bytes: Int)]
        public var arenaBytes: Int
        public var constantBytes: Int
        /// Milliseconds: reading the graph and checkpoint and freezing (lower, bind, passes),
        /// then planning, code, runtime library.
        public var frontMs: Double, planMs: Double, codeMs: Double, libraryMs: Double
        public var totalMs: Double { frontMs + planMs + codeMs + libraryMs }
    }

    public static let emitNames = ArtifactEmit.allCases.map(\.rawValue)

    /// Reads, freezes and compiles: the whole of `kiln compile`.
    public static func compile(_ r: Request) throws -> Result {
        // Cheap checks first, so a wrong name or target is reported before the graph is read.
        try ArtifactSpec.validate(name: r.name)
        guard let emit = ArtifactEmit(rawValue: r.emit) else {
            throw KilnError.invalidArgument("--emit takes \(emitNames.joined(separator: " or ")), got '\(r.emit)'")
        }
        let target = try CPUTarget.resolve(triple: r.triple, cpu: r.cpu)
        let feeds = try r.feeds.map(parseFeed)
        let t0 = DispatchTime.now()
        let (graph, keys) = try loadGraph(path: r.graph)
        let checkpoint = try r.checkpoint.map { try CheckpointReader(prefix: $0) }
        let origin = (r.graph as NSString).lastPathComponent + (r.checkpoint.map { ", checkpoint \(($0 as NSString).lastPathComponent)" } ?? "")
        let spec = try self.spec(graph: graph, feeds: feeds, fetches: r.fetches, checkpoint: checkpoint, keys: keys, name: r.name,
                                 target: target, origin: origin)
        let t1 = DispatchTime.now()
        try makeDirectory(r.directory)
        let files = try AheadOfTime.compile(spec, emit: emit, to: r.directory)
        let size = { (p: String) in ((try? FileManager.default.attributesOfItem(atPath: p)[.size]) as? Int) ?? 0 }
        return Result(files: files.paths.map { ($0, size($0)) }, arenaBytes: files.arenaBytes, constantBytes: files.constantBytes,
                      frontMs: Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e6, planMs: files.planMs, codeMs: files.codeMs,
                      libraryMs: files.libraryMs)
    }

    /// The output directory, made if missing: a clear error (not Foundation's) when it cannot be.
    static func makeDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw KilnError.invalidArgument("--out '\(path)' is a file, not a directory") }
            return
        }
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw KilnError(.permissionDenied, "cannot create the output directory '\(path)': \((error as NSError).localizedDescription)")
        }
    }

    // MARK: parsing

    /// TensorFlow's dtype names a feed may have (Python's spellings too: float, double).
    static let dtypeNames: [String: DType] = ["float32": .float32, "float": .float32, "float64": .float64, "double": .float64,
                                              "int32": .int32, "int64": .int64, "int16": .int16, "uint8": .uint8, "bool": .bool,
                                              "float16": .float16, "half": .float16, "bfloat16": .bfloat16]

    /// `x:0=float32[2,784]` -> ("x:0", f32[2,784]); `[]` is a scalar. A missing or unknown
    /// dimension is an error: an artifact is compiled for one shape.
    public static func parseFeed(_ text: String) throws -> (name: String, type: TensorType) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else {
            throw KilnError.invalidArgument("--feed takes NAME=DTYPE[d0,d1,...] (e.g. x=float32[1,784], [] for a scalar), got '\(text)'")
        }
        let name = String(text[..<eq]), rest = text[text.index(after: eq)...]
        let open = rest.firstIndex(of: "[")
        let dtypeText = String(rest[..<(open ?? rest.endIndex)]).trimmingCharacters(in: .whitespaces)
        guard let dtype = dtypeNames[dtypeText.lowercased()] else {
            if dtypeText == "string" {
                throw KilnError.invalidArgument("feed '\(name)': an artifact cannot take strings (compiled code has no strings)")
            }
            throw KilnError.invalidArgument("feed '\(name)': unknown or unsupported dtype '\(dtypeText)' (use one of \(dtypeNames.keys.sorted().joined(separator: ", ")))")
        }
        guard let open, rest.last == "]" else {
            throw KilnError.invalidArgument("feed '\(name)' has no concrete shape: an artifact is compiled for one shape, give it as \(name)=\(dtypeText)[d0,d1,...] ([] for a scalar)")
        }
        let inner = rest[rest.index(after: open)..<rest.index(before: rest.endIndex)].trimmingCharacters(in: .whitespaces)
        let parts = inner.isEmpty ? [] : inner.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var shape: [Int] = []
        for p in parts {
            guard let d = Int(p), d >= 0 else {
                throw KilnError.invalidArgument("feed '\(name)' has no concrete shape: dimension '\(p)' in \(dtypeText)[\(inner)] is not a number >= 0; an artifact is compiled for one shape")
            }
            shape.append(d)
        }
        guard TensorType(dtype, shape).checkedByteCount != nil else {
            throw KilnError.invalidArgument("feed '\(name)' of shape [\(inner)] is too large: its size does not fit in 2^63 bytes")
        }
        return (name, TensorType(dtype, shape))
    }

    /// A graph file: `.meta` (MetaGraphDef: checkpoint keys from its saver), else a GraphDef
    /// (`.pbtxt`/`.txt` text, anything else binary). Checkpoint keys default to variable op names.
    public static func loadGraph(path: String) throws -> (Graph, keys: [KilnFrontend.Operation: String]) {
        let g = Graph()
        var keys: [KilnFrontend.Operation: String] = [:]
        if path.hasSuffix(".meta") {
            let (_, saver) = try importMetaGraph(contentsOf: path, into: g)
            for (key, v) in saver?.variables ?? [] { keys[v] = key }
        } else {
            try g.importGraphDef(GraphDefFile.read(path: path), prefix: "")
        }
        return (g, keys)
    }

    /// TensorFlow's get_tensor_by_name wording for a name that names nothing.
    static func tensor(_ name: String, in g: Graph, role: String) throws -> Output {
        let parts = name.split(separator: ":", omittingEmptySubsequences: false)
        let opName = String(parts[0])
        guard parts.count <= 2, let op = g.operation(named: opName) else {
            throw KilnError.notFound("\(role) '\(name)': The name '\(name)' refers to a Tensor which does not exist. The operation, '\(opName)', does not exist in the graph.")
        }
        guard let index = parts.count == 2 ? Int(parts[1]) : 0, index >= 0, index < op.outputSpecs.count else {
            throw KilnError.notFound("\(role) '\(name)': The name '\(name)' refers to a Tensor which does not exist. The operation, '\(opName)', exists but only has \(op.outputSpecs.count) outputs.")
        }
        return op.output(index)
    }

    // MARK: freezing

    /// The frozen artifact spec: feeds resolved and checked against the graph, the graph pruned
    /// to the fetches, host-only ops refused, lowered as `Session` lowers a run, variables bound
    /// to their checkpoint values, the standard passes run.
    public static func spec(graph g: Graph, feeds given: [(name: String, type: TensorType)], fetches names: [String],
                            checkpoint: CheckpointReader?, keys: [KilnFrontend.Operation: String] = [:], name: String,
                            target: CPUTarget, origin: String) throws -> ArtifactSpec {
        guard !names.isEmpty else { throw KilnError.invalidArgument("nothing to fetch: give --fetch NAME") }
        var feeds: [(Output, TensorType)] = []
        for (feedName, type) in given {
            let o = try tensor(feedName, in: g, role: "feed")
            if let k = feeds.firstIndex(where: { $0.0 == o }) {
                throw KilnError.invalidArgument("feed '\(feedName)' is given twice (as '\(given[k].name)' too)")
            }
            if o.dtype != type.dtype {
                throw KilnError.invalidArgument("Cannot feed value of dtype \(type.dtype.name) for Tensor '\(o.name)', which has dtype \(o.dtype.name) (feed '\(feedName)')")
            }
            if !Shape(type.shape).isCompatible(with: o.shape) {
                throw KilnError.invalidArgument("Cannot feed value of shape \(Shape(type.shape)) for Tensor '\(o.name)', which has shape \(o.shape) (feed '\(feedName)')")
            }
            feeds.append((o, type))
        }
        let fetches = try names.map { try tensor($0, in: g, role: "fetch") }
        let fed = Set(feeds.map(\.0))
        let ops = Lowering.prune(fetches: fetches, feeds: fed, targets: [])
        // Placeholders left after pruning are unfed: Session says so for a run, so does this.
        if let p = ops.first(where: { $0.type == "Placeholder" }) {
            throw KilnError.invalidArgument("You must feed a value for placeholder tensor '\(p.name)' with dtype \(p.output().dtype.name) and shape \(p.output().shape): give --feed \(p.name)=\(p.output().dtype.name)[...]")
        }
        let host = ops.filter(runsOnHost)
        if !host.isEmpty {
            throw KilnError.unimplemented("an artifact cannot hold ops that Kiln runs on the host (strings, data-dependent shapes, checkpoint I/O, questions about the session's variables): \(host.prefix(8).map { "'\($0.name)' (op: \($0.type))" }.joined(separator: ", "))\(host.count > 8 ? " and \(host.count - 8) more" : "")")
        }
        let lowered = try Lowering.lower(fetches: fetches, feeds: feeds, targets: [], name: name, sessionSeed: 0,
                                         evaluator: { op, operands in try ReferenceEvaluator.evaluate(op, operands) })
        let random = lowered.variables.filter { OpRegistry.def($0.type)?.hasCounter == true }
        if !random.isEmpty {
            throw KilnError.unimplemented("an artifact has no state between runs, so it cannot draw new random numbers in each run as \(random.map { "'\($0.name)' (op: \($0.type))" }.joined(separator: ", ")) would: fetch a part of the graph without random ops")
        }
        let base = lowered.feeds.count
        let written = lowered.function.body.filter { $0.op == .varWrite }.map { lowered.variables[$0.operands[0] - base].name }
        if !written.isEmpty {
            throw KilnError.invalidArgument("the fetches [\(names.joined(separator: ", "))] write variable(s) \(Set(written).sorted().map { "'\($0)'" }.joined(separator: ", ")) (training or assign ops): an artifact only computes, it does not change variables")
        }
        var values: [Int: Tensor] = [:]
        if !lowered.variables.isEmpty {
            let variables = lowered.variables
            guard let checkpoint else {
                throw KilnError.invalidArgument("the fetches read variable(s) \(variables.map { "'\($0.name)'" }.joined(separator: ", ")): give --checkpoint PREFIX holding their values (they become constants of the artifact)")
            }
            let key = { (v: KilnFrontend.Operation) in keys[v] ?? v.name }
            let missing = variables.filter { !checkpoint.contains(key($0)) }
            if !missing.isEmpty {
                throw KilnError.notFound("checkpoint '\(checkpoint.prefix)' has no value for variable(s) \(missing.map { key($0) == $0.name ? "'\($0.name)'" : "'\($0.name)' (key '\(key($0))')" }.joined(separator: ", ")) that the fetches read")
            }
            for (k, v) in variables.enumerated() {
                let declared = lowered.function.params[base + k].type
                let t: Tensor
                do { t = try checkpoint.tensor(named: key(v)) } catch let e as KilnError {
                    throw KilnError(e.code, "cannot read variable '\(v.name)' from checkpoint '\(checkpoint.prefix)': \(e.message)")
                }
                guard t.dtype == declared.dtype, t.shape == declared.shape else {
                    throw KilnError.invalidArgument("variable '\(v.name)' is \(declared.dtype.name)\(Shape(declared.shape)), but checkpoint '\(checkpoint.prefix)' holds \(t.dtype.name)\(Shape(t.shape)) under '\(key(v))'")
                }
                values[base + k] = t
            }
        }
        var function = try VariableFreezing.freeze(lowered.function, values: values)
        try PassManager.standard().run(&function)
        let feedNames = feeds.map(\.0.name), fetchNames = fetches.map(\.name)
        let feedIDs = ArtifactTensor.identifiers(for: feedNames), fetchIDs = ArtifactTensor.identifiers(for: fetchNames)
        let types = function.typeTable()
        return ArtifactSpec(name: name, function: function,
                            feeds: feeds.indices.map { ArtifactTensor(name: feedNames[$0], type: feeds[$0].1, identifier: feedIDs[$0]) },
                            fetches: fetches.indices.map { ArtifactTensor(name: fetchNames[$0], type: types[function.results[$0]]!, identifier: fetchIDs[$0]) },
                            target: target, origin: origin)
    }

    /// What `Session` computes on the host rather than in compiled code (SessionHostOps.swift).
    static func runsOnHost(_ op: KilnFrontend.Operation) -> Bool {
        OpRegistry.def(op.type)?.hostKernel != nil || Session.answeredOps.contains(op.type)
            || op.outputSpecs.contains { $0.dtype == .string } || op.inputs.contains { $0.dtype == .string }
    }
}
