#ifndef CKILN_CRC32C_H
#define CKILN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

// CRC-32C (Castagnoli) with the CPU's crc32 instruction (SSE4.2 on x86-64): TFRecord framing and
// checkpoint tables check every byte they read with it. The portable table-driven CRC stays in
// Swift (Runtime/Checkpoint/CRC32C.swift) for CPUs without the instruction.

// Whether kiln_crc32c_extend can run on this CPU (asked of the CPU at each call: ask once).
int kiln_crc32c_hardware(void);

// The CRC of crc's data followed by the n bytes at p (crc32c::Extend, unmasked). Only where
// kiln_crc32c_hardware() says so.
uint32_t kiln_crc32c_extend(uint32_t crc, const void *p, size_t n);

#endif
