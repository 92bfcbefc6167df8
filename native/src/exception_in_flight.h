// QEMU's "exception in flight" (CPUX86State.old_exception), which Unicorn never clears.
//
// QEMU's check_exception (target/i386/excp_helper.c) records each contributory fault (#DE, #TS,
// #NP, #SS, #GP), #PF and #DF it raises, and turns the next contributory fault into #DF and any
// fault after a #DF into a triple fault (Intel SDM Vol. 3A §6.15, Interrupt 8, Table 6-5). Only a
// delivery of QEMU's own clears it (seg_helper.c x86_cpu_do_interrupt: "successfully delivered",
// old_exception = -1). Unicorn hands every exception to the UC_HOOK_INTR hook instead of
// delivering it (accel/tcg/cpu-exec.c cpu_handle_exception), so nothing clears it there, and the
// second of two unrelated faults, each delivered by the host, came out as #DF, the third as a
// triple fault (Unicorn 2.1.4; still so on master). No API clears the field: no register write,
// no uc_ctl, and QEMU's CPU reset is not reachable. But uc_context_save and uc_context_restore
// copy the CPU state (env) up to end_reset_fields, which old_exception lies before; so the host
// clears it by saving a context, writing -1 there and restoring it. The field's place in a
// context is found once per process, the first time a fault needs it cleared, by running two
// faults on a scratch engine (see .cc).
#pragma once

#include <unicorn/unicorn.h>

#include <cstddef>
#include <cstdint>

namespace minivisor {

// Whether QEMU's check_exception records `vector` as in flight when it raises it as a fault:
// contributory faults (0, 10-13), #PF (14) and #DF (8).
inline bool RecordedInFlight(uint32_t vector) {
  return vector == 0 || vector == 8 || (vector >= 10 && vector <= 14);
}

struct ExceptionInFlightLayout {
  // Byte offset of old_exception from the start of a uc_context (header included), for contexts
  // of uc_context_size() == context_bytes; -1 when not needed or not found.
  long offset = -1;
  size_t context_bytes = 0;
  // The library escalates a second fault the host delivered (so clearing is needed).
  bool escalates = false;
};

// The probe's answer, computed once per process (thread-safe). When the probe could not confirm
// the offset, offset is -1 and nothing is cleared: the old behaviour, never a wrong write.
const ExceptionInFlightLayout& ExceptionInFlight();

// Writes "nothing in flight" into a saved context of `layout`'s size.
inline void ClearExceptionInFlight(const ExceptionInFlightLayout& layout, uc_context* context) {
  const int32_t none = -1;
  __builtin_memcpy(reinterpret_cast<uint8_t*>(context) + layout.offset, &none, sizeof none);
}

}  // namespace minivisor
