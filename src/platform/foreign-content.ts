// Foreign content: private memory whose bytes the guest did not put there itself in the page's
// current acceptance lifetime. The trusted hardware model decides which pages hold such content
// and the native content watch (Machine.watchContent, native/src/content_watch.h) records the
// guest's first read of a byte of it that the guest has not written itself since. A lifetime
// starts with the guest's own accept (or the measured launch) and ends when the guest gives the
// page up; this is the oracle's model too (src/fuzz/oracle.ts).
//
// TDX. The TDX module never lets the host put content into a private page of a running TD: a page
// added at runtime (TDH.MEM.PAGE.AUG) is PENDING and the guest can use it only through
// TDG.MEM.PAGE.ACCEPT, which zeroes it (tdg_mem_page_accept.c; EDK2 TdxLib AcceptPages.c: "accept
// a pending private page, and initialize the page to all-0"; page-accept.ts zeroAndMap), and
// TDH.MEM.PAGE.ADD works only before TDH.MR.FINALIZE, measured. What the host can do is keep a
// page: when the guest converts memory to shared (TDG.VP.VMCALL<MapGPA> with the shared bit, GHCI
// 1.5 §3.2) it ends that memory's private lifetime and the host is expected to remove the private
// pages; Linux re-accepts on the way back (tdx_enc_status_changed -> tdx_accept_memory). A host
// that keeps them MAPPED (or BLOCKED, to UNBLOCK later) leaves the old contents reachable, so the
// model watches pages from the guest's request to convert them to shared until its next
// successful ACCEPT of them. The module sees that request pass through TDG.VP.VMCALL
// (tdg_vp_vmcall.c forwards it without interpreting it; the model only observes it).
//
// SEV-SNP. RMPUPDATE writes the RMP entry, not memory (APM Vol. 3 "RMPUPDATE", snp-cpu.ts), and
// PVALIDATE's results are EAX, rFLAGS and the entry's Validated bit (tdx-snp-architecture.md B2;
// the APM Vol. 3 PVALIDATE page itself was not read, so "it does not write the page" is (U)); Linux
// snp_accept_memory (arch/x86/coco/sev/core.c: set_pages_state(..., SNP_PAGE_STATE_PRIVATE)) and
// snp_set_memory_private clear nothing after it, unlike TDX ACCEPT. So a page the guest validates
// holds whatever DRAM held, read through its key. Watched:
// - a page that left the guest (RMPUPDATE to the hypervisor: the guest's own conversion to shared,
//   PVALIDATE rescind then PSC, or the host taking it) and comes back: DRAM held what the host
//   wanted meanwhile (on hardware the guest then reads its decryption, garbage; the model keeps the
//   plaintext, snp-cpu.ts #changeOwner). Watched from that RMPUPDATE (only private accesses are
//   seen, so the guest's shared use of it does not count) until the guest's first private store
//   after it validates the page again: page granularity (content_watch.h);
// - of those, the pages whose DRAM the host wrote (a replay of old ciphertext, another page's, the
//   host's own bytes: #changeOwner decrypts exactly those, to garbage or to old plaintext): byte
//   by byte, from their re-assignment.
// Not watched: launch pages (SNP_LAUNCH_UPDATE, measured: Firmware ABI §8.17); a page the guest
// rescinds and validates again with no RMPUPDATE in between (it kept the guest's own ciphertext:
// the host cannot write an assigned page); and first validations (lazy acceptance, implicit
// conversions), whose bytes are the host's too: an honest crash kernel dumps accepted memory it
// never wrote (handover.test.ts) and the watch cannot tell a copy from a use, so watching them
// made that dump a finding. A guest that trusts a first-validated page to be zero is not caught.
// Cost: byte by byte for every page that comes back was measured at 20-30% of an honest
// kernel-stage execution (the kernel converts 2 MiB to shared and back per execution and writes
// two qwords of each page after: a decoded instruction and a TLB flush per access); the page
// granularity costs one TLB fill per page, within the noise of bench:fuzz --speed. Its blind
// spot: a guest that writes part of a page validated again and then reads the rest.
//
// Not seen by the watch: the guest's page-table walks (done in C by the TLB-fill hook, not by
// guest loads), and accesses through shared (unencrypted) mappings, which read shared memory by
// design.
import type { Machine } from '../cpu/machine.js';
import type { TraceValue } from '../shared/trace.js';

/**
 * Turns the reads the content watch recorded since the last exit into `foreign-read` hardware
 * events: call right after each run, before handling its exit, so events keep their order.
 */
export function recordForeignReads(machine: Machine, record: (type: string, fields: Record<string, TraceValue>) => void): void {
  if (!machine.foreignReadsPending) return;
  for (const r of machine.takeForeignReads()) record('foreign-read', { gpa: r.gpa, rip: r.rip ?? null, instruction: r.instructions });
}
