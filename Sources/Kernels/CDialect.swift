/// The spellings that differ between the C-like languages `CStyleRenderer` writes: type names,
/// address spaces, qualifiers, literals, math functions and how compiled code reaches the C
/// runtime. Everything else (statements, operators, the order of a function) is shared.
public struct CDialect: Hashable, Sendable {
    /// Shown in the rendered file's first line and in refusals (`C99`, `OpenCL C`).
    public let name: String

    /// Register types by `ScalarType` (a pointer is spelled through `pointer`).
    let types: [ScalarType: String]
    /// Two's-complement views of the integer types, for the operations whose signedness matters.
    let unsignedTypes: [ScalarType: String]
    let signedTypes: [ScalarType: String]
    /// Literals that are not plain digits.
    let int32Min: String
    let int64Min: String
    /// An int64 literal outside int's range: prefix + digits + suffix.
    let int64Literal: (prefix: String, suffix: String)
    let floatInfinity: String
    let doubleInfinity: String
    let floatNaN: String
    let doubleNaN: String

    /// Address spaces of pointers to buffers (arena, tables), the function's own stack arrays,
    /// and read-only arrays at file scope (with their storage class).
    let globalSpace: String
    let privateSpace: String
    let constantArrayStorage: String
    let restrict: String
    /// Attribute giving an array 64-byte alignment.
    let align64: String

    /// Qualifiers of a function: defined here but called only here, exported (callable by the
    /// host), a kernel the entry calls (kept out of line so each compiles on its own), and such a
    /// kernel that other files of the same executable call (a module compiled in shards).
    let localFunction: String
    let exportedFunction: String
    let kernelFunction: String
    let linkedKernelFunction: String
    /// Whether functions take the four pointer tables `(inputs, outputs, arena, constants)`.
    /// Without them (OpenCL) each buffer a function reads is a parameter of its own (the arena
    /// one parameter), and no kernel is split into rows (a device runs work items).
    let pointerTables: Bool
    /// What a runtime function's name without `kiln_` follows in a call: `kiln_rt->` (through the
    /// table, `kiln_rt->ipow_i64`) or `kiln_` (the function itself); nil where the dialect has no
    /// runtime to call (the renderer refuses those calls, except integer power, a prelude helper).
    let runtimeTable: String?
    /// Whether the file declares the runtime's table and exports `kiln_bind` to receive it
    /// (code loaded into a process that has the runtime), rather than calling functions the
    /// same file defines.
    let bindsRuntime: Bool

    /// Math functions by element type; names starting `kiln_` are prelude helpers.
    let math32: [MathFunction: String]
    let math64: [MathFunction: String]
    let fmod32: String
    let fmod64: String
    /// A slow path's condition: `%@` is replaced by the condition.
    let unlikely: String
    /// A line before a loop that must stay rolled (nil: nothing).
    let keepRolled: String?
    /// A line before a short loop to unroll completely (nil: nothing).
    let unrollFully: String?
    /// A line before a loop whose only effect is summing floats into the slots `%@` names,
    /// letting the compiler reassociate those sums (nil: the sums keep their order).
    let reduction: String?
    /// Bit casts: int<->float of one width. `%@` is the operand.
    let bitcast: [ScalarType: String]
    /// Float to signed integer saturating (NaN -> 0), by target type; `%@` is the operand; names
    /// starting `kiln_` are prelude helpers (then `<from>` is spliced in: f32 or f64).
    let saturatingConversion: [ScalarType: String]
    /// Lines at the top of every file, and the line a file using doubles needs.
    let header: [String]
    let doubleExtension: String?

