import KilnIR

/// Renders `KernelRenderer` calls as one C-like translation unit (C99 or OpenCL C, per
/// `CDialect`). Every value is a typed local (`const float v12 = v10 * v11;`), computed the way
/// LLVM defines the operation: wrapping integer arithmetic in the unsigned type (signed overflow
/// is undefined in C), signedness through casts, unordered float predicates as negated ordered
/// ones, saturating conversions and NaN-ignoring min/max as small prelude functions. Loops are
/// `for` loops over int64 induction variables; a function's buffer pointers, stack arrays and
/// slots are declared at its start, read-only arrays at file scope.
///
/// Loop hints: `keepRolled` and `unrollFully` become the dialect's unroll pragmas. `vectorize` lets LLVM
/// reassociate a float reduction (vector accumulators, more accurate than one running sum as
/// well as faster); C compilers may not without -ffast-math, so a hinted loop that only
/// accumulates float sums into slots gets `#pragma omp simd reduction(+: ...)` for exactly
/// those slots (-fopenmp-simd), and any other hinted loop keeps C's order.
public final class CStyleRenderer: KernelRenderer, CStyleSource {
    public let dialect: CDialect
    private let title: String

    /// Prelude functions used so far, in first-use order.
    private var helperOrder: [String] = []
    private var helpers: Set<String> = []
    private var constantArrays: [String] = []
    private var constantArrayNames: [String: String] = [:]
    private var fileNames: Set<String> = []
    private var prototypes: [String] = []
    private var prototypeNames: Set<String> = []
    private var definitions: [String] = []
    private var usesDouble = false
    /// Whether the source so far uses double (OpenCL: needs cl_khr_fp64).
    public var usesFloat64: Bool { usesDouble }
    private var usesAtomics = false
    /// What each parameter of the last function ended receives (OpenCL, where buffers are
    /// parameters): a device launch passes exactly these, in order.
    public private(set) var lastFunctionParameters: [DeviceArgument] = []
    /// What the calls asked for that this dialect cannot express; each is also an `#error`
    /// line in `source`, so a compiler refuses the file with the same words.
    public private(set) var refusals: [String] = []

    private struct Value {
        let expr: String
        let type: ScalarType
        var pointer: Int? = nil
    }
    private var values: [Value] = []

    private enum Space { case global, `private`, constant, local }
    /// A pointer value's target: its element type is its declaration's (nil: `char`) or, for a
    /// buffer declared at the function's start, its first typed access's; other types reach it
    /// through a cast.
    private struct Pointer {
        let name: String
        let space: Space
        var element: ScalarType?
        var stored = false
        /// For a buffer declared at the function's start: how it is computed from a `char *`
        /// expression (nil for stack arrays, constant arrays and locals).
        let source: String?
        /// The pointer an offset was computed from (a call writing through it writes its root).
        var base: Int? = nil
    }
    private var pointers: [Pointer] = []

    private enum Key: Hashable { case input(Int), output(Int), constant(Int), arena(Int) }

    private final class FunctionState {
        let f: RFunction
        let exported: Bool
        let kernel: Bool
        var body: [String] = []
        var depth = 1
        var roots: [Key: Int] = [:]
        var rootOrder: [Int] = []
        var arrays: [String] = []
        var slots: [String] = []
        var argsTable = false
        var callsOut = false
        var parameters: [Int: RValue] = [:]
        var rootKeys: [Int: Key] = [:]
        var names: Set<String> = ["inputs", "outputs", "arena", "constants", "begin", "end", "kiln_args"]
        init(f: RFunction, exported: Bool, kernel: Bool) {
            self.f = f
            self.exported = exported
            self.kernel = kernel
        }
    }
    private var fn: FunctionState?

    /// What a loop's body did, so a vectorisable float sum can be declared as a reduction.
    private final class LoopFrame {
        let vectorize: Bool
        /// Where in the function's body the loop's `for` line is.
        let header: Int
        /// Stored nothing to memory, called nothing, has no nested control flow.
        var simple = true
        var slotLoads: [Int: Int] = [:]
        var slotStores: [Int: [Int]] = [:]
        init(vectorize: Bool, header: Int) {
            self.vectorize = vectorize
            self.header = header
        }
    }
    private var loops: [LoopFrame] = []
    /// Booleans made as `p | q` or `p & q`, so a select on one can test them one at a time.
    private var conditions: [Int: (IntBinary, RValue, RValue)] = [:]
    /// Float additions made inside a loop being watched: result id -> operand ids.
    private var floatAdds: [Int: (Int, Int)] = [:]

    private var nextSlot = 0
    private var nextLocal = 0

    /// `title` names what is rendered in the file's first line (the IR function).
    public init(_ dialect: CDialect, title: String = "kernels") {
        self.dialect = dialect
        self.title = title
    }

