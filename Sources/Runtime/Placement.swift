import KilnIR
import KilnFrontend

/// A device of this process as TensorFlow names it: `/job:localhost/replica:0/task:0/device:GPU:0`.
public struct PlacementDevice: Hashable, Sendable, CustomStringConvertible {
    /// "CPU" or "GPU".
    public let type: String
    public let index: Int

    public init(type: String, index: Int) {
        self.type = type
        self.index = index
    }

    public static let cpu = PlacementDevice(type: "CPU", index: 0)
    public static func gpu(_ index: Int) -> PlacementDevice { PlacementDevice(type: "GPU", index: index) }

    public var isCPU: Bool { type == "CPU" }
    /// The full name, as log_device_placement prints it.
    public var name: String { "/job:localhost/replica:0/task:0/device:\(type):\(index)" }
    /// `/device:GPU:0`, as TensorFlow's short form.
    public var shortName: String { "/device:\(type):\(index)" }
    public var description: String { name }
}

/// A device specification as TensorFlow's `tf.device` and NodeDef's `device` field spell it,
/// every part optional: "/gpu:0", "/GPU:0", "/device:GPU:0", "/device:GPU:*", "gpu:1",
/// "/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost", "" (no constraint).
struct DeviceSpec: Equatable {
    var job: String?
    var replica: Int?
    var task: Int?
    var type: String?
    var index: Int?

    init() {}

    /// nil for a malformed specification (TensorFlow's DeviceNameUtils::ParseFullName rules).
    init?(_ s: String) {
        for part in s.split(separator: "/", omittingEmptySubsequences: true) {
            let f = part.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 2 || (f.count == 1 && f[0] == "*") else { return nil }
            func id(_ x: String) -> Int?? {
                if x == "*" { return .some(nil) }
                guard let i = Int(x), i >= 0 else { return nil }
                return .some(i)
            }
            switch f[0] {
            case "job":
                guard f.count == 2, !f[1].isEmpty else { return nil }
                job = f[1] == "*" ? nil : f[1]
            case "replica":
                guard f.count == 2, let r = id(f[1]) else { return nil }
                replica = r
            case "task":
                guard f.count == 2, let t = id(f[1]) else { return nil }
                task = t
            case "device":
                // "/device:GPU:0", "/device:GPU:*", "/device:GPU", "/device:*".
                guard f.count <= 3, !f[1].isEmpty else { return nil }
                if f[1] != "*" { type = ["cpu", "gpu"].contains(f[1].lowercased()) ? f[1].uppercased() : f[1] }
                if f.count == 3 { guard let i = id(f[2]) else { return nil }; index = i }
            default:
                // The legacy "/cpu:0" and "/gpu:1" (any case), and "/CPU:0" or "/XLA_GPU:0".
                guard f.count == 2, let i = id(f[1]), f[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }), f[0].first?.isLetter == true else { return nil }
                let lower = f[0].lowercased()
                type = lower == "cpu" || lower == "gpu" ? f[0].uppercased() : f[0]
                index = i
            }
        }
    }

    /// Whether `device` (a device of this process) satisfies every part given.
    func matches(_ device: PlacementDevice) -> Bool {
        (job == nil || job == "localhost") && (replica ?? 0) == 0 && (task ?? 0) == 0
            && (type == nil || type == device.type) && (index == nil || index == device.index)
    }

    /// TensorFlow's canonical spelling (what `tf.device` stores in the NodeDef): only the parts
    /// given, "/job:localhost/device:GPU:1", "/device:GPU:*".
    var canonical: String {
        var s = ""
        if let job { s += "/job:\(job)" }
        if let replica { s += "/replica:\(replica)" }
        if let task { s += "/task:\(task)" }
        if let type { s += "/device:\(type):\(index.map(String.init) ?? "*")" }
        return s
    }

    var isEmpty: Bool { job == nil && replica == nil && task == nil && type == nil && index == nil }

    /// The two constraints together (colocated ops must satisfy both), or nil when they
    /// conflict (TensorFlow's DeviceNameUtils::MergeDevNames).
    func merged(with o: DeviceSpec) -> DeviceSpec? {
        func merge<T: Equatable>(_ a: T?, _ b: T?) -> T?? {
            guard let a else { return .some(b) }
            guard let b else { return .some(a) }
            return a == b ? .some(a) : nil
        }
        guard let job = merge(job, o.job), let replica = merge(replica, o.replica), let task = merge(task, o.task),
              let type = merge(type, o.type), let index = merge(index, o.index) else { return nil }
        var m = DeviceSpec()
        m.job = job; m.replica = replica; m.task = task; m.type = type; m.index = index
        return m
    }
}

