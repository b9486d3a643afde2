import Foundation
import KilnIR
import KilnFrontend
import SwiftProtobuf

/// TensorFlow 1's tf.train.Saver: saves variables to V2 checkpoints (`prefix-N.index`,
/// `prefix-N.data-00000-of-00001`), with the graph as `prefix-N.meta` and the directory's
/// `checkpoint` state file, keeps the newest `maxToKeep` checkpoints, and restores them.
///
/// Checkpoint keys are the variables' op names (`conv1/weights`), as TensorFlow's Saver writes
/// them, so checkpoints move freely between Kiln and TensorFlow. `save` and `restore` read and
/// write the session's variables directly; the saver also builds TensorFlow's `save/` subgraph
/// (SaveV2, RestoreV2, `save/restore_all`) so exported .meta files carry a working SaverDef and
/// running those ops through a session does the same thing.
public final class Saver: @unchecked Sendable {
    public let graph: Graph
    /// Checkpoint key and variable op, sorted by key.
    public let variables: [(key: String, variable: KilnFrontend.Operation)]
    /// How many recent checkpoints to keep; 0 keeps all.
    public let maxToKeep: Int
    /// Besides the newest `maxToKeep`, one checkpoint per this many hours is kept for good.
    public let keepCheckpointEveryNHours: Double
    /// The names of the saver's ops in the graph, as a MetaGraphDef records them.
    public let saverDef: Tensorflow_SaverDef

    /// Checkpoints this saver wrote (or was told about), oldest first, with Unix times.
    public private(set) var lastCheckpoints: [(path: String, time: Double)] = []
    private var toBeDeleted: [(path: String, time: Double)] = []
    /// A checkpoint newer than this is kept for good when it leaves `lastCheckpoints`
    /// (TensorFlow's _next_checkpoint_time); internal so tests can start it at a known time.
    var nextPreservedTime: Double
    private let lock = NSLock()

    /// Seconds since 1970; tests substitute a clock to exercise keepCheckpointEveryNHours.
    var clock: () -> Double = { Date().timeIntervalSince1970 }
    /// Runs at each step of a save's commit: tests make it throw to check that a failed or
    /// killed save leaves the previous checkpoint and state intact, or the new ones complete.
    var commitHook: CheckpointCommit.Hook?

    /// A saver for `varList` (default: every global variable), keyed by variable op name.
    public convenience init(graph: Graph, varList: [Variable]? = nil, maxToKeep: Int = 5,
                            keepCheckpointEveryNHours: Double = 10000, name: String = "save") throws {
        var seen = Set<KilnFrontend.Operation>()
        let list = (varList ?? graph.globalVariables).filter { seen.insert($0.variableOp).inserted }
        var keyed: [String: Variable] = [:]
        for v in list {
            if keyed[v.name] != nil { throw KilnError.invalidArgument("At least two variables have the same name: \(v.name)") }
            keyed[v.name] = v
        }
        try self.init(graph: graph, varList: keyed, maxToKeep: maxToKeep, keepCheckpointEveryNHours: keepCheckpointEveryNHours, name: name)
    }

    /// A saver whose checkpoint keys are given: `["old_scope/w": w]` restores a checkpoint
    /// written under other names.
    public init(graph: Graph, varList: [String: Variable], maxToKeep: Int = 5, keepCheckpointEveryNHours: Double = 10000,
                name: String = "save") throws {
        guard !varList.isEmpty else { throw KilnError.invalidArgument("No variables to save") }
        for (key, v) in varList {
            guard !key.isEmpty else { throw KilnError.invalidArgument("checkpoint key of variable '\(v.name)' is empty") }
            guard v.graph === graph else { throw KilnError.invalidArgument("variable '\(v.name)' belongs to another graph") }
        }
        try Saver.checkLimits(maxToKeep, keepCheckpointEveryNHours)
        let sorted = varList.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        self.graph = graph
        self.variables = sorted.map { (key: $0.key, variable: $0.value.variableOp) }
        self.maxToKeep = maxToKeep
        self.keepCheckpointEveryNHours = keepCheckpointEveryNHours
        self.saverDef = try Saver.buildSubgraph(graph, sorted.map { ($0.key, $0.value) }, name: name,
                                                maxToKeep: maxToKeep, keepHours: keepCheckpointEveryNHours)
        self.nextPreservedTime = 0
        self.nextPreservedTime = clock() + keepCheckpointEveryNHours * 3600
    }