    /// The translation unit so far: header, prelude helpers, read-only arrays, prototypes and
    /// every function ended so far, then (C99 loaded in-process) `kiln_bind`.
    public var source: String {
        var lines = ["/* Kiln: \(title), rendered as \(dialect.name). */"]
        lines += refusals.map { "#error \"\(dialect.name) cannot express \($0)\"" }
        lines += dialect.header
        if usesDouble, let pragma = dialect.doubleExtension { lines.append(pragma) }
        if usesAtomics {
            lines += ["#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable",
                      "#pragma OPENCL EXTENSION cl_khr_int64_extended_atomics : enable"]
        }
        if dialect.bindsRuntime { lines += CPrelude.runtimeTable }
        for h in helperOrder { lines.append(CPrelude.definition(h, dialect)) }
        lines.append("")
        if !constantArrays.isEmpty { lines += constantArrays + [""] }
        if !prototypes.isEmpty { lines += prototypes + [""] }
        lines += definitions
        if dialect.bindsRuntime {
            lines += ["/* The runtime's functions (kiln_runtime_functions()), bound once after loading. */",
                      "KILN_EXPORT void kiln_bind(const kiln_runtime_api *api) { kiln_rt = api; }", ""]
        }
        return lines.joined(separator: "\n")
    }

    // MARK: spellings

    private func value(_ v: RValue) -> Value { values[v.id] }
    private func expr(_ v: RValue) -> String { values[v.id].expr }
    private func type(_ v: RValue) -> ScalarType { values[v.id].type }

    private func make(_ expr: String, _ t: ScalarType, pointer: Int? = nil) -> RValue {
        if t == .f64 { usesDouble = true }
        values.append(Value(expr: expr, type: t, pointer: pointer))
        return RValue(values.count - 1)
    }

    /// `const T vN = expr;` in the current block.
    private func local(_ expr: String, _ t: ScalarType) -> RValue {
        let id = values.count
        emit("const \(dialect.type(t)) v\(id) = \(expr);")
        return make("v\(id)", t)
    }

    private func emit(_ line: String) {
        guard let fn else { preconditionFailure("rendering outside a function") }
        fn.body.append(String(repeating: "    ", count: fn.depth) + line)
    }

    /// A name no file-scope name (and, inside a function, none of its own) has yet. Names the
    /// renderer makes itself (`v12`, `s3`, `i4`) never collide: they end in digits after one
    /// letter, which these never do.
    private func unique(_ base: String, fileScope: Bool) -> String {
        var name = base.isEmpty ? "a" : base
        if name.first!.isNumber { name = "_" + name }
        if name.count >= 2, "vsi".contains(name.first!), name.dropFirst().allSatisfy(\.isNumber) { name += "_" }
        func taken(_ n: String) -> Bool { fileNames.contains(n) || (fn?.names.contains(n) ?? false) }
        var candidate = name, k = 1
        while taken(candidate) {
            candidate = "\(name)_\(k)"
            k += 1
        }
        if fileScope { fileNames.insert(candidate) } else { fn!.names.insert(candidate) }
        return candidate
    }

    private func cIdentifier(_ s: String) -> String {
        String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }

    private func unsignedType(_ t: ScalarType) -> String { dialect.unsignedTypes[t]! }
    /// `x` viewed as `view` (a spelling of `t`'s width): a cast unless `t` is spelled so already.
    private func viewed(_ x: String, as view: String, _ t: ScalarType) -> String { view == dialect.type(t) ? x : "(\(view))\(x)" }
    private func signedType(_ t: ScalarType) -> String { dialect.signedTypes[t]! }
    private func bits(_ t: ScalarType) -> Int { t == .i1 ? 1 : t.byteSize * 8 }

    private func space(_ s: Space) -> String {
        switch s {
        case .global: return dialect.globalSpace
        case .private: return dialect.privateSpace
        case .constant: return dialect.pointerTables ? "" : "__constant "
        case .local: return "__local "
        }
    }

    private func intLiteral(_ v: Int64, _ t: ScalarType) -> String {
        switch t {
        case .i1: return v & 1 == 0 ? "false" : "true"
        case .i8: return "\(UInt8(truncatingIfNeeded: v))"
        case .i16:
            let x = Int16(truncatingIfNeeded: v)
            return x < 0 ? "(\(x))" : "\(x)"
        case .i32:
            let x = Int32(truncatingIfNeeded: v)
            if x == .min { return dialect.int32Min }
            return x < 0 ? "(\(x))" : "\(x)"
        case .i64:
            if v == .min { return dialect.int64Min }
            let digits = Int64(Int32.min)...Int64(Int32.max) ~= v ? "\(v)" : dialect.int64Literal.prefix + "\(v)" + dialect.int64Literal.suffix
            return v < 0 ? "(\(digits))" : digits
        case .ptr:
            precondition(v == 0, "the only pointer constant is null")
            return "((\(dialect.globalSpace)void *)0)"
        case .f32, .f64: preconditionFailure("an integer constant of type \(t)")
        }
    }

