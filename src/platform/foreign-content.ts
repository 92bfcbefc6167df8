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
// snp_accept_memory clears nothing after it. So a page the guest validates holds whatever DRAM
// held, read through its key. The model watches the pages whose DRAM content the host decided:
// pages assigned to the guest (RMPUPDATE) whose DRAM the host wrote, or that kept the ciphertext
// of a validated page the host took from the guest (a re-assignment or remap): snp-cpu.ts
// #changeOwner decrypts exactly those, to garbage or to a replay of old plaintext. The watch
// starts at that RMPUPDATE; a validation does not end it (it does not write the page), only the
// guest's own writes do.
// Not watched, though not the guest's either: a page the guest itself rescinded and validated
// again (on hardware its bytes are then garbage; the model keeps the plaintext, snp-cpu.ts: "a
// guest must write memory it validates again before it uses it"), and pages validated for the
// first time whose DRAM nobody wrote (the model keeps them zero). Watching them would put every
// SNP conversion round trip under the watch: measured at 20-30% of an honest kernel-stage
// execution (300-run campaigns, the decode and TLB flush per instruction that touches the page).
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
