import Foundation
import KilnIR
import SwiftProtobuf

/// What `importMetaGraph` added to a graph.
public struct MetaGraphImport {
    /// The new operations, in the order they were added.
    public let operations: [Operation]
    /// The restored collections, by key, with names under the import scope. They were also
    /// appended to the graph's own collections.
    public let collections: [String: [Any]]
    /// The variables rebuilt from the variable collections (each once), in first-seen order.
    public let variables: [Variable]
    /// The MetaGraphDef's saver_def with its tensor and op names under the import scope; nil
    /// when it has none.
    public let saverDef: Tensorflow_SaverDef?
    /// "" or "<scope>/": what imported names start with.
    public let scope: String

    /// `name` (an op or tensor name of the MetaGraphDef) as it is called in the graph.
    public func scoped(_ name: String) -> String { MetaGraphNames.scoped(name, scope) }
}

/// Reading MetaGraphDef files (`.meta`): binary, or text when the name ends in `.pbtxt`/`.txt`.
public enum MetaGraphFile {
    public static func parse(binary bytes: Data, source: String = "MetaGraphDef") throws -> Tensorflow_MetaGraphDef {
        let def: Tensorflow_MetaGraphDef
        do { def = try Tensorflow_MetaGraphDef(serializedBytes: bytes) } catch {
            throw KilnError.dataLoss("\(source) is not a valid binary MetaGraphDef (\(bytes.count) bytes)\(ProtobufWireLocation.describe([UInt8](bytes), as: .metaGraphDef)): \(error)")
        }
        // Arbitrary bytes can parse as protobuf wire data holding none of MetaGraphDef's fields.
        if !def.hasGraphDef && !def.hasMetaInfoDef && !def.hasSaverDef && def.collectionDef.isEmpty {
            throw KilnError.dataLoss("\(source) is not a valid binary MetaGraphDef (\(bytes.count) bytes): it has no graph_def, meta_info_def, saver_def or collection_def")
        }
        return def
    }

    public static func parse(text: String, source: String = "MetaGraphDef") throws -> Tensorflow_MetaGraphDef {
        do { return try Tensorflow_MetaGraphDef(textFormatString: text) } catch {
            throw KilnError.invalidArgument("\(source) is not a valid text-format MetaGraphDef: \(error)")
        }
    }

    public static func read(path: String) throws -> Tensorflow_MetaGraphDef {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KilnError.notFound("cannot read MetaGraphDef file '\(path)': no such readable file")
        }
        if GraphDefFile.isTextPath(path) {
            guard let text = String(data: data, encoding: .utf8) else { throw KilnError.invalidArgument("text MetaGraphDef '\(path)' is not UTF-8") }
            return try parse(text: text, source: "'\(path)'")
        }
        return try parse(binary: data, source: "'\(path)'")
    }
}

/// Collection keys whose bytes_list holds serialized VariableDefs (TensorFlow registers a
/// proto type for each of these).
let variableCollectionKeys: Set<String> = [
    GraphKeys.globalVariables, GraphKeys.trainableVariables, GraphKeys.localVariables, GraphKeys.modelVariables,
    GraphKeys.globalStep, GraphKeys.movingAverageVariables, "metric_variables", "concatenated_variables",
    "trainable_resource_variables",
]

enum MetaGraphNames {
    /// TensorFlow's prepend_name_scope: "x:0" -> "s/x:0", "^x" -> "^s/x".
    static func scoped(_ name: String, _ scope: String) -> String {
        guard !scope.isEmpty else { return name }
        return name.hasPrefix("^") ? "^" + scope + name.dropFirst() : scope + name
    }
}

extension Graph {
    /// The `meta_info_def.tensorflow_version` Kiln writes.
    public static let metaGraphProducer = "kiln"