    /// The shortest decimal that reads back as exactly `v` in `t` (Swift prints it so).
    private func floatLiteral(_ v: Double, _ t: ScalarType) -> String {
        if t == .f32 {
            let x = Float(v)
            if x.isNaN { return dialect.floatNaN }
            if x.isInfinite { return x < 0 ? "(-\(dialect.floatInfinity))" : dialect.floatInfinity }
            let s = "\(x)f"
            return x.sign == .minus ? "(\(s))" : s
        }
        precondition(t == .f64, "a float constant of type \(t)")
        if v.isNaN { return dialect.doubleNaN }
        if v.isInfinite { return v < 0 ? "(-\(dialect.doubleInfinity))" : dialect.doubleInfinity }
        return v.sign == .minus ? "(\(v))" : "\(v)"
    }

    // MARK: functions

    private func signature(_ f: RFunction, exported: Bool, kernel: Bool, parameters: [String]? = nil) -> String {
        let qualifier = kernel ? (exported ? dialect.linkedKernelFunction : dialect.kernelFunction) : exported ? dialect.exportedFunction : dialect.localFunction
        let params: [String]
        if let parameters {
            params = parameters
        } else {
            params = ["void *inputs", "void *outputs", "void *arena", "void *constants"] + (f.ranged ? ["int64_t begin", "int64_t end"] : [])
        }
        return (qualifier.isEmpty ? "" : qualifier + " ") + "void \(f.name)(\(params.isEmpty ? "void" : params.joined(separator: ", ")))"
    }

    public func beginFunction(_ f: RFunction, exported: Bool, kernel: Bool) {
        precondition(fn == nil, "\(f.name) begins inside another function")
        fn = FunctionState(f: f, exported: exported, kernel: kernel)
        fileNames.insert(f.name)
        if dialect.pointerTables && prototypeNames.insert(f.name).inserted {
            prototypes.append(signature(f, exported: exported, kernel: kernel) + ";")
        }
    }

    public func endFunction() {
        guard let fn else { preconditionFailure("endFunction without beginFunction") }
        // Distinct buffers never share bytes (the plan's liveness), so a kernel's pointers are
        // restrict; a function that calls others does not get it, since its callees reach the
        // same bytes through pointers of their own.
        let restrict = fn.kernel && !fn.callsOut
        var parameters: [String] = []
        var prologue: [String] = []
        var arguments: [DeviceArgument] = []
        for p in fn.rootOrder {
            let ptr = pointers[p]
            let element = ptr.element.map { dialect.type($0) } ?? "char"
            let constness = ptr.stored ? "" : "const "
            let declared = "\(space(ptr.space))\(constness)\(element) *\(restrict ? dialect.restrict + " " : "")"
            if dialect.pointerTables {
                let cast = ptr.element == nil && constness.isEmpty && ptr.source!.hasPrefix("(char *)") ? "" : "(\(space(ptr.space))\(constness)\(element) *)"
                prologue.append("\(declared)\(ptr.name) = \(cast)(\(ptr.source!));")
                continue
            }
            switch fn.rootKeys[p]! {
            case .arena(let offset):
                // One `arena` parameter; each buffer in it a typed pointer at its byte offset.
                if !arguments.contains(.arena) {
                    parameters.append("\(dialect.globalSpace)char *arena")
                    arguments.append(.arena)
                }
                prologue.append("\(declared)\(ptr.name) = (\(space(ptr.space))\(constness)\(element) *)(arena + \(offset));")
            case .input(let k):
                parameters.append("\(declared)\(ptr.name)")
                arguments.append(.input(k))
            case .output(let k):
                parameters.append("\(declared)\(ptr.name)")
                arguments.append(.output(k))
            case .constant(let k):
                parameters.append("\(declared)\(ptr.name)")
                arguments.append(.constant(k))
            }
        }
        lastFunctionParameters = arguments
        if !dialect.pointerTables && fn.f.ranged {
            // A device runs a kernel over work items (KernelWriter.writeDeviceProgram), never
            // split by rows of the pool.
            refuse("\(fn.f.name) split into rows for the pool: a device runs kernels over work items")
        }
        prologue += fn.arrays + fn.slots
        if fn.argsTable { prologue.append("void *kiln_args[4] = { inputs, outputs, arena, constants };") }
        var lines = ["/* \(fn.f.name)\(fn.kernel ? ": a kernel" : fn.exported ? ": the entry" : "")\(fn.f.ranged ? ", rows [begin, end) of a split loop" : "") */"]
        lines.append(signature(fn.f, exported: fn.exported, kernel: fn.kernel, parameters: dialect.pointerTables ? nil : parameters) + " {")
        lines += prologue.map { "    " + $0 }
        lines += fn.body
        lines += ["}", ""]
        definitions.append(lines.joined(separator: "\n"))
        self.fn = nil
    }