    /// Portable C99 for the system C compiler: `<stdint.h>` types, libm's suffixed functions,
    /// GCC attributes (also understood by Clang), runtime calls through the table `kiln_bind`
    /// receives, so the shared object needs no symbol from the host program.
    public static let c99 = CDialect(
        name: "C99",
        types: [.i1: "bool", .i8: "uint8_t", .i16: "int16_t", .i32: "int32_t", .i64: "int64_t", .f32: "float", .f64: "double"],
        unsignedTypes: [.i1: "bool", .i8: "uint8_t", .i16: "uint16_t", .i32: "uint32_t", .i64: "uint64_t"],
        signedTypes: [.i1: "bool", .i8: "int8_t", .i16: "int16_t", .i32: "int32_t", .i64: "int64_t"],
        int32Min: "INT32_MIN", int64Min: "INT64_MIN", int64Literal: ("INT64_C(", ")"),
        floatInfinity: "INFINITY", doubleInfinity: "HUGE_VAL", floatNaN: "NAN", doubleNaN: "((double)NAN)",
        globalSpace: "", privateSpace: "", constantArrayStorage: "static const", restrict: "restrict",
        align64: "__attribute__((aligned(64)))",
        localFunction: "static", exportedFunction: "KILN_EXPORT", kernelFunction: "static __attribute__((noinline))",
        linkedKernelFunction: "__attribute__((noinline))",
        pointerTables: true, runtimeTable: "kiln_rt->", bindsRuntime: true,
        math32: [.fabs: "fabsf", .floor: "floorf", .ceil: "ceilf", .rint: "rintf", .roundeven: "rintf", .sqrt: "sqrtf",
                 .sin: "sinf", .cos: "cosf", .exp: "expf", .log: "logf", .log1p: "log1pf", .tanh: "tanhf", .pow: "powf",
                 .fma: "fmaf", .minnum: "kiln_minnumf", .maxnum: "kiln_maxnumf", .copysign: "copysignf"],
        math64: [.fabs: "fabs", .floor: "floor", .ceil: "ceil", .rint: "rint", .roundeven: "rint", .sqrt: "sqrt",
                 .sin: "sin", .cos: "cos", .exp: "exp", .log: "log", .log1p: "log1p", .tanh: "tanh", .pow: "pow",
                 .fma: "fma", .minnum: "kiln_minnum", .maxnum: "kiln_maxnum", .copysign: "copysign"],
        fmod32: "fmodf", fmod64: "fmod",
        unlikely: "__builtin_expect(%@, 0)",
        keepRolled: "#pragma GCC unroll 1",
        unrollFully: "#pragma GCC unroll 64",
        reduction: "#pragma omp simd reduction(+: %@)",
        bitcast: [.i32: "kiln_bits_f32(%@)", .f32: "kiln_f32_bits(%@)", .i64: "kiln_bits_f64(%@)", .f64: "kiln_f64_bits(%@)"],
        saturatingConversion: [.i8: "kiln_fptosi_sat_<from>_i8(%@)", .i16: "kiln_fptosi_sat_<from>_i16(%@)", .i32: "kiln_fptosi_sat_<from>_i32(%@)",
                               .i64: "kiln_fptosi_sat_<from>_i64(%@)"],
        header: ["#include <stdint.h>", "#include <stdbool.h>", "#include <string.h>", "#include <math.h>",
                 "#define KILN_EXPORT __attribute__((visibility(\"default\")))"],
        doubleExtension: nil)

    /// C99 for a file that stands alone (`kiln compile --emit c`): the same code as `c99`, but
    /// everything is `static`, runtime functions are called by name (the file defines them),
    /// there is no table and no `kiln_bind`, and the compiler-specific spellings are macros the
    /// header defines, so a compiler without GCC's extensions still builds it. The float sums
    /// `c99` hands to `-fopenmp-simd` stay in order unless the file is built with
    /// `-fopenmp-simd -DKILN_OPENMP_SIMD` (GCC warns about an omp pragma it was not asked for).
    public static let c99Standalone = CDialect(
        name: "standalone C99",
        types: c99.types, unsignedTypes: c99.unsignedTypes, signedTypes: c99.signedTypes,
        int32Min: c99.int32Min, int64Min: c99.int64Min, int64Literal: c99.int64Literal,
        floatInfinity: c99.floatInfinity, doubleInfinity: c99.doubleInfinity, floatNaN: c99.floatNaN, doubleNaN: c99.doubleNaN,
        globalSpace: "", privateSpace: "", constantArrayStorage: "static const", restrict: "restrict",
        align64: "KILN_ALIGNED64",
        localFunction: "static", exportedFunction: "static", kernelFunction: "static KILN_NOINLINE",
        linkedKernelFunction: "static KILN_NOINLINE",
        pointerTables: true, runtimeTable: "kiln_", bindsRuntime: false,
        math32: c99.math32, math64: c99.math64, fmod32: c99.fmod32, fmod64: c99.fmod64,
        unlikely: "KILN_UNLIKELY(%@)",
        keepRolled: c99.keepRolled,
        unrollFully: c99.unrollFully,
        reduction: "KILN_SIMD_SUM(%@)",
        bitcast: c99.bitcast, saturatingConversion: c99.saturatingConversion,
        header: ["#include <stdint.h>", "#include <stdbool.h>", "#include <string.h>", "#include <math.h>",
                 "#ifndef KILN_ALIGNED64",
                 "#if defined(__GNUC__) || defined(__clang__)",
                 "#define KILN_ALIGNED64 __attribute__((aligned(64)))",
                 "#define KILN_NOINLINE __attribute__((noinline))",
                 "#define KILN_UNLIKELY(c) __builtin_expect((c), 0)",
                 "#else",
                 "#define KILN_ALIGNED64",
                 "#define KILN_NOINLINE",
                 "#define KILN_UNLIKELY(c) (c)",
                 "#endif",
                 "#endif",
                 "#ifdef KILN_OPENMP_SIMD",
                 "#define KILN_PRAGMA(x) _Pragma(#x)",
                 "#define KILN_SIMD_SUM(...) KILN_PRAGMA(omp simd reduction(+: __VA_ARGS__))",
                 "#else",
                 "#define KILN_SIMD_SUM(...)",
                 "#endif"],
        doubleExtension: nil)