    /// The saver a MetaGraphDef describes (its ops are already in `graph`): its variables and
    /// keys come from the SaveV2 node that `saverDef.save_tensor_name` depends on.
    public init(graph: Graph, saverDef: Tensorflow_SaverDef) throws {
        let saveTensor: Output
        do { saveTensor = try graph.tensor(named: saverDef.saveTensorName) } catch let e as KilnError {
            throw KilnError(e.code, "saver_def.save_tensor_name: \(e.message)")
        }
        var pairs: [(key: String, variable: KilnFrontend.Operation)] = []
        var saveOps: [KilnFrontend.Operation] = []
        var stack = [saveTensor.op], seen = Set<KilnFrontend.Operation>()
        while let op = stack.popLast() {
            guard seen.insert(op).inserted else { continue }
            if op.type == "SaveV2" { saveOps.append(op); continue }
            stack += op.controlInputs + op.inputs.map(\.op)
        }
        guard !saveOps.isEmpty else {
            throw KilnError.invalidArgument("saver_def.save_tensor_name '\(saverDef.saveTensorName)' does not depend on a SaveV2 op (Kiln reads V2 checkpoints only)")
        }
        for save in saveOps.sorted(by: { $0.id < $1.id }) {
            guard let names = save.inputs[1].op.attrs["value"]?.tensor, save.inputs[1].op.type == "Const" else {
                throw KilnError.unimplemented("'\(save.name)' takes its tensor names from '\(save.inputs[1].name)' (op: \(save.inputs[1].op.type)); Kiln needs a Const")
            }
            for (k, tensor) in save.inputs.dropFirst(3).enumerated() {
                guard let variable = tensor.underlyingVariable else {
                    throw KilnError.unimplemented("'\(save.name)' saves '\(tensor.name)' (op: \(tensor.op.type)), which is not a variable; Kiln's Saver saves variables")
                }
                guard k < names.strings.count else { throw KilnError.invalidArgument("'\(save.name)' has fewer tensor names than tensors") }
                pairs.append((key: String(decoding: names.strings[k], as: UTF8.self), variable: variable))
            }
        }
        try Saver.checkLimits(Int(saverDef.maxToKeep), Double(saverDef.keepCheckpointEveryNHours))
        self.graph = graph
        self.variables = pairs.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        self.maxToKeep = Int(saverDef.maxToKeep)
        self.keepCheckpointEveryNHours = Double(saverDef.keepCheckpointEveryNHours)
        self.saverDef = saverDef
        self.nextPreservedTime = 0
        self.nextPreservedTime = clock() + keepCheckpointEveryNHours * 3600
    }

    private static func checkLimits(_ maxToKeep: Int, _ hours: Double) throws {
        guard maxToKeep >= 0 else { throw KilnError.invalidArgument("maxToKeep must be >= 0 (0 keeps every checkpoint), got \(maxToKeep)") }
        guard hours > 0, hours.isFinite else { throw KilnError.invalidArgument("keepCheckpointEveryNHours must be positive, got \(hours)") }
    }

    // MARK: the save/ subgraph

