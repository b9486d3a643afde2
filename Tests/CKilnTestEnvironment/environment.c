#include <stdlib.h>

// Runs when the test bundle loads, before any test: the suite compiles thousands of programs, and
// they must not fill the user's cache directory (nor hit what an earlier build left there). Tests
// of the compiled-code cache name their own directory; KILN_CACHE_DIR set outside wins.
__attribute__((constructor)) static void kiln_tests_disable_code_cache(void) {
    setenv("KILN_CACHE_DIR", "off", 0);
}

int kiln_test_environment_linked(void) { return 1; }
