// The SNP firmware's early checks in whole boots, each with the attack that reaches its fatal
// path: CPUID's #VC 0x72 answered as Linux's do_vc_no_ghcb does (issue 9 row 15), and the VMPL0
// check of Linux's enforce_vmpl0() (row 14).
import { describe, expect, it } from 'vitest';
import { parseBootOptions } from '../../../src/cli/boot-options.js';
import { bootGuest } from '../../../src/boot/boot-guest.js';
import { SNP_C_BIT, type VmmOverride } from '../../../src/boot/platforms.js';
import { SNP_CPUID_PAGE_GPA } from '../../../src/boot/layout.js';
import { decodeCpuidPage, encodeCpuidPage } from '../../../src/platform/snp/cpuid-page.js';
import { decodeGhcbMsr, ghcbMsr, GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN } from '../../../src/platform/snp/ghcb-msr.js';
import { HonestSnpVmm, honestCpuidPage } from '../../../src/vmm/snp/honest-vmm.js';
import { program, runAttack } from '../../helpers/attack-programs.js';

const ZERO_PAGE = { type: 'ZERO' as const, bytes: new Uint8Array(4096) };

function boot(vmm: VmmOverride = {}) {
  const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '128M' }), { vmm, keepTrace: true });
  run.platform.machine.close();
  return run;
}