    public func declare(_ f: RFunction) {
        guard dialect.pointerTables else { return refuse("a call to \(f.name), defined in another module") }
        if prototypeNames.insert(f.name).inserted {
            fileNames.insert(f.name)
            prototypes.append("void \(f.name)(void *inputs, void *outputs, void *arena, void *constants\(f.ranged ? ", int64_t begin, int64_t end" : ""));")
        }
    }

    public func parameter(_ k: Int) -> RValue {
        guard let fn else { preconditionFailure("parameter outside a function") }
        if let v = fn.parameters[k] { return v }
        let names = ["inputs", "outputs", "arena", "constants", "begin", "end"]
        precondition(k < 4 || (fn.f.ranged && k < 6), "\(fn.f.name) has no parameter \(k)")
        // The tables and the arena are untyped pointers: an access or an offset casts them.
        let v = k < 4 ? pointerLocal(names[k], .global) : make(names[k], .i64)
        fn.parameters[k] = v
        return v
    }

    public func call(_ f: RFunction, rows: RValue?) {
        impure()
        guard dialect.pointerTables else { return refuse("a call to \(f.name) with the pointer tables") }
        fn?.callsOut = true
        emit("\(f.name)(inputs, outputs, arena, constants\(rows.map { ", 0, \(expr($0))" } ?? ""));")
    }

    public func parallelFor(_ f: RFunction, count: RValue) {
        impure()
        guard let rt = dialect.runtimeTable else { return refuse("kiln_parallel_for (\(f.name)): the host enqueues kernels") }
        fn?.callsOut = true
        fn?.argsTable = true
        emit("\(rt)parallel_for(\(f.name), kiln_args, \(expr(count)));")
    }

    public func returnNow() {
        impure()
        emit("return;")
    }

    private func refuse(_ what: String) {
        refusals.append(what)
        if fn != nil { emit("/* refused: \(what) */") }
    }

    // MARK: arithmetic

    public func constant(int v: Int64, _ t: ScalarType) -> RValue { make(intLiteral(v, t), t) }
    public func constant(float v: Double, _ t: ScalarType) -> RValue { make(floatLiteral(v, t), t) }

    public func int(_ op: IntBinary, _ a: RValue, _ b: RValue) -> RValue {
        let t = type(a)
        precondition(t == type(b) && t != .ptr && !t.isFloat, "\(op) of \(t) and \(type(b))")
        let x = expr(a), y = expr(b), T = dialect.type(t), U = unsignedType(t), S = signedType(t)
        if t == .i1 {
            // Arithmetic modulo 2; `&` and `|`, not `&&` and `||`: both sides are computed
            // already, and a branch would keep the loop from vectorising.
            switch op {
            case .add, .sub, .xor: return local("\(x) != \(y)", t)
            case .mul, .and:
                let v = local("\(x) & \(y)", t)
                conditions[v.id] = (.and, a, b)
                return v
            case .or:
                let v = local("\(x) | \(y)", t)
                conditions[v.id] = (.or, a, b)
                return v
            case .sdiv, .udiv: return local(x, t)
            case .srem, .urem, .shl, .lshr: return local("false", t)
            }
        }
        let mask = bits(t) - 1
        switch op {
        case .add: return local("(\(T))((\(U))\(x) + (\(U))\(y))", t)
        case .sub: return local("(\(T))((\(U))\(x) - (\(U))\(y))", t)
        case .mul: return local("(\(T))((\(U))\(x) * (\(U))\(y))", t)
        case .sdiv: return local(S == T ? "\(x) / \(y)" : "(\(T))((\(S))\(x) / (\(S))\(y))", t)
        case .srem: return local(S == T ? "\(x) % \(y)" : "(\(T))((\(S))\(x) % (\(S))\(y))", t)
        case .udiv: return local("(\(T))((\(U))\(x) / (\(U))\(y))", t)
        case .urem: return local("(\(T))((\(U))\(x) % (\(U))\(y))", t)
        case .and: return local("\(x) & \(y)", t)
        case .or: return local("\(x) | \(y)", t)
        case .xor: return local("\(x) ^ \(y)", t)
        // LLVM's shifts by the width or more are poison; masking keeps C's defined.
        case .shl: return local("(\(T))((\(U))\(x) << ((\(U))\(y) & \(mask)))", t)
        case .lshr: return local("(\(T))((\(U))\(x) >> ((\(U))\(y) & \(mask)))", t)
        }
    }

