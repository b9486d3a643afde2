#include "CLLVM.h"
#include <pthread.h>
#include "llvm/Config/llvm-config.h"

// llvm-c/Target.h's LLVMInitializeAll* are static inline over the configured targets, so they
// are called from C here, once.
static pthread_once_t all_targets_once = PTHREAD_ONCE_INIT;

static void initialize_all_targets(void) {
    LLVMInitializeAllTargetInfos();
    LLVMInitializeAllTargets();
    LLVMInitializeAllTargetMCs();
    LLVMInitializeAllAsmPrinters();
    LLVMInitializeAllAsmParsers();
}

void kiln_llvm_initialize_all_targets(void) { pthread_once(&all_targets_once, initialize_all_targets); }

const char *kiln_llvm_version(void) { return LLVM_VERSION_STRING; }
