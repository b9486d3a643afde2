// The text a rendered C or OpenCL C file starts with besides the dialect's header: the C
// runtime's function table (C99) and the small helper functions the dialects name with a
// `kiln_` prefix, each written out only when a rendered function uses it.

enum CPrelude {
    /// The runtime functions' table as CKilnRT.h's `kiln_runtime_api` lays it out (pointer
    /// parameters as `void *`; a test checks the layout against the header).
    static let runtimeTable = [
        "typedef void (*kiln_range_kernel)(void *, void *, void *, void *, int64_t, int64_t);",
        "typedef struct {",
        "    void (*parallel_for)(kiln_range_kernel, void **, int64_t);",
        "    void (*sgemm)(int, int, int64_t, int64_t, int64_t, float, const void *, int64_t, const void *, int64_t, void *, int64_t, int);",
        "    void (*blas_sgemm)(int32_t, int32_t, int64_t, int64_t, int64_t, float, const void *, int64_t, const void *, int64_t, float, void *, int64_t);",
        "    void (*blas_dgemm)(int32_t, int32_t, int64_t, int64_t, int64_t, double, const void *, int64_t, const void *, int64_t, double, void *, int64_t);",
        "    void (*fault_record)(void *, int64_t, int64_t, int64_t);",
        "    int64_t (*ipow_i64)(int64_t, int64_t);",
        "    void (*profile_tick)(void *, int64_t);",
        "    void (*hgemm)(int, int, int, int, int, int64_t, int64_t, int64_t, float, const void *, int64_t, const void *, int64_t, void *, int64_t, int);",
        "    void (*conv2d_f32)(const void *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const void *, int64_t, int64_t, void *, int64_t, int64_t, int64_t);",
        "    void (*conv2d_filter_gradient_f32)(const void *, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, const void *, int64_t, int64_t, void *, int64_t, int64_t, int64_t);",
        "} kiln_runtime_api;",
        "static const kiln_runtime_api *kiln_rt;",
    ]

    /// The definition of prelude helper `name` (a `kiln_` name a dialect spells a math function,
    /// bit cast or saturating conversion with) in dialect `c`.
    static func definition(_ name: String, _ c: CDialect) -> String {
        switch name {
        case "kiln_minnumf", "kiln_maxnumf", "kiln_minnum", "kiln_maxnum":
            // LLVM's minnum/maxnum: a NaN operand gives the other one (written as a select so
            // loops using it still vectorise; fminf is a libm call without -ffinite-math-only).
            let t = name.hasSuffix("f") ? "float" : "double", op = name.contains("min") ? "<" : ">"
            return "static inline \(t) \(name)(\(t) a, \(t) b) { return ((a \(op) b) | (b != b)) ? a : b; }"
        case "kiln_bits_f32": return "static inline int32_t kiln_bits_f32(float x) { int32_t r; memcpy(&r, &x, 4); return r; }"
        case "kiln_f32_bits": return "static inline float kiln_f32_bits(int32_t x) { float r; memcpy(&r, &x, 4); return r; }"
        case "kiln_bits_f64": return "static inline int64_t kiln_bits_f64(double x) { int64_t r; memcpy(&r, &x, 8); return r; }"
        case "kiln_f64_bits": return "static inline double kiln_f64_bits(int64_t x) { double r; memcpy(&r, &x, 8); return r; }"
        case "kiln_ipow_i64":
            // The runtime's integer power (CKilnRT/runtime.c), for a device without the runtime.
            return """
                long kiln_ipow_i64(long base, long exp) {
                    if (exp < 0) return base == 1 ? 1 : base == -1 ? ((exp & 1) ? -1 : 1) : 0;
                    ulong result = 1, b = (ulong)base, e = (ulong)exp;
                    while (e) {
                        if (e & 1) result *= b;
                        b *= b;
                        e >>= 1;
                    }
                    return (long)result;
                }
                """
        default:
            // kiln_fptosi_sat_<f32|f64>_<i8|i32|i64>: llvm.fptosi.sat, NaN -> 0, out of range
            // clamps to the target's limits.
            let parts = name.split(separator: "_")
            precondition(name.hasPrefix("kiln_fptosi_sat_") && parts.count == 5, "no prelude helper \(name)")
            let from = parts[3] == "f32" ? "float" : "double", to: ScalarType = parts[4] == "i8" ? .i8 : parts[4] == "i16" ? .i16 : parts[4] == "i32" ? .i32 : .i64
            let S = c.signedTypes[to]!, width = to.byteSize * 8
            let bound = "\(Double(sign: .plus, exponent: width - 1, significand: 1))" + (from == "float" ? "f" : "")
            let maxV = width == 64 ? "INT64_MAX" : width == 32 ? "INT32_MAX" : width == 16 ? "INT16_MAX" : "INT8_MAX"
            let minV = width == 64 ? "INT64_MIN" : width == 32 ? "INT32_MIN" : width == 16 ? "INT16_MIN" : "INT8_MIN"
            return "static inline \(c.type(to)) \(name)(\(from) x) { return (\(c.type(to)))(x != x ? 0 : x >= \(bound) ? \(maxV) : x < -\(bound) ? \(minV) : (\(S))x); }"
        }
    }
}
