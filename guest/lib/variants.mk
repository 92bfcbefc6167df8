# Planted-bug variants of the stubs (guest/DEFENCES.md): each is the honest source compiled with
# one -D flag that plants ONE realistic acceptance bug at its check site. Both Makefiles build
# every variant into build/variants/<name>/ beside the honest images; src/vmm/boot/images.ts
# selects them by name (PLANTED_VARIANTS there must list the same names).
# `map-from-config` is not a planted bug but a test fixture: a firmware that hands over the
# memory map the VMM wrote into the config page, unchecked (like a firmware that passes the
# VMM's memory description through), so the decompressor's memory-map checks can be attacked.
VARIANTS := accept-already-accepted map-gpa-unbounded-retry psc-error-ignored e820-unchecked \
	reaccept-skipped trusts-injected-exception map-from-config accepting-list-missing handover-kexec \
	handover-crash \
	tracking-memmap tracking-memmap+map-from-config tracking-memmap+trusts-injected-exception
variant_flags.accept-already-accepted := -DMV_PLANT_ACCEPT_ALREADY_ACCEPTED
variant_flags.map-gpa-unbounded-retry := -DMV_PLANT_MAP_GPA_UNBOUNDED_RETRY
variant_flags.psc-error-ignored := -DMV_PLANT_PSC_ERROR_IGNORED
variant_flags.e820-unchecked := -DMV_PLANT_E820_UNCHECKED -DMV_FIXTURE_MAP_FROM_CONFIG
variant_flags.reaccept-skipped := -DMV_PLANT_REACCEPT_SKIPPED
variant_flags.trusts-injected-exception := -DMV_PLANT_TRUSTS_INJECTED_EXCEPTION
variant_flags.map-from-config := -DMV_FIXTURE_MAP_FROM_CONFIG
variant_flags.accepting-list-missing := -DMV_PLANT_NO_ACCEPTING_LIST
# Not bugs either: the kernel with a handover (guest/kernel/handover.h), `boot --handover kexec|crash`.
variant_flags.handover-kexec := -DMV_HANDOVER -DMV_HANDOVER_KEXEC
variant_flags.handover-crash := -DMV_HANDOVER -DMV_HANDOVER_CRASH
# `--tracking memmap` (Kleen's variant: the memory map is the record, no bitmap) is a build of
# its own, honest or combined with the fixture or planted bug its fatal checks are attacked through.
variant_flags.tracking-memmap := -DMV_TRACKING_MEMMAP
variant_flags.tracking-memmap+map-from-config := -DMV_TRACKING_MEMMAP -DMV_FIXTURE_MAP_FROM_CONFIG
variant_flags.tracking-memmap+trusts-injected-exception := -DMV_TRACKING_MEMMAP -DMV_PLANT_TRUSTS_INJECTED_EXCEPTION

# $(eval $(variant_rules)): `variants` re-runs the including Makefile once per variant with
# BUILD=build/variants/<name> and the variant's flags.
define variant_rules
variants:
	@$$(foreach v,$$(VARIANTS),$$(MAKE) --no-print-directory BUILD=build/variants/$$(v) VARIANT_CFLAGS='$$(variant_flags.$$(v))' all &&) true
.PHONY: variants
endef
