// What Kiln needs from LLVM beyond its C API: registering every target (llvm-c's initialisers
// are static inline, generated per configured target) and asking a target about its CPUs
// (the C API cannot say whether a CPU name is valid; LLVM only warns on stderr and ignores it).
#ifndef KILN_CLLVM_SUPPORT_H
#define KILN_CLLVM_SUPPORT_H

#ifdef __cplusplus
extern "C" {
#endif

// Registers every target, target MC layer, assembly printer and parser LLVM was built with;
// idempotent and thread-safe.
void kiln_llvm_initialize_all_targets(void);

// 1 if `cpu` is a processor LLVM knows for `triple` (a normalised triple), 0 if not, -1 when
// LLVM has no target for the triple.
int kiln_llvm_cpu_is_valid(const char *triple, const char *cpu);

// The processors LLVM knows for `triple`, one per line in LLVM's (sorted) order; NULL when LLVM
// has no target for it. The caller frees the string with free().
char *kiln_llvm_cpu_names(const char *triple);

// 1 if the subtarget `cpu` + `features` of `triple` has every feature of `query` ("+avx512f" or
// "+avx2,+fma"), 0 if not, -1 when LLVM has no target for the triple.
int kiln_llvm_cpu_has_features(const char *triple, const char *cpu, const char *features, const char *query);

// The version of the LLVM Kiln was built against ("15.0.6"): part of a cached object's key.
const char *kiln_llvm_version(void);

#ifdef __cplusplus
}
#endif

#endif