/// Where each op of a graph runs, by TensorFlow's placer rules:
/// - an op's `device` (its `tf.device` scope, or the NodeDef's field) is a constraint;
/// - colocated ops share one device: a variable with the ops that read it (`Identity`,
///   `ReadVariableOp`) or write it through a ref input (`Assign`, the optimizers' `Apply*`), and
///   ops an imported graph lists in `_class: loc:@name`; their constraints are merged;
/// - an op (group) goes to the first device that matches its constraint, preferring a GPU over
///   the CPU when it supports the op (as TensorFlow prefers a GPU kernel over a CPU one): with a
///   GPU present, ops without a device run on `/gpu:0`;
/// - a GPU supports every op the session compiles; ops the session computes on the host (strings,
///   data-dependent shapes, checkpoint I/O, questions about variables) run only on the CPU;
/// - a constraint no device supports is an error naming the op, the device asked for and the
///   devices present, unless `allowSoftPlacement`, which puts the op where it would go without
///   the constraint.
struct Placement {
    let devices: [PlacementDevice]
    /// The device of each op, by op id; nil where placing it failed (`failures`).
    private var assigned: [PlacementDevice?]
    private var failures: [Int: KilnError] = [:]
    /// Whether every op runs on the CPU (the session then compiles each run as one executable).
    let allOnCPU: Bool

    /// Places every op of `graph` on one of `devices` (CPU:0 first, then the GPUs in order).
    init(graph: Graph, devices: [PlacementDevice], allowSoftPlacement: Bool) {
        self.devices = devices
        let ops = graph.operations
        assigned = Array(repeating: nil, count: ops.count)
        // Fast path: no GPU and no op asking for a device.
        if devices == [.cpu] && !ops.contains(where: { !$0.device.isEmpty }) {
            assigned = Array(repeating: .cpu, count: ops.count)
            allOnCPU = true
            return
        }
        var groups = UnionFind(count: ops.count)
        for op in ops { for other in Placement.colocated(op, in: graph) { groups.union(op.id, other.id) } }
        // Per group: its merged constraint (or the first conflict), and whether all members have a GPU kernel.
        var spec: [Int: DeviceSpec] = [:], specOwner: [Int: Operation] = [:], conflict: [Int: KilnError] = [:]
        var gpuOK: [Int: Bool] = [:], firstHost: [Int: Operation] = [:]
        for op in ops {
            let root = groups.find(op.id)
            if !Placement.hasGPUKernel(op) {
                gpuOK[root] = false
                if firstHost[root] == nil { firstHost[root] = op }
            }
            guard !op.device.isEmpty else { continue }
            guard let s = DeviceSpec(op.device) else {
                failures[op.id] = KilnError.invalidArgument("Malformed device specification '\(op.device)' in node '\(op.name)' (op: '\(op.type)')")
                continue
            }
            let current = spec[root] ?? DeviceSpec()
            if let m = current.merged(with: s) {
                spec[root] = m
                if specOwner[root] == nil { specOwner[root] = op }
            } else if conflict[root] == nil {
                conflict[root] = KilnError.invalidArgument("Cannot colocate nodes '\(specOwner[root]!.name)' and '\(op.name)': Cannot merge devices with incompatible types: '\(current.canonical)' and '\(s.canonical)'")
            }
        }
        let present = devices.map(\.name).sorted().joined(separator: ", ")
        // A group's device, or the error each of its ops reports (naming that op).
        enum Outcome { case device(PlacementDevice), failure((Operation) -> KilnError) }
        var chosen: [Int: Outcome] = [:]
        func place(root: Int) -> Outcome {
            if let c = chosen[root] { return c }
            let supportsGPU = gpuOK[root] ?? true
            let candidates = devices.filter { supportsGPU || $0.isCPU }
            let preferred = candidates.first { !$0.isCPU } ?? .cpu
            let result: Outcome
            if let c = conflict[root], !allowSoftPlacement {
                result = .failure { _ in c }
            } else if let s = spec[root], conflict[root] == nil, !s.isEmpty {
                let matching = devices.filter { s.matches($0) }
                if let d = matching.first(where: { candidates.contains($0) && !$0.isCPU }) ?? matching.first(where: { candidates.contains($0) }) {
                    result = .device(d)
                } else if allowSoftPlacement {
                    result = .device(preferred)
                } else if matching.isEmpty {
                    result = .failure { op in KilnError.invalidArgument("Cannot assign a device for operation '\(op.name)': Could not satisfy explicit device specification '\(s.canonical)' because no devices matching that specification are registered in this process; available devices: \(present)") }
                } else {
                    let host = firstHost[root]
                    result = .failure { op in
                        let why = host.map { $0 === op ? "" : " ('\($0.name)' (op: \($0.type)), colocated with it, is computed on the host)" } ?? ""
                        return KilnError.invalidArgument("Cannot assign a device for operation '\(op.name)': Could not satisfy explicit device specification '\(s.canonical)' because no supported kernel for \(s.type ?? "GPU") devices is available.\(why)")
                    }
                }
            } else {
                result = .device(preferred)
            }
            chosen[root] = result
            return result
        }
        var onlyCPU = true
        for op in ops where failures[op.id] == nil {
            switch place(root: groups.find(op.id)) {
            case .device(let d): assigned[op.id] = d; if !d.isCPU { onlyCPU = false }
            case .failure(let error): failures[op.id] = error(op)
            }
        }
        allOnCPU = onlyCPU
    }

