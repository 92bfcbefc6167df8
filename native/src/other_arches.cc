// Unicorn's uc_open() dispatches on the architecture to uc_init_<arch>, so a static link of
// libunicorn.a pulls in every architecture's emulator (~21 MiB of addon, ~75,000 relocations that
// every process start applies: ~2-3 ms of a `minivisor boot`, issue 11) though we only ever open
// UC_ARCH_X86. Weak definitions of the other entry points satisfy those references first, so the
// linker takes no other architecture's objects from the archive; if some other reference pulls
// one in anyway, its strong definition wins and nothing changes. They are never called: the
// addon opens x86 only (machine.cc), and a call would abort rather than emulate a wrong CPU.
#include <cstdlib>

// uc.c names three entry points per architecture (uc_init_*, reg_read_*, reg_write_*).
#define MINIVISOR_UNUSED_ENTRY(name) \
  extern "C" __attribute__((weak, visibility("hidden"))) void name() { std::abort(); }
#define MINIVISOR_UNUSED_ARCH(arch) \
  MINIVISOR_UNUSED_ENTRY(uc_init_##arch) \
  MINIVISOR_UNUSED_ENTRY(reg_read_##arch) \
  MINIVISOR_UNUSED_ENTRY(reg_write_##arch)

MINIVISOR_UNUSED_ARCH(arm)
MINIVISOR_UNUSED_ARCH(aarch64)
MINIVISOR_UNUSED_ARCH(m68k)
MINIVISOR_UNUSED_ARCH(mips)
MINIVISOR_UNUSED_ARCH(mipsel)
MINIVISOR_UNUSED_ARCH(mips64)
MINIVISOR_UNUSED_ARCH(mips64el)
MINIVISOR_UNUSED_ARCH(sparc)
MINIVISOR_UNUSED_ARCH(sparc64)
MINIVISOR_UNUSED_ARCH(ppc)
MINIVISOR_UNUSED_ARCH(ppc64)
MINIVISOR_UNUSED_ARCH(riscv32)
MINIVISOR_UNUSED_ARCH(riscv64)
MINIVISOR_UNUSED_ARCH(s390x)
MINIVISOR_UNUSED_ARCH(tricore)