    public func float(_ op: FloatBinary, _ a: RValue, _ b: RValue) -> RValue {
        let t = type(a)
        precondition(t == type(b) && t.isFloat, "\(op) of \(t) and \(type(b))")
        let x = expr(a), y = expr(b)
        switch op {
        case .add:
            let v = local("\(x) + \(y)", t)
            if !loops.isEmpty { floatAdds[v.id] = (a.id, b.id) }
            return v
        case .sub: return local("\(x) - \(y)", t)
        case .mul: return local("\(x) * \(y)", t)
        case .div: return local("\(x) / \(y)", t)
        case .rem: return local("\(t == .f32 ? dialect.fmod32 : dialect.fmod64)(\(x), \(y))", t)
        }
    }

    public func neg(_ a: RValue) -> RValue {
        let t = type(a)
        if t == .i1 { return local(expr(a), t) }
        return local("(\(dialect.type(t)))(-(\(unsignedType(t)))\(expr(a)))", t)
    }

    public func fneg(_ a: RValue) -> RValue { local("-\(expr(a))", type(a)) }

    public func not(_ a: RValue) -> RValue {
        let t = type(a)
        return local(t == .i1 ? "!\(expr(a))" : "(\(dialect.type(t)))~\(expr(a))", t)
    }

    public func icmp(_ p: IntPredicate, _ a: RValue, _ b: RValue) -> RValue {
        let t = type(a)
        precondition(t == type(b) && !t.isFloat, "icmp of \(t) and \(type(b))")
        let x = expr(a), y = expr(b)
        let view: (String) -> String
        switch p {
        case .eq: return local("\(x) == \(y)", .i1)
        case .ne: return local("\(x) != \(y)", .i1)
        case .slt, .sle, .sgt, .sge: view = { t == .ptr ? $0 : self.viewed($0, as: self.signedType(t), t) }
        case .ult, .ule, .ugt, .uge: view = { t == .ptr ? $0 : self.viewed($0, as: self.unsignedType(t), t) }
        }
        let op: String
        switch p {
        case .slt, .ult: op = "<"
        case .sle, .ule: op = "<="
        case .sgt, .ugt: op = ">"
        default: op = ">="
        }
        return local("\(view(x)) \(op) \(view(y))", .i1)
    }

    public func fcmp(_ p: FloatPredicate, _ a: RValue, _ b: RValue) -> RValue {
        precondition(type(a) == type(b) && type(a).isFloat, "fcmp of \(type(a)) and \(type(b))")
        let x = expr(a), y = expr(b)
        switch p {
        case .oeq: return local("\(x) == \(y)", .i1)
        case .olt: return local("\(x) < \(y)", .i1)
        case .ole: return local("\(x) <= \(y)", .i1)
        case .ogt: return local("\(x) > \(y)", .i1)
        case .oge: return local("\(x) >= \(y)", .i1)
        case .une: return local("!(\(x) == \(y))", .i1)
        case .ult: return local("!(\(x) >= \(y))", .i1)
        case .uno: return local(x == y ? "\(x) != \(x)" : "(\(x) != \(x)) | (\(y) != \(y))", .i1)
        }
    }

    public func select(_ c: RValue, _ a: RValue, _ b: RValue) -> RValue {
        precondition(type(c) == .i1 && type(a) == type(b), "select of \(type(a)) and \(type(b)) on \(type(c))")
        if type(a) != .ptr, let (op, p, q) = conditions[c.id] {
            // A select on `p | q` as two selects: GCC vectorises `p ? a : (q ? a : b)` where it
            // gives up on the combined mask of NaN-propagating max (`x > y | x != x`).
            let (x, y) = (expr(a), expr(b))
            return local(op == .or ? "\(expr(p)) ? \(x) : (\(expr(q)) ? \(x) : \(y))" : "\(expr(p)) ? (\(expr(q)) ? \(x) : \(y)) : \(y)", type(a))
        }
        if type(a) == .ptr {
            let space = pointers[value(a).pointer!].space
            let id = values.count
            emit("\(self.space(space))char *const v\(id) = \(expr(c)) ? (\(self.space(space))char *)\(expr(a)) : (\(self.space(space))char *)\(expr(b));")
            return pointerLocal("v\(id)", space)
        }
        return local("\(expr(c)) ? \(expr(a)) : \(expr(b))", type(a))
    }