    /// The device of `op`, or the error that placing it met.
    func device(of op: KilnFrontend.Operation) throws -> PlacementDevice {
        if let e = failures[op.id] { throw e }
        return assigned[op.id]!
    }

    /// Whether any GPU is present (ops without a device then prefer it).
    var hasGPU: Bool { devices.contains { !$0.isCPU } }

    /// Ops that must share `op`'s device: the variable behind a ref input it writes, the variable
    /// it reads (`Identity` of a variable, `ReadVariableOp`), and `_class: loc:@name` entries.
    static func colocated(_ op: KilnFrontend.Operation, in graph: Graph) -> [KilnFrontend.Operation] {
        // Questions the session answers about its variable store run nowhere in particular.
        if OpRegistry.def(op.type)?.sessionService == .variableStore { return [] }
        var out: [KilnFrontend.Operation] = []
        let def = OpRegistry.def(op.type)
        for (k, i) in op.inputs.enumerated() {
            let reads = (op.type == "Identity" || op.type == "ReadVariableOp") && k == 0
            guard reads || def?.refInputs.contains(k) == true else { continue }
            if let v = i.underlyingVariable { out.append(v) }
        }
        for entry in op.attrs["_class"]?.stringList ?? [] where entry.hasPrefix("loc:@") {
            if let other = graph.operation(named: String(entry.dropFirst(5))) { out.append(other) }
        }
        return out
    }

    /// Whether a GPU can run `op`: everything compiled code runs (the session's host ops and
    /// string values stay on the CPU, as ops without a GPU kernel do in TensorFlow).
    static func hasGPUKernel(_ op: KilnFrontend.Operation) -> Bool {
        if ["SaveV2", "RestoreV2"].contains(op.type) || OpRegistry.def(op.type)?.hostKernel != nil { return false }
        return !op.outputSpecs.contains { $0.dtype == .string } && !op.inputs.contains { $0.dtype == .string }
    }
}

/// Disjoint sets of op ids (the colocation groups).
private struct UnionFind {
    private var parent: [Int]
    init(count: Int) { parent = Array(0..<count) }
    mutating func find(_ x: Int) -> Int {
        var r = x
        while parent[r] != r { r = parent[r] }
        var y = x
        while parent[y] != r { let next = parent[y]; parent[y] = r; y = next }
        return r
    }
    mutating func union(_ a: Int, _ b: Int) {
        let ra = find(a), rb = find(b)
        if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
    }
}