    /// TensorFlow's Saver ops under `name` (made unique: save, save_1, ...):
    /// `filename/input` -> `filename` -> `Const` (the prefix, "model" unless fed),
    /// `SaveV2` with `control_dependency` = Identity(Const, ^SaveV2), `RestoreV2` feeding one
    /// Assign (AssignVariableOp for resource variables) per variable, and `restore_all`.
    private static func buildSubgraph(_ graph: Graph, _ vars: [(key: String, variable: Variable)], name: String,
                                      maxToKeep: Int, keepHours: Double) throws -> Tensorflow_SaverDef {
        try graph.withoutControlDependencies {
            try graph.nameScope(name) {
                let constant = { (t: Tensor, name: String) throws -> Output in
                    try graph.addOperation("Const", name: name, attrs: ["value": .tensor(t), "dtype": .type(.string)]).output()
                }
                let strings = { (values: [String], name: String) throws -> Output in
                    try constant(Tensor(shape: [values.count], strings: values.map { Array($0.utf8) }), name)
                }
                let scalarString: [String: AttrValue] = ["dtype": .type(.string), "shape": .shape(Shape([]))]
                let input = try constant(Tensor("model"), "filename/input")
                let filename = try graph.addOperation("PlaceholderWithDefault", name: "filename", inputs: [input], attrs: scalarString).output()
                let prefix = try graph.addOperation("PlaceholderWithDefault", name: "Const", inputs: [filename], attrs: scalarString).output()

                let keys = vars.map(\.key)
                // TensorFlow saves a ref variable itself and a resource variable's read.
                let tensors = vars.map { $0.variable.variableOp.type == "VariableV2" ? $0.variable.ref : $0.variable.value }
                let dtypes = AttrValue.types(tensors.map(\.dtype))
                let saveNames = try strings(keys, "SaveV2/tensor_names")
                let saveSlices = try strings(keys.map { _ in "" }, "SaveV2/shape_and_slices")
                let save = try graph.addOperation("SaveV2", name: "SaveV2", inputs: [prefix, saveNames, saveSlices] + tensors, attrs: ["dtypes": dtypes])
                let saveTensor = try graph.addOperation("Identity", name: "control_dependency", inputs: [prefix], controlInputs: [save],
                                                        attrs: ["T": .type(.string)]).output()

                let restore = try graph.device("/device:CPU:0") {
                    let names = try strings(keys, "RestoreV2/tensor_names")
                    let slices = try strings(keys.map { _ in "" }, "RestoreV2/shape_and_slices")
                    return try graph.addOperation("RestoreV2", name: "RestoreV2", inputs: [prefix, names, slices], attrs: ["dtypes": dtypes])
                }
                var assigns: [KilnFrontend.Operation] = []
                for (k, (_, v)) in vars.enumerated() {
                    if v.variableOp.type == "VariableV2" {
                        assigns.append(try graph.addOperation("Assign", name: "Assign", inputs: [v.ref, restore.output(k)], attrs: ["T": .type(v.dtype)]))
                    } else {
                        let value = try graph.addOperation("Identity", name: "Identity", inputs: [restore.output(k)], attrs: ["T": .type(v.dtype)]).output()
                        assigns.append(try graph.addOperation("AssignVariableOp", name: "AssignVariableOp", inputs: [v.ref, value], attrs: ["dtype": .type(v.dtype)]))
                    }
                }
                let restoreAll = try graph.addOperation("NoOp", name: "restore_all", controlInputs: assigns)

                var def = Tensorflow_SaverDef()
                def.filenameTensorName = prefix.name
                def.saveTensorName = saveTensor.name
                def.restoreOpName = restoreAll.name
                def.maxToKeep = Int32(clamping: maxToKeep)
                def.keepCheckpointEveryNHours = Float(keepHours)
                def.version = .v2
                return def
            }
        }
    }

    // MARK: saving