    /// This graph as a MetaGraphDef (TensorFlow's export_meta_graph): the GraphDef, `saverDef`
    /// when given, and the collections. Variable collections become bytes_lists of VariableDef,
    /// collections of operations and tensors node_lists of their names, strings and `Data`
    /// bytes_lists, integers int64_lists, floats float_lists.
    ///
    /// - Parameter collections: the keys to export; nil exports every collection whose items
    ///   can be written (others are left out, as TensorFlow does). A key named explicitly that
    ///   holds something else is an error.
    public func exportMetaGraph(saverDef: Tensorflow_SaverDef? = nil, collections keys: [String]? = nil) throws -> Tensorflow_MetaGraphDef {
        var meta = Tensorflow_MetaGraphDef()
        var info = Tensorflow_MetaGraphDef.MetaInfoDef()
        info.tensorflowVersion = Graph.metaGraphProducer
        info.strippedOpList = Tensorflow_OpList()
        meta.metaInfoDef = info
        meta.graphDef = graphDef()
        if let saverDef { meta.saverDef = saverDef }
        for key in keys ?? collections.keys.sorted() {
            let items = collection(key)
            if keys == nil && items.isEmpty { continue }
            if let def = try collectionDef(items) {
                meta.collectionDef[key] = def
            } else if keys != nil {
                let kinds = Set(items.map { String(describing: type(of: $0)) }).sorted()
                throw KilnError.invalidArgument("collection '\(key)' holds \(kinds.joined(separator: ", ")), which a MetaGraphDef cannot hold (it takes variables, queue runners, operations, tensors, strings, bytes, integers or floats, one kind per collection)")
            }
        }
        return meta
    }

    /// The binary MetaGraphDef (a `.meta` file's bytes), deterministic for equal graphs.
    public func serializedMetaGraph(saverDef: Tensorflow_SaverDef? = nil, collections keys: [String]? = nil) throws -> Data {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let meta = try exportMetaGraph(saverDef: saverDef, collections: keys)
        do { return try meta.serializedData(options: options) } catch {
            throw KilnError(.resourceExhausted, "cannot serialize the MetaGraphDef of \(operations.count) operations (protobuf messages are limited to 2 GiB): \(error)")
        }
    }

    /// The CollectionDef for `items`, or nil when they are not all of one writable kind.
    private func collectionDef(_ items: [Any]) throws -> Tensorflow_CollectionDef? {
        var def = Tensorflow_CollectionDef()
        if !items.isEmpty && items.allSatisfy({ $0 is QueueRunner }) {
            var list = Tensorflow_CollectionDef.BytesList()
            list.value = try items.map { try ($0 as! QueueRunner).queueRunnerDef.serializedData() }
            def.bytesList = list
        } else if items.allSatisfy({ $0 is Variable }) {
            var list = Tensorflow_CollectionDef.BytesList()
            list.value = try items.map { try ($0 as! Variable).variableDef.serializedData() }
            def.bytesList = list
        } else if items.allSatisfy({ $0 is Operation || $0 is Output }) {
            var list = Tensorflow_CollectionDef.NodeList()
            list.value = items.map { ($0 as? Operation)?.name ?? ($0 as! Output).name }
            def.nodeList = list
        } else if items.allSatisfy({ $0 is String || $0 is Data }) {
            var list = Tensorflow_CollectionDef.BytesList()
            list.value = items.map { ($0 as? Data) ?? Data(($0 as! String).utf8) }
            def.bytesList = list
        } else if items.allSatisfy({ $0 is Int || $0 is Int64 || $0 is Int32 }) {
            var list = Tensorflow_CollectionDef.Int64List()
            list.value = items.map { ($0 as? Int).map(Int64.init) ?? ($0 as? Int32).map(Int64.init) ?? ($0 as! Int64) }
            def.int64List = list
        } else if items.allSatisfy({ $0 is Double || $0 is Float }) {
            var list = Tensorflow_CollectionDef.FloatList()
            list.value = items.map { ($0 as? Float) ?? Float($0 as! Double) }
            def.floatList = list
        } else {
            return nil
        }
        return def
    }

    // MARK: import

