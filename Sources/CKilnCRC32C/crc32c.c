#include "CKilnCRC32C.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>

int kiln_crc32c_hardware(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2) ? 1 : 0;
}

__attribute__((target("sse4.2"))) uint32_t kiln_crc32c_extend(uint32_t crc, const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t c = ~crc;
    // Three independent streams would hide the instruction's latency on long inputs; records
    // and table blocks are short, so one stream of 8-byte steps.
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, b, 8);
        c = _mm_crc32_u64(c, v);
        b += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n > 0) {
        c32 = _mm_crc32_u8(c32, *b++);
        n--;
    }
    return ~c32;
}
#else
int kiln_crc32c_hardware(void) { return 0; }

uint32_t kiln_crc32c_extend(uint32_t crc, const void *p, size_t n) {
    (void)p;
    (void)n;
    return crc;
}
#endif
