import KilnIR

// The target-neutral interface every kernel is written against. `KernelWriter` expresses each
// primitive's element rule and each kernel's loops through these calls only; a renderer turns
// them into its target's code: LLVM IR (KilnCPU), C99 or OpenCL C (`CStyleRenderer`). The calls
// are scalar and structured (counted loops, while loops, if-then), so a C-style renderer can
// print them directly and LLVM gets the same instructions the CPU path always emitted.

/// Register types of rendered code. Booleans are `i1` in registers and `i8` in memory.
public enum ScalarType: String, Hashable, Sendable {
    case i1, i8, i16, i32, i64, f32, f64, ptr

    public var isFloat: Bool { self == .f32 || self == .f64 }
    public var byteSize: Int {
        switch self {
        case .i1, .i8: return 1
        case .i16: return 2
        case .i32, .f32: return 4
        case .i64, .f64, .ptr: return 8
        }
    }

    /// The register type of a dtype's elements.
    public static func register(_ d: DType) -> ScalarType {
        switch d {
        case .float32: return .f32
        case .float64: return .f64
        case .int32: return .i32
        case .int64: return .i64
        // Half types are their bits in registers: kernels only move them and convert them to and
        // from f32 (HalfPrecisionPass leaves no arithmetic on them).
        case .int16, .float16, .bfloat16: return .i16
        case .uint8: return .i8
        case .bool: return .i1
        case .string: return .ptr
        }
    }

    /// The type a dtype's elements have in memory (a bool is a byte).
    public static func memory(_ d: DType) -> ScalarType { d == .bool ? .i8 : register(d) }
}

/// A value of the kernel being rendered; the renderer maps the handle to its own form (an
/// `LLVMValueRef`, a C expression or local).
public struct RValue: Hashable, Sendable {
    public let id: Int
    public init(_ id: Int) { self.id = id }
}

public enum IntBinary: String, Sendable { case add, sub, mul, sdiv, udiv, srem, urem, and, or, xor, shl, lshr }
public enum FloatBinary: String, Sendable { case add, sub, mul, div, rem }
public enum IntPredicate: String, Sendable { case eq, ne, slt, sle, sgt, sge, ult, ule, ugt, uge }
/// Ordered predicates are false when either operand is NaN; unordered ones (`une`, `ult`,
/// `uno`) are true.
public enum FloatPredicate: String, Sendable { case oeq, olt, ole, ogt, oge, une, ult, uno }
public enum Conversion: String, Sendable {
    case zext, sext, trunc, fpext, fptrunc, sitofp, uitofp
    /// Float to signed integer, truncating toward zero (the value must be in range).
    case fptosi
    /// Float to signed integer saturating at the target's range, NaN giving 0.
    case fptosiSat
    /// Reinterprets the bits (f32 <-> i32, f64 <-> i64).
    case bitcast
}
/// Scalar math on floats. `fma` is a multiply-add the target may fuse; `minnum`/`maxnum` return
/// the other operand when one is NaN; `rint` and `roundeven` round half to even.
public enum MathFunction: String, Sendable {
    case fabs, floor, ceil, rint, roundeven, sqrt, sin, cos, exp, log, log1p, tanh, pow, fma, minnum, maxnum, copysign
}

public struct LoopHints: Hashable, Sendable {
    /// Vectorise even though it reorders a floating-point reduction (TensorFlow's own
    /// vectorised reductions do the same).
    public var vectorize = false
    /// Do not unroll (a short outer loop around a vectorised inner one).
    public var keepRolled = false
    /// Unroll completely once vectorised: a row of a few vectors of accumulators, updated once per
    /// iteration of the loop around it, then stays in registers instead of going through memory.
    public var unrollFully = false
    public init(vectorize: Bool = false, keepRolled: Bool = false, unrollFully: Bool = false) {
        self.vectorize = vectorize
        self.keepRolled = keepRolled
        self.unrollFully = unrollFully
    }
}