    /// OpenCL C 1.2: overloaded math (OpenCL's fmin/fmax already return the other operand for a
    /// NaN), `as_<type>` bit casts and `convert_<type>_sat_rtz` conversions (NaN -> 0), buffers
    /// in `__global` memory as kernel parameters, stack arrays `__private`, read-only arrays
    /// `__constant`. There is no C runtime on a device: integer power is a prelude helper and
    /// every other runtime call, the pool and calls through the pointer tables are refused.
    public static let openCL = CDialect(
        name: "OpenCL C",
        types: [.i1: "bool", .i8: "uchar", .i16: "short", .i32: "int", .i64: "long", .f32: "float", .f64: "double"],
        unsignedTypes: [.i1: "bool", .i8: "uchar", .i16: "ushort", .i32: "uint", .i64: "ulong"],
        signedTypes: [.i1: "bool", .i8: "char", .i16: "short", .i32: "int", .i64: "long"],
        int32Min: "INT_MIN", int64Min: "LONG_MIN", int64Literal: ("", "L"),
        floatInfinity: "INFINITY", doubleInfinity: "((double)INFINITY)", floatNaN: "NAN", doubleNaN: "((double)NAN)",
        globalSpace: "__global ", privateSpace: "__private ", constantArrayStorage: "__constant", restrict: "restrict",
        align64: "__attribute__((aligned(64)))",
        localFunction: "", exportedFunction: "", kernelFunction: "__kernel", linkedKernelFunction: "__kernel",
        pointerTables: false, runtimeTable: nil, bindsRuntime: false,
        math32: [.fabs: "fabs", .floor: "floor", .ceil: "ceil", .rint: "rint", .roundeven: "rint", .sqrt: "sqrt",
                 .sin: "sin", .cos: "cos", .exp: "exp", .log: "log", .log1p: "log1p", .tanh: "tanh", .pow: "pow",
                 .fma: "fma", .minnum: "fmin", .maxnum: "fmax", .copysign: "copysign"],
        math64: [.fabs: "fabs", .floor: "floor", .ceil: "ceil", .rint: "rint", .roundeven: "rint", .sqrt: "sqrt",
                 .sin: "sin", .cos: "cos", .exp: "exp", .log: "log", .log1p: "log1p", .tanh: "tanh", .pow: "pow",
                 .fma: "fma", .minnum: "fmin", .maxnum: "fmax", .copysign: "copysign"],
        fmod32: "fmod", fmod64: "fmod",
        unlikely: "%@",
        keepRolled: "#pragma unroll 1",
        unrollFully: "#pragma unroll",
        reduction: nil,
        bitcast: [.i32: "as_int(%@)", .f32: "as_float(%@)", .i64: "as_long(%@)", .f64: "as_double(%@)"],
        saturatingConversion: [.i8: "((uchar)convert_char_sat_rtz(%@))", .i16: "convert_short_sat_rtz(%@)", .i32: "convert_int_sat_rtz(%@)", .i64: "convert_long_sat_rtz(%@)"],
        header: [], doubleExtension: "#pragma OPENCL EXTENSION cl_khr_fp64 : enable")

    public static func == (a: CDialect, b: CDialect) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }

    func type(_ t: ScalarType) -> String {
        precondition(t != .ptr, "pointers are spelled with their address space")
        return types[t]!
    }
}