    public func convert(_ c: Conversion, _ a: RValue, to t: ScalarType) -> RValue {
        let from = type(a), x = expr(a)
        if from == t && c != .bitcast { return a }
        let T = dialect.type(t)
        switch c {
        case .zext:
            return local(from == .i1 ? "(\(T))\(x)" : "(\(T))\(viewed(x, as: unsignedType(from), from))", t)
        case .sext:
            return local(from == .i1 ? "\(x) ? (\(T))-1 : (\(T))0" : "(\(T))\(viewed(x, as: signedType(from), from))", t)
        case .trunc:
            if t == .i1 { return local("(\(x) & 1) != 0", t) }
            return local(viewed(x, as: unsignedType(t), t) == x ? "(\(T))\(x)" : "(\(T))(\(unsignedType(t)))\(x)", t)
        case .fpext, .fptrunc:
            return local("(\(T))\(x)", t)
        case .fptosi:
            // Through the signed type: a float to an unsigned type is undefined when negative.
            return local(signedType(t) == T ? "(\(T))\(x)" : "(\(T))(\(signedType(t)))\(x)", t)
        case .sitofp:
            return local(from == .i1 ? "\(x) ? (\(T))-1 : (\(T))0" : "(\(T))\(viewed(x, as: signedType(from), from))", t)
        case .uitofp:
            return local("(\(T))\(viewed(x, as: unsignedType(from), from))", t)
        case .fptosiSat:
            precondition(from.isFloat && !t.isFloat && t != .i1, "saturating conversion from \(from) to \(t)")
            let pattern = dialect.saturatingConversion[t]!
            let fromName = from == .f32 ? "f32" : "f64"
            let spelled = pattern.replacing("<from>", with: fromName)
            if spelled.hasPrefix("kiln_") { useHelper(String(spelled.prefix { $0 != "(" })) }
            return local(spelled.replacing("%@", with: x), t)
        case .bitcast:
            precondition(from.byteSize == t.byteSize && from.isFloat != t.isFloat, "bitcast from \(from) to \(t)")
            let spelled = dialect.bitcast[t]!
            if spelled.hasPrefix("kiln_") { useHelper(String(spelled.prefix { $0 != "(" })) }
            return local(spelled.replacing("%@", with: x), t)
        }
    }

    public func math(_ f: MathFunction, _ args: [RValue]) -> RValue {
        let t = type(args[0])
        precondition(t.isFloat && args.allSatisfy { type($0) == t }, "\(f) of \(args.map(type))")
        let name = (t == .f32 ? dialect.math32 : dialect.math64)[f]!
        if name.hasPrefix("kiln_") { useHelper(name) }
        return local("\(name)(\(args.map(expr).joined(separator: ", ")))", t)
    }

    public func callRuntime(_ f: RuntimeFunction, _ args: [RValue]) -> RValue? {
        impure()
        precondition(f != .parallelFor, "kiln_parallel_for is called through parallelFor(_:count:)")
        let spelledArgs = args.map { a -> String in
            guard type(a) == .ptr else { return expr(a) }
            // The callee may write through it (a product's output, the fault record).
            if var k = value(a).pointer {
                pointers[k].stored = true
                while let b = pointers[k].base { k = b; pointers[k].stored = true }
            }
            return "(void *)\(expr(a))"
        }.joined(separator: ", ")
        guard let rt = dialect.runtimeTable else {
            if f == .ipow {
                useHelper("kiln_ipow_i64")
                return local("kiln_ipow_i64(\(spelledArgs))", .i64)
            }
            refuse("\(f.rawValue): there is no C runtime on the device")
            return f.result.map { local("0", $0) }
        }
        let member = String(f.rawValue.dropFirst("kiln_".count))
        if let r = f.result { return local("\(rt)\(member)(\(spelledArgs))", r) }
        emit("\(rt)\(member)(\(spelledArgs));")
        return nil
    }

    // MARK: memory

    private func pointerLocal(_ name: String, _ space: Space, element: ScalarType? = nil) -> RValue {
        pointers.append(Pointer(name: name, space: space, element: element, source: nil))
        return make(name, .ptr, pointer: pointers.count - 1)
    }

    private func root(_ key: Key, name: String, source: String) -> RValue {
        guard let fn else { preconditionFailure("a buffer outside a function") }
        if let p = fn.roots[key] { return make(pointers[p].name, .ptr, pointer: p) }
        pointers.append(Pointer(name: unique(name, fileScope: false), space: .global, source: source))
        let p = pointers.count - 1
        fn.roots[key] = p
        fn.rootKeys[p] = key
        fn.rootOrder.append(p)
        return make(pointers[p].name, .ptr, pointer: p)
    }

    public func buffer(_ r: BufferRoot) -> RValue {
        switch r {
        case .input(let k): return root(.input(k), name: "in\(k)", source: "((void **)inputs)[\(k)]")
        case .output(let k): return root(.output(k), name: "out\(k)", source: "((void **)outputs)[\(k)]")
        case .constant(let k): return root(.constant(k), name: "const\(k)", source: "((void **)constants)[\(k)]")
        case .arena(let offset, let name):
            return root(.arena(offset), name: cIdentifier(name.isEmpty ? "arena\(offset)" : name),
                        source: dialect.pointerTables ? "(char *)arena + \(offset)" : "")
        }
    }