    /// Reads and imports a `.meta` file; see `importMetaGraph(_:importScope:inputMap:)`.
    @discardableResult
    public func importMetaGraph(contentsOf path: String, importScope: String = "", inputMap: [String: Output] = [:]) throws -> MetaGraphImport {
        try importMetaGraph(MetaGraphFile.read(path: path), importScope: importScope, inputMap: inputMap)
    }

    /// Adds a MetaGraphDef's graph to this one and restores its collections (TensorFlow's
    /// import_meta_graph without the saver, which the runtime builds from `saverDef`).
    ///
    /// Variables are rebuilt from the variable collections (the VariableV2 or VarHandleOp op,
    /// its initializer and its read snapshot), so `globalVariables` and `trainableVariables`
    /// work; node_list entries come back as operations ("name") and tensors ("name:0"). With
    /// `importScope`, every name is put under that scope (made unique like a name scope).
    /// Attributes stripped as defaults (`stripped_default_attrs`) are put back from the
    /// MetaGraphDef's stripped_op_list.
    @discardableResult
    public func importMetaGraph(_ meta: Tensorflow_MetaGraphDef, importScope: String = "", inputMap: [String: Output] = [:]) throws -> MetaGraphImport {
        var graphDef = meta.graphDef
        if meta.metaInfoDef.strippedDefaultAttrs { Graph.restoreDefaultAttrs(&graphDef, from: meta.metaInfoDef.strippedOpList) }
        // The same unique scope importGraphDef will choose (it asks without claiming the name).
        let scope = importScope.isEmpty ? "" : uniqueName(importScope, markAsUsed: false) + "/"
        let ops = try importGraphDef(graphDef, prefix: importScope, inputMap: inputMap)

        var restored: [String: [Any]] = [:]
        var variables: [Variable] = []
        var byVariableOp: [Operation: Variable] = [:]
        let trainableNames = Set(try variableDefs(meta, key: GraphKeys.trainableVariables).map(\.variableName))
        for key in meta.collectionDef.keys.sorted() {
            let def = meta.collectionDef[key]!
            var items: [Any] = []
            switch def.kind {
            case .nodeList(let list)?:
                for name in list.value {
                    let scoped = MetaGraphNames.scoped(name, scope)
                    if name.contains(":") {
                        items.append(try lookUp({ try tensor(named: scoped) }, in: key))
                    } else {
                        guard let op = operation(named: scoped) else {
                            throw KilnError.notFound("collection '\(key)' of the MetaGraphDef names operation '\(name)', which its graph does not have")
                        }
                        items.append(op)
                    }
                }
            case .bytesList? where variableCollectionKeys.contains(key):
                for v in try variableDefs(meta, key: key) {
                    let variable = try rebuildVariable(v, scope: scope, collection: key, trainable: v.trainable || trainableNames.contains(v.variableName),
                                                       known: &byVariableOp)
                    if !variables.contains(variable) { variables.append(variable) }
                    items.append(variable)
                }
            case .bytesList(let list)? where key == GraphKeys.queueRunners:
                // TensorFlow's queue_runners hold QueueRunnerDefs: runners to start again.
                items = try list.value.enumerated().map { k, bytes in
                    let def: Tensorflow_QueueRunnerDef
                    do { def = try Tensorflow_QueueRunnerDef(serializedBytes: bytes) } catch {
                        throw KilnError.dataLoss("entry \(k) of collection '\(key)' of the MetaGraphDef is not a QueueRunnerDef: \(error)")
                    }
                    return try QueueRunner(def, graph: self, scope: scope)
                }
            case .bytesList(let list)?: items = list.value
            case .int64List(let list)?: items = list.value.map { Int($0) }
            case .floatList(let list)?: items = list.value.map { Double($0) }
            case .anyList?, nil: continue
            }
            restored[key] = items
            for item in items { addToCollection(key, item) }
        }

        var saverDef: Tensorflow_SaverDef?
        if meta.hasSaverDef {
            var s = meta.saverDef
            s.filenameTensorName = MetaGraphNames.scoped(s.filenameTensorName, scope)
            s.saveTensorName = MetaGraphNames.scoped(s.saveTensorName, scope)
            s.restoreOpName = MetaGraphNames.scoped(s.restoreOpName, scope)
            saverDef = s
        }
        return MetaGraphImport(operations: ops, collections: restored, variables: variables, saverDef: saverDef, scope: scope)
    }

