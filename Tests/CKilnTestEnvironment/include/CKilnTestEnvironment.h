// Links environment.c, whose constructor turns the compiled-code cache off for the test suite
// unless KILN_CACHE_DIR is set.
int kiln_test_environment_linked(void);