describe('SNP boot: CPUID through #VC 0x72', () => {
  it('once its #VC handler exists, the honest boot answers every CPUID from the CPUID page', () => {
    // (Before that, the 32-bit entry code asks the VMM for the C-bit through the MSR protocol,
    // as Linux's startup32_vc_handler does.)
    const run = boot();
    expect(run.result.outcome).toBe('done');
    const events = run.trace.events;
    const firstVc = events.findIndex((e) => e.type === 'inject-vc' && e.errorCode === 0x72n);
    expect(firstVc).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'inject-vc' && e.errorCode === 0x72n).length).toBeGreaterThanOrEqual(2); // 0x21 (TDX probe), 0x8000001F
    expect(events.slice(firstVc).filter((e) => e.type === 'ghcb-msr' && e.request === 'cpuid')).toHaveLength(0);
  });

  it('a CPUID page with what the firmware leaves unchecked (vendor, EBX[11:6], a hypervisor leaf) is launched as the VMM wrote it, and the guest boots from it', () => {
    // amd/AMD-ASPFW cpuid_lookup.c: Fn0000_0000 EBX/ECX/EDX and Fn8000_001F EBX[11:6] are
    // unchecked; Fn4000_xxxx is outside the checked ranges.
    const entries = decodeCpuidPage(honestCpuidPage(SNP_C_BIT)).entries.map((e) => {
      if (e.eaxIn === 0) return { ...e, ebx: 0x756e6547, ecx: 0x6c65746e, edx: 0x49656e69 };  // "GenuineIntel"
      if (e.eaxIn === 0x8000001f) return { ...e, ebx: (e.ebx & ~0xfc0) | (5 << 6) };
      return e;
    });
    entries.push({ eaxIn: 0x40000000, ecxIn: 0, xcr0In: 0n, xssIn: 0n, eax: 0x40000001, ebx: 0x4b4d564b, ecx: 0x564b4d56, edx: 0x4d });
    const page = encodeCpuidPage(entries);
    const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '128M' }), { vmm: { snpCpuidPage: { type: 'CPUID', bytes: page } }, keepTrace: true });
    expect(run.result.outcome, run.result.outcomeReason).toBe('done');
    expect(run.trace.ofType('launch-cpuid-rejected')).toHaveLength(0);
    expect(decodeCpuidPage(run.platform.machine.memory.read(SNP_CPUID_PAGE_GPA, 4096)).entries).toEqual(decodeCpuidPage(page).entries);
    run.platform.machine.close();
  });

  it("the guest matches ECX_IN only for indexed leaves: a firmware-valid all-zero 0x8000001F sub-leaf listed first answers CPUID 0x8000001F, SEV looks hidden, the guest terminates", () => {
    // Linux snp_cpuid_get_validated_func takes the first entry whose EAX_IN matches and checks
    // ECX_IN only when cpuid_function_is_indexed (0x8000001F is not). The firmware matches
    // (EAX_IN, ECX_IN) exactly, so it lists no (0x8000001F, 1) and accepts it only all zero
    // (AMD-ASPFW sanitize_cpuid_entry). The zero EAX then fails do_vc_no_ghcb's SEV-bit check.
    const entries = decodeCpuidPage(honestCpuidPage(SNP_C_BIT)).entries;
    const at = entries.findIndex((e) => e.eaxIn === 0x8000001f);
    entries.splice(at, 0, { eaxIn: 0x8000001f, ecxIn: 1, xcr0In: 0n, xssIn: 0n, eax: 0, ebx: 0, ecx: 0, edx: 0 });
    const run = bootGuest(parseBootOptions({ platform: 'snp', memory: '128M' }), { vmm: { snpCpuidPage: { type: 'CPUID', bytes: encodeCpuidPage(entries) } }, keepTrace: true });
    run.platform.machine.close();
    expect(run.trace.ofType('launch-cpuid-rejected')).toHaveLength(0);
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 0, code 0' });
  });

  // Linux setup_cpuid_table terminates an SNP guest (SEV_TERM_SET_LINUX, GHCB_TERM_CPUID) when
  // the table is missing or its COUNT is 0 or above 64: asking the hypervisor for CPUID instead
  // would trust the attacker. The firmware accepts COUNT 0 (AMD-ASPFW sev_mcmd.c) and measures a
  // CPUID page by its type only, so only the guest can notice an empty table.
  it('an empty CPUID table, launched as page type CPUID, gives the honest launch digest; the guest terminates (GHCB_TERM_CPUID) without asking the VMM', () => {
    const honest = boot();
    const run = boot({ snpCpuidPage: { type: 'CPUID', bytes: encodeCpuidPage([]) } });
    expect(run.trace.ofType('launch-cpuid-rejected')).toHaveLength(0);
    const digest = (r: typeof run) => r.trace.ofType('launch-finish')[0]!.digest;
    expect(digest(run)).toBe(digest(honest));
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 1, code 4' });
    // Only the entry code's request for the C-bit, before any #VC handler exists.
    expect(run.trace.events.filter((e) => e.type === 'ghcb-msr' && e.request === 'cpuid')).toHaveLength(1);
  });

  it('a ZERO page where the CPUID page should be reads as an empty table: the guest terminates (GHCB_TERM_CPUID)', () => {
    const run = boot({ snpCpuidPage: ZERO_PAGE });
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 1, code 4' });
    expect(run.trace.events.filter((e) => e.type === 'ghcb-msr' && e.request === 'cpuid')).toHaveLength(1);
  });

  it('a table the firmware accepts that hides SEV (CPUID 0x8000001F EAX bit 1 clear) terminates the guest (set 0, code 0)', () => {
    // cpuid_lookup.c: Fn8000_001F EAX is a 'mask' rule, so clearing a feature passes the firmware;
    // Linux do_vc_no_ghcb refuses a 0x8000001F without the SEV bit.
    const entries = decodeCpuidPage(honestCpuidPage(SNP_C_BIT)).entries.map((e) => (e.eaxIn === 0x8000001f ? { ...e, eax: e.eax & ~2 } : e));
    const run = boot({ snpCpuidPage: { type: 'CPUID', bytes: encodeCpuidPage(entries) } });
    expect(run.trace.ofType('launch-cpuid-rejected')).toHaveLength(0);
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 0, code 0' });
  });

  it.each([20, 52])('a table with C-bit %i (slipped in as a NORMAL page: the firmware would correct it) terminates the guest (set 0, code 2)', (cBit) => {
    // The entry code asked the VMM for the C-bit (answered honestly); platform.c
    // mv_platform_detect then reads CPUID 0x8000001F from the table and refuses a C-bit
    // outside [32, 51] (GHCB_SNP_UNSUPPORTED).
    const entries = decodeCpuidPage(honestCpuidPage(SNP_C_BIT)).entries.map((e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0x3f) | cBit } : e));
    const run = boot({ snpCpuidPage: { type: 'NORMAL', bytes: encodeCpuidPage(entries) } });
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 0, code 2' });
  });

  it('a CPUID table of more than 64 entries (slipped in as a NORMAL page) terminates the guest (GHCB_TERM_CPUID)', () => {
    const page = encodeCpuidPage([]);
    new DataView(page.buffer, page.byteOffset).setUint32(0, 65, true);
    const run = boot({ snpCpuidPage: { type: 'NORMAL', bytes: page } });
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 1, code 4' });
  });

  it('a #VC 0x72 injected where there is no CPUID (WeSee) terminates the guest', () => {
    const run = boot({
      snp: (echo) => {
        const vmm = new HonestSnpVmm({ echo });
        const honest = vmm.onVmgexit.bind(vmm);
        vmm.onVmgexit = (host, exit) => {
          const result = honest(host, exit);
          // At the GHCB registration, when the firmware's #VC handler is installed.
          if (decodeGhcbMsr(exit.ghcbMsr).kind === 'register-ghcb') host.inject(29, 0x72n);
          return result;
        };
        return vmm;
      },
    });
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 0, code 0' });
  });
});

// Issue 9 row 14 in whole boots: the firmware checks it runs at VMPL0 with RMPADJUST, as Linux's
// enforce_vmpl0() does.
describe('SNP boot: enforce_vmpl0', () => {
  it('at VMPL0 the RMPADJUST of VMPL1 succeeds and the boot goes on', () => {
    const run = boot();
    expect(run.result.outcome).toBe('done');
    expect(run.trace.events.find((e) => e.type === 'rmpadjust')).toMatchObject({ targetVmpl: 1, perms: 0, rc: 0 });
  });

  it('launched to run at VMPL1 (its pages granted through VMPL1_PERMS), the firmware terminates: GHCB_TERM_NOT_VMPL0', () => {
    const run = boot({ snpVmpl: 1 });
    expect(run.result).toMatchObject({ outcome: 'guest-fatal', outcomeReason: 'GHCB termination request: reason set 1, code 3' });
    expect(run.trace.events.find((e) => e.type === 'rmpadjust')).toMatchObject({ targetVmpl: 1, rc: 2 });
  });
});

