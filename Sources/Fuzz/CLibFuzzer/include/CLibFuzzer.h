#ifndef KILN_CLIBFUZZER_H
#define KILN_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer). Each fuzz target's entry point
/// calls it, since SwiftPM makes an executable's `main` an alias of `<Target>_main`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
