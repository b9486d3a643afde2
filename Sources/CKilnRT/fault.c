// The fault record compiled code writes when a check fails (an index out of range, an integer
// division by zero), and the error text an artifact makes of it. Only the failing path calls
// these, so the record may take a lock.
#include "CKilnRT.h"
#ifndef KILN_PORTABLE
#include <stdatomic.h>

_Static_assert(sizeof(kiln_fault) <= 32, "the fault record must fit its 32 bytes in the arena");
#endif

// The first fault in program order wins: the lowest site, then the lowest position, so a kernel
// split across the pool reports what a single loop would have found first.
static int kiln_fault_earlier(const kiln_fault *f, int64_t site, int64_t position) {
    return f->site == 0 || site < f->site || (site == f->site && position < f->position);
}

KILN_API void kiln_fault_record(kiln_fault *f, int64_t site, int64_t position, int64_t value) {
#ifndef KILN_PORTABLE
    atomic_int *lock = (atomic_int *)&f->lock;
    while (atomic_exchange_explicit(lock, 1, memory_order_acquire)) {}
#endif
    if (kiln_fault_earlier(f, site, position)) {
        f->site = site;
        f->position = position;
        f->value = value;
    }
#ifndef KILN_PORTABLE
    atomic_store_explicit(lock, 0, memory_order_release);
#endif
}

// Appends `text` (n bytes) to out[*used], keeping room for the NUL.
static void kiln_fault_append(char *out, size_t size, size_t *used, const char *text, size_t n) {
    while (n > 0 && *used + 1 < size) {
        out[(*used)++] = *text++;
        n--;
    }
}

// Decimal digits of x into buf (at least 21 bytes); returns the length. INT64_MIN included.
static size_t kiln_fault_decimal(int64_t x, char *buf) {
    char digits[20];
    size_t n = 0, len = 0;
    uint64_t u = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    do {
        digits[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0);
    if (x < 0) buf[len++] = '-';
    while (n > 0) buf[len++] = digits[--n];
    return len;
}

KILN_API void kiln_fault_message(const char *message, int64_t rank, const int64_t *shape, int64_t position, int64_t value,
                                 char *out, size_t size) {
    if (out == NULL || size == 0) return;
    size_t used = 0;
    char number[24];
    for (const char *p = message ? message : ""; *p;) {
        if (p[0] == '{' && p[1] == 'i' && p[2] == 'n' && p[3] == 'd' && p[4] == 'e' && p[5] == 'x' && p[6] == '}') {
            if (rank > 0) {
                // Row-major: the last dimension varies fastest; empty dimensions give index 0.
                kiln_fault_append(out, size, &used, "[", 1);
                for (int64_t d = 0; d < rank; d++) {
                    int64_t stride = 1, index = 0;
                    for (int64_t e = d + 1; e < rank; e++)
                        if (shape[e] > 0) stride *= shape[e];
                    if (shape[d] > 0) index = position / stride % shape[d];
                    if (d > 0) kiln_fault_append(out, size, &used, ",", 1);
                    kiln_fault_append(out, size, &used, number, kiln_fault_decimal(index, number));
                }
                kiln_fault_append(out, size, &used, "]", 1);
            }
            p += 7;
        } else if (p[0] == '{' && p[1] == 'k' && p[2] == 'i' && p[3] == 'n' && p[4] == 'd' && p[5] == 's' && p[6] == '}') {
            /* A finite check (CheckNumerics): the value holds the kinds found, NaN 1, Inf 2. */
            const char *kinds = (value & 2) ? ((value & 1) ? "Inf and NaN" : "Inf") : "NaN";
            size_t n = 0;
            while (kinds[n]) n++;
            kiln_fault_append(out, size, &used, kinds, n);
            p += 7;
        } else if (p[0] == '{' && p[1] == 'v' && p[2] == 'a' && p[3] == 'l' && p[4] == 'u' && p[5] == 'e' && p[6] == '}') {
            kiln_fault_append(out, size, &used, number, kiln_fault_decimal(value, number));
            p += 7;
        } else {
            kiln_fault_append(out, size, &used, p, 1);
            p++;
        }
    }
    out[used] = 0;
}
