// The ATTESTATION_REPORT the SEV-SNP firmware returns for MSG_REPORT_REQ (SEV-SNP Firmware ABI
// §7.3, "ATTESTATION_REPORT Structure"), laid out and filled as AMD's own firmware does it
// (amd/AMD-ASPFW: sev_rmp.h snp_attestation_report_t, sev_mcmd.c snp_mcmd_guest_request).
//
// The modelled platform was initialised with MASK_CHIP_ID and MASK_CHIP_KEY (SNP_INIT_EX): a model
// holds no AMD-rooted VCEK, so the firmware signs nothing (SIGNING_KEY = NONE, the signature
// zero, as the real firmware leaves it when the chip key is masked and no VLEK is installed) and
// reports no chip ID. The TCB and firmware version are this model's constants, not a real part's.
import { digestOf } from '../../shared/digest.js';
import { DIGEST_BYTES } from './launch.js';

/** Byte offsets in the report (snp_attestation_report_t). */
export const REPORT = {
  VERSION: 0x00, GUEST_SVN: 0x04, POLICY: 0x08, FAMILY_ID: 0x10, IMAGE_ID: 0x20, VMPL: 0x30, SIGNATURE_ALGO: 0x34,
  CURRENT_TCB: 0x38, PLATFORM_INFO: 0x40, FLAGS: 0x48, REPORT_DATA: 0x50, MEASUREMENT: 0x90, HOST_DATA: 0xc0,
  ID_KEY_DIGEST: 0xe0, AUTHOR_KEY_DIGEST: 0x110, REPORT_ID: 0x140, REPORT_ID_MA: 0x160, REPORTED_TCB: 0x180,
  CHIP_ID: 0x1a0, COMMITTED_TCB: 0x1e0, CURRENT_BUILD: 0x1e8, COMMITTED_BUILD: 0x1ec, LAUNCH_TCB: 0x1f0,
  SIGNATURE: 0x2a0, BYTES: 0x4a0,
} as const;

/** SNP_GMSG_MAX_REPORT_VERSION of the firmware this follows. */
export const REPORT_VERSION = 2;
/** SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384: what the firmware writes whether or not it signs. */
export const SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1;
/** FLAGS bits: AUTHOR_KEY_EN (0), MASK_CHIP_KEY (1), SIGNING_KEY (4:2; 7 = none). */
export const REPORT_FLAGS = { MASK_CHIP_KEY: 1 << 1, SIGNING_KEY_SHIFT: 2, SIGNING_KEY_NONE: 7 } as const;
/**
 * The guest policy: QEMU's default for sev-snp-guest (0x30000: SMT allowed, bit 17 reserved-one).
 * The model has no SNP_LAUNCH_START, so no other policy can be asked for.
 */
export const GUEST_POLICY = 0x30000n;
/** This model's TCB_VERSION (one value for current, reported, committed and launch TCB) and firmware version. */
/** Little-endian bytes: boot loader 7, TEE 0, reserved, SNP 0x16, microcode 0x48 (snp_tcb_version_t, Genoa layout). */
export const MODEL_TCB_VERSION = 0x4816000000000007n;
export const MODEL_FIRMWARE = { build: 0, apiMinor: 55, apiMajor: 1 } as const;

/** What the report says of one guest: from its launch (measurement) and its request. */
export interface ReportInputs {
  /** The launch digest (SNP_LAUNCH_FINISH). */
  measurement: Uint8Array;
  /** Names the VM: REPORT_ID is drawn at SNP_LAUNCH_START from the firmware's RNG, here from it. */
  vmIdentity: string;
  /** The request's REPORT_DATA (64 bytes) and VMPL. */
  reportData: Uint8Array;
  vmpl: number;
}

/** The report the firmware builds, unsigned (see above). */
export function attestationReport(inputs: ReportInputs): Uint8Array {
  if (inputs.measurement.length !== DIGEST_BYTES) throw new RangeError('a launch digest is 48 bytes');
  const r = new Uint8Array(REPORT.BYTES);
  const v = new DataView(r.buffer);
  v.setUint32(REPORT.VERSION, REPORT_VERSION, true);
  // GUEST_SVN, FAMILY_ID, IMAGE_ID, ID_KEY_DIGEST, AUTHOR_KEY_DIGEST and HOST_DATA come from an ID
  // block and SNP_LAUNCH_FINISH's HOST_DATA, which this model's launch never gives: zero.
  v.setBigUint64(REPORT.POLICY, GUEST_POLICY, true);
  v.setUint32(REPORT.VMPL, inputs.vmpl >>> 0, true);
  v.setUint32(REPORT.SIGNATURE_ALGO, SIGNATURE_ALGO_ECDSA_P384_SHA384, true);
  for (const at of [REPORT.CURRENT_TCB, REPORT.REPORTED_TCB, REPORT.COMMITTED_TCB, REPORT.LAUNCH_TCB]) v.setBigUint64(at, MODEL_TCB_VERSION, true);
  // PLATFORM_INFO: SMT_EN and TSME_EN clear.
  v.setUint32(REPORT.FLAGS, REPORT_FLAGS.MASK_CHIP_KEY | (REPORT_FLAGS.SIGNING_KEY_NONE << REPORT_FLAGS.SIGNING_KEY_SHIFT), true);
  r.set(inputs.reportData.subarray(0, 64), REPORT.REPORT_DATA);
  r.set(inputs.measurement, REPORT.MEASUREMENT);
  r.set(digestOf('sha256', Buffer.from('minivisor SEV-SNP REPORT_ID\0'), Buffer.from(inputs.vmIdentity)), REPORT.REPORT_ID);
  // No migration agent: REPORT_ID_MA is PADDR_INVALID's bytes (snp_mcmd_launch_start).
  r.fill(0xff, REPORT.REPORT_ID_MA, REPORT.REPORT_ID_MA + 32);
  for (const at of [REPORT.CURRENT_BUILD, REPORT.COMMITTED_BUILD]) {
    r[at] = MODEL_FIRMWARE.build;
    r[at + 1] = MODEL_FIRMWARE.apiMinor;
    r[at + 2] = MODEL_FIRMWARE.apiMajor;
  }
  return r;
}
