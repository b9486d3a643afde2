// The fault record compiled code writes when a check fails (an index out of range, an integer
// division by zero). Only the failing path calls this, so it may take a lock.
#include "CKilnRT.h"
#include <stdatomic.h>

_Static_assert(sizeof(kiln_fault) <= 64, "the fault record must fit its arena slot");

void kiln_fault_record(kiln_fault *f, int64_t site, int64_t position, int64_t value) {
    atomic_int *lock = (atomic_int *)&f->lock;
    while (atomic_exchange_explicit(lock, 1, memory_order_acquire)) {}
    // The first fault in program order wins: the lowest site, then the lowest position, so a
    // kernel split across the pool reports what a single loop would have found first.
    if (f->site == 0 || site < f->site || (site == f->site && position < f->position)) {
        f->site = site;
        f->position = position;
        f->value = value;
    }
    atomic_store_explicit(lock, 0, memory_order_release);
}