/// Where a buffer pointer comes from. Every function of an executable takes
/// `(ptr inputs[], ptr outputs[], ptr arena, ptr constants[])`, kernels split over the pool also
/// `(i64 begin, i64 end)`.
public enum BufferRoot: Hashable, Sendable {
    case input(Int)
    case output(Int)
    case constant(Int)
    /// Bytes at `offset` in the arena; `name` identifies the buffer for alias analysis.
    case arena(offset: Int, name: String)
}

/// Functions of the C runtime (CKilnRT) compiled code may call, and nothing else.
public enum RuntimeFunction: String, Sendable {
    /// `void kiln_parallel_for(kernel, ptr args[4], i64 count)`: the kernel over [0, count) on the pool.
    case parallelFor = "kiln_parallel_for"
    /// `void kiln_sgemm(i32 ta, i32 tb, i64 m, i64 n, i64 k, f32 alpha, ptr a, i64 lda, ptr b, i64 ldb, ptr c, i64 ldc, i32 update)`.
    case sgemm = "kiln_sgemm"
    /// `void kiln_hgemm(i32 method, i32 format, i32 c_format, i32 ta, i32 tb, i64 m, i64 n, i64 k, f32 alpha, ptr a, i64 lda,
    /// ptr b, i64 ldb, ptr c, i64 ldc, i32 update)`: float16/bfloat16 operands summed in float32.
    case hgemm = "kiln_hgemm"
    /// `void kiln_conv2d_f32(ptr x, i64 h, i64 w, i64 c, i64 oh, i64 ow, i64 kh, i64 kw, i64 sy, i64 sx, i64 dy, i64 dx,
    /// i64 py, i64 px, ptr filter, i64 ldw, i64 co, ptr out, i64 ldc, i64 first, i64 count)`: rows of a convolution from the image.
    case conv2d = "kiln_conv2d_f32"
    /// `void kiln_conv2d_filter_gradient_f32(ptr x, i64 h, i64 w, i64 c, i64 oh, i64 ow, i64 kh, i64 kw, i64 sy, i64 sx, i64 dy,
    /// i64 dx, i64 py, i64 px, ptr g, i64 ldg, i64 co, ptr dw, i64 lddw, i64 first, i64 count)`: adds the filter gradient
    /// of rows of the output gradient, from the image.
    case conv2dFilterGradient = "kiln_conv2d_filter_gradient_f32"
    /// `void kiln_blas_sgemm(i32 ta, i32 tb, i64 m, i64 n, i64 k, f32 alpha, ptr a, i64 lda, ptr b, i64 ldb, f32 beta, ptr c, i64 ldc)`: OpenBLAS.
    case blasSgemm = "kiln_blas_sgemm"
    /// As `blasSgemm` with f64 alpha, beta and elements.
    case blasDgemm = "kiln_blas_dgemm"
    /// `void kiln_fault_record(ptr record, i64 site, i64 position, i64 value)`.
    case faultRecord = "kiln_fault_record"
    /// `i64 kiln_ipow_i64(i64 base, i64 exp)`.
    case ipow = "kiln_ipow_i64"
    /// `void kiln_profile_tick(ptr slots, i64 slot)`.
    case profileTick = "kiln_profile_tick"

    public var result: ScalarType? { self == .ipow ? .i64 : nil }
}

/// A function of the module being rendered.
public struct RFunction: Hashable, Sendable {
    public let name: String
    /// Takes (begin, end) after the four tables: a kernel split over the worker pool.
    public let ranged: Bool
    public init(name: String, ranged: Bool) {
        self.name = name
        self.ranged = ranged
    }
}

/// A stack slot of the function being rendered (a scalar accumulator or flag).
public struct RSlot: Hashable, Sendable {
    public let id: Int
    public let type: ScalarType
    public init(_ id: Int, _ type: ScalarType) {
        self.id = id
        self.type = type
    }
}

