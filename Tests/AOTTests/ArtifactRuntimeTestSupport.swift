@testable import KilnAOT
import Foundation
import KilnIR
import KilnTestSupport
import XCTest

/// Temporary directories and symbol tables for the runtime library tests.
enum RuntimeTestFiles {
    static func directory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "/kiln-rt-test-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw KilnError.internalError("mkdtemp failed")
        }
        return dir
    }

    /// The global symbols a file defines (nm's upper-case types other than U), sorted.
    static func definedGlobals(nm: String, file: String) throws -> [String] {
        let out = try ToolRunner.succeed([nm, "-g", "--defined-only", file], in: (file as NSString).deletingLastPathComponent)
        return out.split(separator: "\n").compactMap { line -> String? in
            let f = line.split(separator: " ")
            return f.count >= 3 ? String(f[2]) : nil
        }.sorted()
    }
}

/// A C program that exercises the runtime's functions through the artifact library (`RT(x)` is
/// PREFIX + x) or through the portable paste (`-DPORTABLE`, including paste.c): products against
/// a naive loop, the pool, fault records, messages and powers. argv[1] is the pool size asked
/// for. It prints `threads N`, a hash of every product's bytes, each fault message, and
/// `failures N`, and exits 1 when anything failed.
enum RuntimeDriver {
    /// (template, shape, position, value, buffer size) per message the driver formats, in order.
    static let messages: [(String, [Int], Int, Int64, Int)] = [
        ("indices{index} = {value} is not in [0, 10)", [2, 3], 4, -7, 256),
        ("indices{index} = {value} is not in [0, 10)", [2, 3], 4, -7, 10),
        ("value {value} at {index}!", [], 0, Int64.min, 256),
        ("{ind{index}x} {value", [5], 3, 9, 256),
        ("at {index}", [4, 0, 5], 7, 0, 256),
        ("{value}{index}", [3, 4, 5], 59, Int64.max, 256),
    ]

    /// What Check.error makes of message k (the artifact's template appends node and op).
    static func expected(_ k: Int) -> String {
        let (template, shape, position, value, size) = messages[k]
        let check = Check(.nonzero, node: "n", opType: "Op", message: template)
        return String(check.error(position: position, value: value, shape: shape).message.utf8.prefix(size - 1))!
    }

    static var source: String {
        let cases = messages.map { m in
            "{\"\(m.0) for 'n' (op: 'Op')\", \(m.1.count), {\(m.1.isEmpty ? "0" : m.1.map(String.init).joined(separator: ", "))}, \(m.2), \(m.3 == Int64.min ? "INT64_MIN" : m.3 == Int64.max ? "INT64_MAX" : "\(m.3)"), \(m.4)}"
        }.joined(separator: ",\n    ")
        return #"""
        #include <math.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #ifdef PORTABLE
        #include "paste.c"
        #define RT(x) x
        #else
        #define CAT2(a, b) a##b
        #define CAT(a, b) CAT2(a, b)
        #define RT(x) CAT(PREFIX, x)
        typedef void (*kiln_range_kernel)(void *, void *, void *, void *, int64_t, int64_t);
        typedef struct { int64_t site, position, value; int32_t lock; } kiln_fault;
        int RT(kiln_pool_configure)(int);
        void RT(kiln_parallel_for)(kiln_range_kernel, void **, int64_t);
        void RT(kiln_sgemm)(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float *, int64_t, int);
        void RT(kiln_gemm_f32)(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float *, int64_t, int);
        void RT(kiln_gemm_f64)(int, int, int64_t, int64_t, int64_t, double, const double *, int64_t, const double *, int64_t, double *, int64_t, int);
        void RT(kiln_blas_sgemm)(int32_t, int32_t, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float, float *, int64_t);
        void RT(kiln_blas_dgemm)(int32_t, int32_t, int64_t, int64_t, int64_t, double, const double *, int64_t, const double *, int64_t, double, double *, int64_t);
        void RT(kiln_fault_record)(kiln_fault *, int64_t, int64_t, int64_t);
        void RT(kiln_fault_message)(const char *, int64_t, const int64_t *, int64_t, int64_t, char *, size_t);
        int64_t RT(kiln_ipow_i64)(int64_t, int64_t);
        void RT(kiln_hgemm)(int, int, int, int, int, int64_t, int64_t, int64_t, float, const uint16_t *, int64_t, const uint16_t *, int64_t, void *, int64_t, int);
        float RT(kiln_half_to_f32)(int, uint16_t);
        uint16_t RT(kiln_f32_to_half)(int, float);
        #endif

        static int failures;
        static unsigned long long hash = 1469598103934665603ULL;
        static void fold(const void *p, size_t n) {
            const unsigned char *b = p;
            for (size_t i = 0; i < n; i++) hash = (hash ^ b[i]) * 1099511628211ULL;
        }
        static unsigned long long seed = 12345;
        static double draw(void) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            return (double)(seed >> 11) / 9007199254740992.0 * 2 - 1;
        }