    /// Saves the variables' values in `session` to `prefix` (`prefix-<globalStep>` when a step is
    /// given), writes the MetaGraphDef beside it (`.meta`) unless told not to, records it in the
    /// directory's `checkpoint` file and deletes checkpoints beyond `maxToKeep`.
    ///
    /// All of it is one atomic commit (CheckpointCommit): the new files are complete under
    /// temporary names before any is renamed, and a failure or a kill at any point leaves either
    /// the previous checkpoints and state or the new ones, never a mixture.
    /// - Returns: the checkpoint's prefix.
    @discardableResult
    public func save(_ session: Session, prefix: String, globalStep: Int? = nil, writeMetaGraph: Bool = true,
                     latestFilename: String = CheckpointState.defaultFilename) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        guard session.graph === graph else { throw KilnError.invalidArgument("the session runs another graph than this saver's") }
        guard !prefix.isEmpty else { throw KilnError.invalidArgument("the checkpoint prefix is empty") }
        let path = globalStep.map { "\(prefix)-\($0)" } ?? prefix
        var tensors: [(key: String, tensor: Tensor)] = []
        for (key, op) in variables {
            guard let t = session.value(of: op) else {
                throw KilnError.failedPrecondition("Attempting to save uninitialized variable '\(op.name)' (checkpoint key '\(key)') to '\(path)'")
            }
            tensors.append((key: key, tensor: t))
        }
        var files = try CheckpointWriter.temporaries(tensors, prefix: path)
        if writeMetaGraph {
            files.append(try AtomicFile.complete([UInt8](try graph.serializedMetaGraph(saverDef: saverDef)), path: path + ".meta"))
        }

