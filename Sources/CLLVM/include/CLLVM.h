// The LLVM 15 C API surface Kiln uses. llvm-c/ and llvm/ beside this file are symlinks to
// /usr/lib/llvm-15/include, installed by llvm-15-dev.
#include "llvm-c/Core.h"
#include "llvm-c/Analysis.h"
#include "llvm-c/DebugInfo.h"
#include "llvm-c/Error.h"
#include "llvm-c/Support.h"
#include "llvm-c/Target.h"
#include "llvm-c/TargetMachine.h"
#include "llvm-c/Orc.h"
#include "llvm-c/LLJIT.h"
#include "llvm-c/Transforms/PassBuilder.h"
