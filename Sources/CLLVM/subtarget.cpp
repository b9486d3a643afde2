// CPU names and features of a target through LLVM's MC layer (C++: the C API has no such query).
#include "CLLVMSupport.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/SubtargetFeature.h"
#include "llvm/MC/TargetRegistry.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

using namespace llvm;

namespace {

// LLVM 15 keeps a subtarget's processor table private (getAllProcessorDescriptions came in
// LLVM 16). An explicit instantiation may name a private member, so this reads it without
// depending on the class layout.
struct ProcessorTable {
    using type = ArrayRef<SubtargetSubTypeKV> MCSubtargetInfo::*;
    friend type member(ProcessorTable);
};
template <typename Tag, typename Tag::type M> struct Expose {
    friend typename Tag::type member(Tag) { return M; }
};
template struct Expose<ProcessorTable, &MCSubtargetInfo::ProcDesc>;

std::unique_ptr<MCSubtargetInfo> subtarget(const char *triple, const char *cpu, const char *features) {
    kiln_llvm_initialize_all_targets();
    std::string error;
    const Target *target = TargetRegistry::lookupTarget(triple, error);
    if (!target) return nullptr;
    return std::unique_ptr<MCSubtargetInfo>(target->createMCSubtargetInfo(triple, cpu, features));
}

}  // namespace

extern "C" int kiln_llvm_cpu_is_valid(const char *triple, const char *cpu) {
    // The empty CPU, not a known one: LLVM would warn for any other unknown name.
    auto sti = subtarget(triple, "", "");
    if (!sti) return -1;
    return sti->isCPUStringValid(cpu) ? 1 : 0;
}

extern "C" char *kiln_llvm_cpu_names(const char *triple) {
    auto sti = subtarget(triple, "", "");
    if (!sti) return nullptr;
    std::string names;
    for (const SubtargetSubTypeKV &p : (*sti).*member(ProcessorTable())) {
        names += p.Key;
        names += '\n';
    }
    char *out = static_cast<char *>(std::malloc(names.size() + 1));
    if (out) std::memcpy(out, names.c_str(), names.size() + 1);
    return out;
}

extern "C" int kiln_llvm_cpu_has_features(const char *triple, const char *cpu, const char *features, const char *query) {
    auto sti = subtarget(triple, cpu, features);
    if (!sti) return -1;
    return sti->checkFeatures(query) ? 1 : 0;
}