/// Renders the calls of `KernelWriter` into one target's code. Values are typed by the call
/// that made them; operands of a binary op have the same type.
public protocol KernelRenderer: AnyObject {
    // Functions. Between begin and end every call renders into that function.
    /// Starts defining `f`; `kernel` marks a kernel the entry calls (kept out of line), `exported`
    /// one other modules link to.
    func beginFunction(_ f: RFunction, exported: Bool, kernel: Bool)
    func endFunction()
    /// Declares a function another module of the same executable defines.
    func declare(_ f: RFunction)
    /// Parameter k of the current function: 0 inputs, 1 outputs, 2 arena, 3 constants (pointers to
    /// pointer tables), 4 begin and 5 end (i64) in a ranged one.
    func parameter(_ k: Int) -> RValue
    /// Calls `f` with the current function's first four parameters, in this thread; a ranged
    /// `f` over rows [0, rows).
    func call(_ f: RFunction, rows: RValue?)
    /// `kiln_parallel_for(f, {inputs, outputs, arena, constants}, count)`.
    func parallelFor(_ f: RFunction, count: RValue)
    /// Returns from the current function now (inside `ifThen`).
    func returnNow()

    // Constants and arithmetic.
    func constant(int v: Int64, _ t: ScalarType) -> RValue
    func constant(float v: Double, _ t: ScalarType) -> RValue
    func int(_ op: IntBinary, _ a: RValue, _ b: RValue) -> RValue
    func float(_ op: FloatBinary, _ a: RValue, _ b: RValue) -> RValue
    func neg(_ a: RValue) -> RValue
    func fneg(_ a: RValue) -> RValue
    func not(_ a: RValue) -> RValue
    func icmp(_ p: IntPredicate, _ a: RValue, _ b: RValue) -> RValue
    func fcmp(_ p: FloatPredicate, _ a: RValue, _ b: RValue) -> RValue
    func select(_ c: RValue, _ a: RValue, _ b: RValue) -> RValue
    func convert(_ c: Conversion, _ a: RValue, to t: ScalarType) -> RValue
    /// f32 from a float16 (or, `brain`, bfloat16) held as its bits in an i16, and back rounding
    /// to nearest even; nil where the target has no native conversion (the writer then uses
    /// integer operations, see HalfConversions.swift).
    func halfToFloat(_ bits: RValue, brain: Bool) -> RValue?
    func floatToHalf(_ x: RValue, brain: Bool) -> RValue?
    func math(_ f: MathFunction, _ args: [RValue]) -> RValue
    func callRuntime(_ f: RuntimeFunction, _ args: [RValue]) -> RValue?

    // Memory. Pointers are `.ptr` values; an index counts elements of the access's type.
    /// A buffer's pointer, computed once at the start of the current function.
    func buffer(_ root: BufferRoot) -> RValue
    /// Pointer `k` of `table` (parameter 0, 1 or 3), loaded once at the start of the function.
    func tableEntry(_ table: RValue, _ k: Int) -> RValue
    /// `p + bytes` (for matrix-product calls on a batch or a block).
    func offset(_ p: RValue, bytes: RValue) -> RValue
    func load(_ p: RValue, _ index: RValue, _ t: ScalarType) -> RValue
    func store(_ v: RValue, _ p: RValue, _ index: RValue)
    /// A 64-byte aligned array in the current function's frame (a block of patch rows).
    func stackArray(_ t: ScalarType, count: Int, name: String) -> RValue
    /// A read-only array in the module (a constant too large for immediates), usable from every
    /// function of the module.
    func constantArray(_ values: [RValue], _ t: ScalarType, name: String) -> RValue
    /// A scalar slot in the current function, set to `initial` when the function starts.
    func slot(_ t: ScalarType, initial: RValue?) -> RSlot
    func load(_ s: RSlot) -> RValue
    func store(_ v: RValue, _ s: RSlot)

    // Structured control flow.
    /// `for iv in 0..<count` (count > 0).
    func loop(count: Int, hints: LoopHints, _ body: (RValue) -> Void)
    /// `for iv in begin..<end`, bounds known at run time.
    func loop(from begin: RValue, to end: RValue, hints: LoopHints, _ body: (RValue) -> Void)
    /// `while condition() { body() }`; the condition may emit code.
    func whileLoop(_ condition: () -> RValue, _ body: () -> Void)
    /// `if c { body() }`; `unlikely` marks a slow path.
    func ifThen(_ c: RValue, unlikely: Bool, _ body: () -> Void)
}