        // The bookkeeping changes only once the commit succeeds.
        let directory = (path as NSString).deletingLastPathComponent
        var last = lastCheckpoints, queue = toBeDeleted
        recordLastCheckpoint(path, in: &last, evicting: &queue)
        let all = maxToKeep == 0 ? [path] : last.map(\.path)
        files.append(try CheckpointState(modelCheckpointPath: path, allModelCheckpointPaths: all)
            .temporaryFile(directory: directory.isEmpty ? "." : directory, filename: latestFilename))
        var next = nextPreservedTime
        let removals = oldCheckpointFiles(queue, nextPreservedTime: &next)
        // Checkpoints adopted from another directory (recoverLastCheckpoints) are deleted after the commit.
        let here = removals.filter { ($0 as NSString).deletingLastPathComponent == directory }
        try CheckpointCommit.commit(files, removing: here, name: path, hook: commitHook)
        lastCheckpoints = last
        toBeDeleted = []
        nextPreservedTime = next
        // Like TensorFlow, a file that cannot be removed is left behind, not an error.
        for file in removals where (file as NSString).deletingLastPathComponent != directory {
            try? FileManager.default.removeItem(atPath: file)
        }
        return path
    }

    /// Writes the graph's MetaGraphDef with this saver's SaverDef to `path`, atomically.
    public func exportMetaGraph(to path: String, collections: [String]? = nil) throws {
        let bytes = try graph.serializedMetaGraph(saverDef: saverDef, collections: collections)
        try AtomicFile.write([UInt8](bytes), to: path)
    }

    /// TensorFlow's _RecordLastCheckpoint: a path saved again moves to the end; the oldest beyond
    /// `maxToKeep` is queued for deletion.
    private func recordLastCheckpoint(_ path: String, in last: inout [(path: String, time: Double)],
                                      evicting queue: inout [(path: String, time: Double)]) {
        guard maxToKeep > 0 else { return }
        last.removeAll { $0.path == path }
        last.append((path: path, time: clock()))
        if last.count > maxToKeep { queue.append(last.removeFirst()) }
    }

    /// TensorFlow's _MaybeDeleteOldCheckpoints: the files of the queued checkpoints (index first,
    /// so a checkpoint stops existing before its data goes), except one per
    /// `keepCheckpointEveryNHours`, which stays on disk (no longer tracked).
    private func oldCheckpointFiles(_ queue: [(path: String, time: Double)], nextPreservedTime next: inout Double) -> [String] {
        var files: [String] = []
        for (path, time) in queue {
            if time > next {
                next += keepCheckpointEveryNHours * 3600
                continue
            }
            files += CheckpointPaths.existingFiles(prefix: path) + [path + ".meta"]
        }
        return files
    }

    /// Adopts checkpoints written earlier (by another process, say) so `maxToKeep` counts and
    /// deletes them too: TensorFlow's recover_last_checkpoints. Missing ones are skipped.
    public func recoverLastCheckpoints(_ paths: [String]) {
        lock.lock()
        defer { lock.unlock() }
        let now = clock()
        for p in paths where CheckpointPaths.exists(prefix: p) {
            lastCheckpoints.removeAll { $0.path == p }
            lastCheckpoints.append((path: p, time: now))
        }
        if maxToKeep > 0, lastCheckpoints.count > maxToKeep {
            toBeDeleted += lastCheckpoints.prefix(lastCheckpoints.count - maxToKeep)
            lastCheckpoints.removeFirst(lastCheckpoints.count - maxToKeep)
        }
    }

    // MARK: restoring

    /// Sets every variable of the saver to its value in checkpoint `prefix`. Nothing in the
    /// session changes unless every variable can be restored: all tensors are read (and their
    /// checksums verified) first. A key missing from the checkpoint is notFound, a dtype or shape
    /// that does not match the variable invalidArgument, corrupted data dataLoss; each names
    /// the variable.
    public func restore(_ session: Session, prefix: String) throws {
        lock.lock()
        defer { lock.unlock() }
        guard session.graph === graph else { throw KilnError.invalidArgument("the session runs another graph than this saver's") }
        let reader = try CheckpointReader(prefix: prefix)
        let stored = reader.dtypesAndShapes
        var values: [(KilnFrontend.Operation, Tensor)] = []
        for (key, op) in variables {
            guard reader.contains(key) else {
                throw KilnError.notFound("Key \(key) not found in checkpoint '\(prefix)': cannot restore variable '\(op.name)'")
            }
            let declared = op.outputSpecs[0]
            if let (dtype, shape) = stored[key] {
                guard dtype == declared.dtype else {
                    throw KilnError.invalidArgument("cannot restore variable '\(op.name)' of dtype \(declared.dtype) from tensor '\(key)' of dtype \(dtype) in checkpoint '\(prefix)'")
                }
                guard Shape(shape).isCompatible(with: declared.shape) else {
                    throw KilnError.invalidArgument("cannot restore variable '\(op.name)' of shape \(declared.shape) from tensor '\(key)' of shape \(Shape(shape)) in checkpoint '\(prefix)'")
                }
            }
            do { values.append((op, try reader.tensor(named: key))) } catch let e as KilnError {
                throw KilnError(e.code, "cannot restore variable '\(op.name)': \(e.message)")
            }
        }
        for (op, t) in values { try session.setValue(t, of: op) }
    }
}

/// TensorFlow's tf.train.import_meta_graph: imports a MetaGraphDef (a `.meta` file) into
/// `graph` and returns what it added, with a Saver built from its saver_def (or, without one,
/// a new Saver over its variables; nil when it has none).
@discardableResult
public func importMetaGraph(contentsOf path: String, into graph: Graph, importScope: String = "") throws -> (imported: MetaGraphImport, saver: Saver?) {
    try importMetaGraph(MetaGraphFile.read(path: path), into: graph, importScope: importScope)
}

@discardableResult
public func importMetaGraph(_ meta: Tensorflow_MetaGraphDef, into graph: Graph, importScope: String = "") throws -> (imported: MetaGraphImport, saver: Saver?) {
    let imported = try graph.importMetaGraph(meta, importScope: importScope)
    if let def = imported.saverDef { return (imported, try Saver(graph: graph, saverDef: def)) }
    let variables = (imported.collections[GraphKeys.globalVariables] ?? []).compactMap { $0 as? Variable }
    return (imported, variables.isEmpty ? nil : try Saver(graph: graph, varList: variables))
}