// Linux checks the C-bit it was told before it runs on page tables built with it
// (arch/x86/kernel/sev_verify_cbit.S sev_verify_cbit; arch/x86/boot/compressed/mem_encrypt.S
// startup32_check_sev_cbit): a random value written through the current tables must read back
// the same through the new ones, else it halts. That catches SEV and SEV-ES, whose page walks
// follow the C-bits of the entries, so a lying position maps the tables and data shared. On SNP
// every page-table walk is a private access (APM Vol. 2 §15.36.10): tables built with a lying
// position make the walk read GPA (table | 1 << lie) as private, which is outside RAM or never
// validated, so not one instruction runs on them and the stubs carry no such check. These pin
// that, for a lie in the range the stubs accept; the CPUID page's own C-bit is an exact rule of
// the firmware's check (AMD-ASPFW cpuid_lookup.c), refused at launch.
describe('SNP boot: a C-bit position lie inside [32, 51] never runs the guest on it', () => {
  /** The GPA in a 'fault' outcome's "access to 0x… outside guest RAM" or a #VC delivery failure's "validated read gpa 0x…". */
  const faultGpa = (reason: string | undefined) => BigInt(/(?:access to|gpa) (0x[0-9a-f]+)/.exec(reason ?? '')?.[1] ?? '-1');

  it.each([47, 50])('the entry code told C-bit %i through the MSR protocol: its first page walk reads outside RAM (fault), nothing printed', (lie) => {
    const attack = program('snp', [{ at: 'call', point: 'snp.msr.cpuid', occurrence: 0, answer: { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.cpuidResp(lie, 1) } }]);
    const { execution, outcome } = runAttack(attack);
    expect(outcome.outcome, outcome.reason).toBe('fault');
    const gpa = faultGpa(outcome.reason);
    expect(gpa >> BigInt(lie)).toBe(1n); // the lying bit, taken as an address bit
    expect(gpa & ((1n << BigInt(lie)) - 1n)).toBeLessThan(4n << 20n); // one of the entry map's tables in [0, 4 MiB)
    expect(execution.judgement.verdict).toBe('benign');
  });

  it('with 8 GiB, C-bit 32 names RAM: the walk reads a page above 4 GiB no one validated (#VC 0x404), which cannot be delivered yet: triple fault', () => {
    const attack = program('snp', [{ at: 'call', point: 'snp.msr.cpuid', occurrence: 0, answer: { kind: 'vmgexit', effect: 'none', msr: ghcbMsr.cpuidResp(32, 1) } }]);
    const { outcome } = runAttack(attack, { memory: '8G' });
    expect(outcome.outcome, outcome.reason).toBe('terminated');
    expect(outcome.reason).toMatch(/cannot deliver vector 29/);
    const gpa = faultGpa(outcome.reason);
    expect(gpa >> 32n).toBe(1n);
  });

  it('the CPUID page and SEV_INFO agreeing on C-bit 50 (the page slipped in as NORMAL): the firmware\'s own tables fault at the CR3 switch', () => {
    const entries = decodeCpuidPage(honestCpuidPage(SNP_C_BIT)).entries.map((e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0x3f) | 50 } : e));
    const run = boot({
      snpCpuidPage: { type: 'NORMAL', bytes: encodeCpuidPage(entries) },
      snp: (echo) => {
        const vmm = new HonestSnpVmm({ echo });
        const honest = vmm.onVmgexit.bind(vmm);
        vmm.onVmgexit = (host, exit) => {
          const result = honest(host, exit);
          if (decodeGhcbMsr(exit.ghcbMsr).kind === 'sev-info') host.ghcbMsr = ghcbMsr.sevInfoResp(GHCB_PROTOCOL_MAX, GHCB_PROTOCOL_MIN, 50);
          return result;
        };
        return vmm;
      },
    });
    expect(run.result.outcome, run.result.outcomeReason).toBe('fault');
    expect(faultGpa(run.result.outcomeReason) >> 50n).toBe(1n);
  });

  it('the same table launched as page type CPUID: the firmware refuses it (INVALID_PARAM) and the VMM cannot launch', () => {
    const entries = decodeCpuidPage(honestCpuidPage(SNP_C_BIT)).entries.map((e) => (e.eaxIn === 0x8000001f ? { ...e, ebx: (e.ebx & ~0x3f) | 50 } : e));
    expect(() => boot({ snpCpuidPage: { type: 'CPUID', bytes: encodeCpuidPage(entries) } })).toThrow(/SNP_LAUNCH_UPDATE 0x[0-9a-f]+ failed: INVALID_PARAM/);
  });
});