    public func tableEntry(_ table: RValue, _ k: Int) -> RValue {
        guard let fn else { preconditionFailure("a table entry outside a function") }
        if table == fn.parameters[0] { return buffer(.input(k)) }
        if table == fn.parameters[1] { return buffer(.output(k)) }
        if table == fn.parameters[3] { return buffer(.constant(k)) }
        guard dialect.pointerTables else {
            refuse("a pointer loaded from a table")
            return pointerLocal("0", .global)
        }
        let id = values.count
        emit("void *const v\(id) = ((void **)\(expr(table)))[\(k)];")
        return pointerLocal("v\(id)", .global)
    }

    public func offset(_ p: RValue, bytes: RValue) -> RValue {
        let space = pointers[value(p).pointer!].space
        let s = self.space(space)
        let id = values.count
        emit("\(s)char *const v\(id) = (\(s)char *)\(expr(p)) + \(expr(bytes));")
        let q = pointerLocal("v\(id)", space)
        pointers[value(q).pointer!].base = value(p).pointer
        return q
    }

    /// `p[index]` as an lvalue of type `t`, through a cast when `p` points to another type.
    private func element(_ p: RValue, _ index: RValue, _ t: ScalarType, store: Bool) -> String {
        guard let k = value(p).pointer else { preconditionFailure("an access through a value that is not a pointer") }
        if pointers[k].element == nil && pointers[k].source != nil { pointers[k].element = t }
        if store {
            var r = k
            pointers[r].stored = true
            while let b = pointers[r].base { r = b; pointers[r].stored = true }
        }
        let ptr = pointers[k]
        if ptr.element == t { return "\(ptr.name)[\(expr(index))]" }
        let constness = store ? "" : "const "
        return "((\(space(ptr.space))\(constness)\(dialect.type(t)) *)\(ptr.name))[\(expr(index))]"
    }

    public func load(_ p: RValue, _ index: RValue, _ t: ScalarType) -> RValue {
        local(element(p, index, t, store: false), t)
    }

    public func store(_ v: RValue, _ p: RValue, _ index: RValue) {
        impure()
        emit("\(element(p, index, type(v), store: true)) = \(expr(v));")
    }

    public func stackArray(_ t: ScalarType, count: Int, name: String) -> RValue {
        guard let fn else { preconditionFailure("a stack array outside a function") }
        let n = unique(cIdentifier(name), fileScope: false)
        fn.arrays.append("\(dialect.privateSpace)\(dialect.type(t)) \(n)[\(count)] \(dialect.align64);")
        return pointerLocal(n, .private, element: t)
    }

    public func constantArray(_ values: [RValue], _ t: ScalarType, name: String) -> RValue {
        let elements = values.map(expr)
        // One definition per distinct contents (kernels of one executable share their constants).
        let key = "\(t)|" + elements.joined(separator: ",")
        if let n = constantArrayNames[key] { return pointerLocal(n, .constant, element: t) }
        let n = unique(cIdentifier(name), fileScope: true)
        constantArrayNames[key] = n
        var lines = ["\(dialect.constantArrayStorage) \(dialect.type(t)) \(n)[\(elements.count)] \(dialect.align64) = {"]
        // Eight to a line.
        for start in stride(from: 0, to: elements.count, by: 8) {
            lines.append("    " + elements[start..<min(start + 8, elements.count)].joined(separator: ", ") + ",")
        }
        lines.append("};")
        constantArrays.append(lines.joined(separator: "\n"))
        return pointerLocal(n, .constant, element: t)
    }

    public func slot(_ t: ScalarType, initial: RValue?) -> RSlot {
        guard let fn else { preconditionFailure("a slot outside a function") }
        nextSlot += 1
        let name = "s\(nextSlot)"
        let start = initial.map(expr) ?? (t.isFloat ? floatLiteral(0, t) : intLiteral(0, t))
        fn.slots.append("\(dialect.type(t)) \(name) = \(start);")
        if t == .f64 { usesDouble = true }
        return RSlot(nextSlot, t)
    }

    public func load(_ s: RSlot) -> RValue {
        let v = local("s\(s.id)", s.type)
        loops.last?.slotLoads[v.id] = s.id
        return v
    }

    public func store(_ v: RValue, _ s: RSlot) {
        loops.last?.slotStores[s.id, default: []].append(v.id)
        emit("s\(s.id) = \(expr(v));")
    }

    // MARK: control flow

    private func block(_ head: String, _ body: () -> Void) {
        emit(head + " {")
        fn!.depth += 1
        body()
        fn!.depth -= 1
        emit("}")
    }

    /// Pragmas start at column 0 by convention; compilers accept them indented too.
    private func hinted(_ hints: LoopHints) {
        if hints.keepRolled, let pragma = dialect.keepRolled { emit(pragma) }
        if hints.unrollFully, let pragma = dialect.unrollFully { emit(pragma) }
    }