        // Every product function on one shape: A is m x k (k x m stored when ta), B k x n (n x k
        // when tb), all with row strides wider than the rows; C outside n x m must stay untouched,
        // and C's old contents must be ignored (NaN) unless updating.
        static void check_products(int m, int n, int k, int ta, int tb, double alpha, int update) {
            int64_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 1;
            int64_t arows = ta ? k : m, brows = tb ? n : k;
            double *a = malloc(sizeof(double) * arows * lda), *b = malloc(sizeof(double) * brows * ldb);
            double *c0 = malloc(sizeof(double) * m * ldc), *want = malloc(sizeof(double) * m * ldc), *bound = malloc(sizeof(double) * m * ldc);
            float *af = malloc(sizeof(float) * arows * lda), *bf = malloc(sizeof(float) * brows * ldb), *cf = malloc(sizeof(float) * m * ldc);
            double *cd = malloc(sizeof(double) * m * ldc);
            for (int64_t i = 0; i < arows * lda; i++) af[i] = (float)(a[i] = (float)draw());
            for (int64_t i = 0; i < brows * ldb; i++) bf[i] = (float)(b[i] = (float)draw());
            for (int64_t i = 0; i < m * ldc; i++) c0[i] = (float)draw();
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double sum = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
                        sum += x * y;
                        mag += fabs(x * y);
                    }
                    want[i * ldc + j] = alpha * sum + (update ? c0[i * ldc + j] : 0);
                    bound[i * ldc + j] = fabs(alpha) * mag + (update ? fabs(c0[i * ldc + j]) : 0) + 1e-30;
                }
            for (int f = 0; f < 5; f++) {
                int single = f < 3;
                for (int64_t i = 0; i < m * ldc; i++) {
                    int pad = i % ldc >= n;
                    double v = update || pad ? c0[i] : NAN;
                    if (single) cf[i] = (float)v; else cd[i] = v;
                }
                switch (f) {
                case 0: RT(kiln_gemm_f32)(ta, tb, m, n, k, (float)alpha, af, lda, bf, ldb, cf, ldc, update); break;
                case 1: RT(kiln_sgemm)(ta, tb, m, n, k, (float)alpha, af, lda, bf, ldb, cf, ldc, update); break;
                case 2: RT(kiln_blas_sgemm)(ta, tb, m, n, k, (float)alpha, af, lda, bf, ldb, update ? 1.0f : 0.0f, cf, ldc); break;
                case 3: RT(kiln_gemm_f64)(ta, tb, m, n, k, alpha, a, lda, b, ldb, cd, ldc, update); break;
                case 4: RT(kiln_blas_dgemm)(ta, tb, m, n, k, alpha, a, lda, b, ldb, update ? 1.0 : 0.0, cd, ldc); break;
                }
                int bad = 0;
                for (int64_t i = 0; i < m * ldc && !bad; i++) {
                    double got = single ? cf[i] : cd[i];
                    if (i % ldc >= n) bad = got != (single ? (double)(float)c0[i] : c0[i]);
                    else bad = !(fabs(got - want[i]) <= (single ? 2e-6 : 1e-14) * bound[i] * (k + 2));
                    if (bad) printf("product %d %dx%dx%d ta=%d tb=%d alpha=%g update=%d: element %lld is %.9g, want %.9g\n",
                                    f, m, n, k, ta, tb, alpha, update, (long long)i, got, want[i]);
                }
                failures += bad;
                if (single) fold(cf, sizeof(float) * m * ldc); else fold(cd, sizeof(double) * m * ldc);
            }
            free(a); free(b); free(c0); free(want); free(bound); free(af); free(bf); free(cf); free(cd);
        }

        // The half products (format 1 float16, 2 bfloat16; C in float32 or the same format) by the
        // method the build picks, against the definition in double: float32 sums, one rounding.
        // Not in the hash: the AVX-512 and portable builds sum in different orders.
        static void check_half(int m, int n, int k, int ta, int tb, int format, int c_format, int update) {
            int64_t lda = (ta ? m : k) + 1, ldb = (tb ? k : n) + 2, ldc = n + 1;
            int64_t arows = ta ? k : m, brows = tb ? n : k;
            uint16_t *a = malloc(2 * arows * lda + 2), *b = malloc(2 * brows * ldb + 2), *ch = malloc(2 * m * ldc + 2);
            float *cf = malloc(4 * m * ldc + 4);
            double *c0 = malloc(8 * m * ldc + 8);
            for (int64_t i = 0; i < arows * lda; i++) a[i] = RT(kiln_f32_to_half)(format, (float)draw());
            for (int64_t i = 0; i < brows * ldb; i++) b[i] = RT(kiln_f32_to_half)(format, (float)draw());
            for (int64_t i = 0; i < m * ldc; i++) {
                ch[i] = RT(kiln_f32_to_half)(format, (float)draw());
                c0[i] = c_format ? RT(kiln_half_to_f32)(format, ch[i]) : draw();
                cf[i] = (float)c0[i];
            }
            RT(kiln_hgemm)(0, format, c_format, ta, tb, m, n, k, 0.5f, a, lda, b, ldb, c_format ? (void *)ch : (void *)cf, ldc, update);
            int bad = 0;
            for (int i = 0; i < m && !bad; i++)
                for (int j = 0; j < n && !bad; j++) {
                    double sum = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        double x = RT(kiln_half_to_f32)(format, ta ? a[p * lda + i] : a[i * lda + p]);
                        double y = RT(kiln_half_to_f32)(format, tb ? b[j * ldb + p] : b[p * ldb + j]);
                        sum += x * y;
                        mag += fabs(x * y);
                    }
                    double want = 0.5 * sum + (update ? c0[i * ldc + j] : 0);
                    double got = c_format ? RT(kiln_half_to_f32)(format, ch[i * ldc + j]) : cf[i * ldc + j];
                    double tolerance = 2e-7 * (k + 2) * (mag + fabs(c0[i * ldc + j])) + (c_format ? (format == 1 ? 0x1p-11 : 0x1p-8) * fabs(want) + 0x1p-24 : 0);
                    bad = !(fabs(got - want) <= tolerance);
                    if (bad) printf("half product %dx%dx%d ta=%d tb=%d format %d C %d update %d: element %d,%d is %.9g, want %.9g\n",
                                    m, n, k, ta, tb, format, c_format, update, i, j, got, want);
                }
            failures += bad;
            free(a); free(b); free(ch); free(cf); free(c0);
        }

        static int hits[1000];
        static void mark(void *h, void *u1, void *u2, void *u3, int64_t begin, int64_t end) {
            (void)u1; (void)u2; (void)u3;
            for (int64_t i = begin; i < end; i++) ((int *)h)[i]++;
        }

        static const struct { const char *message; int64_t rank; int64_t shape[3]; int64_t position, value; size_t size; } messages[] = {
            \#(cases)
        };

        int main(int argc, char **argv) {
            printf("threads %d\n", RT(kiln_pool_configure)(argc > 1 ? atoi(argv[1]) : 0));
            static const int shapes[][3] = {{1, 1, 1}, {17, 33, 65}, {7, 19, 300}, {64, 48, 40}, {100, 96, 64}, {5, 70, 513}};
            for (int s = 0; s < 6; s++)
                for (int t = 0; t < 4; t++)
                    for (int v = 0; v < 4; v++) check_products(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t >> 1, v & 1 ? -0.5 : 1, v >> 1);
            check_products(130, 260, 520, 0, 0, 1, 0);
            check_products(130, 260, 520, 1, 1, 0.25, 1);
            check_products(5, 1022, 40, 0, 0, 1, 1);
            check_products(3, 4, 0, 0, 1, 1, 0);
            check_products(3, 4, 0, 1, 0, 1, 1);
            printf("hash %016llx\n", hash);
            for (int format = 1; format <= 2; format++)
                for (int t = 0; t < 4; t++) {
                    check_half(37, 45, 301, t & 1, t >> 1, format, 0, t == 1);
                    check_half(140, 20, 33, t & 1, t >> 1, format, format, t == 2);
                }

            void *args[4] = {hits, 0, 0, 0};
            for (int count = 0; count <= 1000; count += 333) {
                memset(hits, 0, sizeof hits);
                RT(kiln_parallel_for)(mark, args, count);
                for (int i = 0; i < 1000; i++)
                    if (hits[i] != (i < count)) { printf("parallel_for %d: row %d ran %d times\n", count, i, hits[i]); failures++; break; }
            }
            // Asked for after the pool started: the size stays.
            printf("threads after start %d\n", RT(kiln_pool_configure)(7));

            kiln_fault f;
            memset(&f, 0, sizeof f);
            RT(kiln_fault_record)(&f, 2, 5, 50);
            RT(kiln_fault_record)(&f, 1, 9, 90);
            RT(kiln_fault_record)(&f, 1, 3, 30);
            RT(kiln_fault_record)(&f, 2, 0, 0);
            RT(kiln_fault_record)(&f, 1, 4, 40);
            if (f.site != 1 || f.position != 3 || f.value != 30) { printf("fault record %lld %lld %lld\n", (long long)f.site, (long long)f.position, (long long)f.value); failures++; }

            for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
                char out[256];
                memset(out, 'X', sizeof out);
                RT(kiln_fault_message)(messages[i].message, messages[i].rank, messages[i].shape, messages[i].position, messages[i].value, out, messages[i].size);
                printf("message %d:%s|\n", (int)i, out);
            }
            char untouched = 'X';
            RT(kiln_fault_message)("x", 0, 0, 0, 0, &untouched, 0);
            if (untouched != 'X') { printf("fault_message wrote into a buffer of size 0\n"); failures++; }

            static const int64_t powers[][3] = {{3, 4, 81}, {-1, -3, -1}, {-1, -4, 1}, {2, 63, INT64_MIN}, {2, -1, 0}, {1, -5, 1}, {7, 0, 1}, {-3, 3, -27}};
            for (int i = 0; i < 8; i++)
                if (RT(kiln_ipow_i64)(powers[i][0], powers[i][1]) != powers[i][2]) { printf("ipow %d\n", i); failures++; }
            printf("failures %d\n", failures);
            return failures != 0;
        }
        """#
    }

    /// The lines of a run that start with `key `.
    static func value(_ output: String, _ key: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) }
    }

    /// The fault messages a run printed, in order.
    static func messages(_ output: String) -> [String] {
        output.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> String? in
            guard line.hasPrefix("message "), let colon = line.firstIndex(of: ":"), line.hasSuffix("|") else { return nil }
            return String(line[line.index(after: colon)..<line.index(before: line.endIndex)])
        }
    }
}
