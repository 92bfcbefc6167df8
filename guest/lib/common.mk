# Shared compiler settings for every guest stage (firmware, decompressor, kernel).
# Freestanding x86-64, no red zone (exceptions are injected on the current stack), no SSE
# (nothing saves vector state), no PIE (each stage is linked at its ABI address).
CC ?= gcc
LD ?= ld
OBJCOPY ?= objcopy
PYTHON ?= python3
GUEST_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
GUEST_LIB_SRCS := $(addprefix $(GUEST_DIR)/lib/,cpu.S cpu.c console.c platform.c paging.c string.c)
CFLAGS := -std=gnu11 -O2 -g0 -Wall -Wextra -Werror -ffreestanding -fno-builtin -nostdlib \
	-fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only -mno-mmx -mno-sse -mno-sse2 \
	-mcmodel=small -fno-stack-protector -fno-asynchronous-unwind-tables -fno-unwind-tables \
	-fno-common -fcf-protection=none -I$(GUEST_DIR)/include $(VARIANT_CFLAGS)
ASFLAGS := -I$(GUEST_DIR)/include -D__ASSEMBLER__
include $(GUEST_DIR)/lib/variants.mk
LDFLAGS := -nostdlib -static -no-pie -z max-page-size=0x1000 -z noexecstack --build-id=none \
	--no-warn-rwx-segments

# Fails early with a readable message instead of a compiler error cascade.
define require_tool
$(if $(shell command -v $(1) 2>/dev/null),,$(error minivisor guest build: `$(1)` not found; $(2)))
endef
$(call require_tool,$(CC),install gcc (Debian: apt-get install build-essential))
$(call require_tool,$(LD),install binutils (Debian: apt-get install binutils))