    private func variableDefs(_ meta: Tensorflow_MetaGraphDef, key: String) throws -> [Tensorflow_VariableDef] {
        guard case .bytesList(let list)? = meta.collectionDef[key]?.kind else { return [] }
        return try list.value.enumerated().map { k, bytes in
            do { return try Tensorflow_VariableDef(serializedBytes: bytes) } catch {
                throw KilnError.dataLoss("entry \(k) of collection '\(key)' of the MetaGraphDef is not a VariableDef: \(error)")
            }
        }
    }

    /// The Variable a VariableDef describes, made once per variable op.
    private func rebuildVariable(_ def: Tensorflow_VariableDef, scope: String, collection key: String, trainable: Bool,
                                 known: inout [Operation: Variable]) throws -> Variable {
        let at = "variable '\(def.variableName)' of collection '\(key)'"
        let ref = try lookUp({ try tensor(named: MetaGraphNames.scoped(def.variableName, scope)) }, in: key)
        guard let variableOp = ref.underlyingVariable, variableOp === ref.op else {
            throw KilnError.invalidArgument("\(at) names '\(ref.name)' (op: \(ref.op.type)), which is not a variable op")
        }
        if let v = known[variableOp] { return v }
        if let v = globalVariables.first(where: { $0.variableOp === variableOp }) ?? localVariables.first(where: { $0.variableOp === variableOp }) {
            known[variableOp] = v
            return v
        }
        guard let initializer = operation(named: MetaGraphNames.scoped(def.initializerName, scope)) else {
            throw KilnError.notFound("\(at): its initializer '\(def.initializerName)' is not in the graph")
        }
        let snapshot = try lookUp({ try tensor(named: MetaGraphNames.scoped(def.snapshotName, scope)) }, in: key)
        let initialValue: Output
        if !def.initialValueName.isEmpty {
            initialValue = try lookUp({ try tensor(named: MetaGraphNames.scoped(def.initialValueName, scope)) }, in: key)
        } else if initializer.inputs.count == 2 {
            // Files older than initial_value_name: the initializer is Assign(variable, value).
            initialValue = initializer.inputs[1]
        } else {
            throw KilnError.invalidArgument("\(at): no initial_value_name, and its initializer '\(initializer.name)' (op: \(initializer.type)) does not show the value")
        }
        let v = Variable(variableOp: variableOp, initializer: initializer, initialValue: initialValue, value: snapshot, trainable: trainable)
        known[variableOp] = v
        return v
    }

    private func lookUp<T>(_ body: () throws -> T, in key: String) throws -> T {
        do { return try body() } catch let e as KilnError {
            throw KilnError(e.code, "collection '\(key)' of the MetaGraphDef: \(e.message)")
        }
    }

    /// Puts back the attributes a writer left out because they equal the op's defaults.
    static func restoreDefaultAttrs(_ graphDef: inout Tensorflow_GraphDef, from ops: Tensorflow_OpList) {
        var defaults: [String: [(String, Tensorflow_AttrValue)]] = [:]
        for op in ops.op {
            defaults[op.name] = op.attr.filter(\.hasDefaultValue).map { ($0.name, $0.defaultValue) }
        }
        for i in graphDef.node.indices {
            for (name, value) in defaults[graphDef.node[i].op] ?? [] where graphDef.node[i].attr[name] == nil {
                graphDef.node[i].attr[name] = value
            }
        }
    }
}

extension Variable {
    /// This variable as TensorFlow's VariableDef (what variable collections hold).
    public var variableDef: Tensorflow_VariableDef {
        var d = Tensorflow_VariableDef()
        d.variableName = ref.name
        d.initializerName = initializer.name
        d.snapshotName = value.name
        d.initialValueName = initialValue.name
        d.isResource = variableOp.type == "VarHandleOp"
        d.trainable = trainable
        return d
    }
}