    private func inductionVariable() -> (String, RValue) {
        nextLocal += 1
        let name = "i\(nextLocal)"
        return (name, make(name, .i64))
    }

    /// Something other than a slot reduction happened: no enclosing loop is a pure reduction.
    private func impure() { for l in loops { l.simple = false } }

    /// A counted loop; with `vectorize`, declares the float sums its body accumulates as a
    /// reduction when that is all it does.
    private func countedLoop(_ head: String, _ hints: LoopHints, _ body: () -> Void) {
        impure()
        hinted(hints)
        let frame = LoopFrame(vectorize: hints.vectorize, header: fn!.body.count)
        loops.append(frame)
        block(head, body)
        loops.removeLast()
        defer { if loops.isEmpty { floatAdds = [:] } }
        guard frame.vectorize, frame.simple, !frame.slotStores.isEmpty, let pragma = dialect.reduction else { return }
        var sums: [String] = []
        for (slot, stored) in frame.slotStores.sorted(by: { $0.key < $1.key }) {
            // One store per iteration of `load(slot) + x` or `x + load(slot)`, in float.
            guard stored.count == 1, let (a, b) = floatAdds[stored[0]], frame.slotLoads[a] == slot || frame.slotLoads[b] == slot else { return }
            sums.append("s\(slot)")
        }
        fn!.body.insert(String(repeating: "    ", count: fn!.depth) + pragma.replacing("%@", with: sums.joined(separator: ", ")), at: frame.header)
    }

    public func loop(count: Int, hints: LoopHints, _ body: (RValue) -> Void) {
        let (iv, v) = inductionVariable()
        countedLoop("for (\(dialect.type(.i64)) \(iv) = 0; \(iv) < \(intLiteral(Int64(count), .i64)); \(iv)++)", hints) { body(v) }
    }

    public func loop(from begin: RValue, to end: RValue, hints: LoopHints, _ body: (RValue) -> Void) {
        let (iv, v) = inductionVariable()
        countedLoop("for (\(dialect.type(.i64)) \(iv) = \(expr(begin)); \(iv) < \(expr(end)); \(iv)++)", hints) { body(v) }
    }

    public func whileLoop(_ condition: () -> RValue, _ body: () -> Void) {
        impure()
        block("for (;;)") {
            let c = condition()
            emit("if (!\(expr(c))) break;")
            body()
        }
    }

    public func ifThen(_ c: RValue, unlikely: Bool, _ body: () -> Void) {
        impure()
        let cond = unlikely ? dialect.unlikely.replacing("%@", with: expr(c)) : expr(c)
        block("if (\(cond))", body)
    }

    // MARK: prelude

    private func useHelper(_ name: String) {
        if helpers.insert(name).inserted { helperOrder.append(name) }
    }
}

extension CStyleRenderer: DeviceRenderer {
    private func requireDevice(_ what: String) {
        precondition(!dialect.pointerTables, "\(dialect.name) has no \(what): it is for devices only")
    }

    public func workItem(_ id: WorkItemID) -> RValue {
        requireDevice("work items")
        switch id {
        case .global(let d): return local("(long)get_global_id(\(d))", .i64)
        case .local(let d): return local("(long)get_local_id(\(d))", .i64)
        case .group(let d): return local("(long)get_group_id(\(d))", .i64)
        }
    }

    public func localArray(_ t: ScalarType, count: Int, name: String) -> RValue {
        requireDevice("local memory")
        guard let fn else { preconditionFailure("a local array outside a function") }
        let n = unique(cIdentifier(name), fileScope: false)
        fn.arrays.append("__local \(dialect.type(t)) \(n)[\(count)];")
        return pointerLocal(n, .local, element: t)
    }

    public func barrier() {
        requireDevice("barriers")
        impure()
        emit("barrier(CLK_LOCAL_MEM_FENCE);")
    }

    public func atomicMaxUnsigned(_ p: RValue, _ index: RValue, _ v: RValue) {
        requireDevice("atomics")
        impure()
        usesAtomics = true
        guard let k = value(p).pointer else { preconditionFailure("an atomic through a value that is not a pointer") }
        var root = k
        pointers[root].stored = true
        while let b = pointers[root].base { root = b; pointers[root].stored = true }
        if pointers[k].element == nil && pointers[k].source != nil { pointers[k].element = .i64 }
        emit("atom_max((\(space(pointers[k].space))ulong *)\(pointers[k].name) + \(expr(index)), (ulong)\(expr(v)));")
    }

    public func errorFunction(_ x: RValue, complement: Bool) -> RValue {
        requireDevice("error function")
        return local("\(complement ? "erfc" : "erf")(\(expr(x)))", type(x))
    }
}
