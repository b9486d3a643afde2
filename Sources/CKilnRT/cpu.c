// What the running CPU supports, for choices made before any code runs (OpenBLAS's core type is
// read once, when the library loads). In-process only; x86 features are 0 on other CPUs.
#include "CKilnRT.h"

#ifndef KILN_ARTIFACT
int kiln_cpu_has_avx512(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

int kiln_cpu_has_avx2_fma(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}
#endif
