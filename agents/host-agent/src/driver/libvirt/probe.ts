// Decides between KVM and TCG by booting a guest under KVM and seeing whether
// it gets through the work a kernel does first. /dev/kvm existing proves
// nothing: under nested virtualisation KVM may run firmware yet never get a
// kernel booted (see kvm-probe.S).
import type { Logger } from "@cirrus/common";
import type { CommandRunner } from "../../runner/types.js";

/** kvm-probe.S assembled (238 bytes); test/probe.integration.test.ts re-assembles and compares. */
export const KVM_PROBE_IMAGE = Buffer.from(
  "ArCtGwAAAQD+T1HkAAAQAAAAEAAAAAAAAAAAACAAEAD6vwAABwAxwLkADAAA86vHBQAABwADEAcAxwUAEAcAAyAHAL8AIAcAuIMAAAC5AAIAAIkHBQAAIACDxwji9LgAAAcADyLYDyDgg8ggDyLguYAAAMAPMg0AAQAADzAPIMANAQAAgA8iwA8BFegAEADqlgAQAAgASMfHAAAgAEiJP0iBxwAQAABIgf8AACAEcu1Ix8EA4fUFSDHASAHISP/JdfiwEOb09Ov9Dx+AAAAAAAAAAAAAAAAAAAAAAACaIAAAAAAAAJIAABcA0AAQAA==",
  "base64",
);

/** QEMU's exit status when the probe guest writes 0x10 to isa-debug-exit. */
const PROBE_SUCCESS_STATUS = (0x10 << 1) | 1;
/** Healthy KVM needs well under a second; TCG-speed nested KVM never finishes. */
const PROBE_BUDGET_SECONDS = 8;

/**
 * "kvm" when a guest ran to completion under KVM within the budget on the
 * runner's host, else "qemu" (TCG). Never throws for a failed probe: a host
 * without working KVM is a normal answer. The temporary image is removed.
 */
export async function probeHypervisor(runner: CommandRunner, log?: Logger): Promise<"kvm" | "qemu"> {
  const tmp = (await runner.run(["mktemp", "/tmp/cirrus-kvm-probe.XXXXXXXX"])).stdout.toString("utf8").trim();
  try {
    await runner.run(["tee", "--", tmp], { input: KVM_PROBE_IMAGE });
    // timeout(1) on the host itself: over SSH, killing the channel would not
    // kill a QEMU that spins. --foreground: signal only QEMU, so timeout
    // itself survives to report an exit status.
    const { code, stderr } = await runner.run(
      [
        "timeout", "--foreground", "-s", "KILL", String(PROBE_BUDGET_SECONDS),
        "qemu-system-x86_64", "-machine", "accel=kvm", "-m", "128",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", tmp, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
      ],
      { okCodes: [...Array(256).keys()], timeoutMs: (PROBE_BUDGET_SECONDS + 10) * 1000 },
    );
    const kvm = code === PROBE_SUCCESS_STATUS;
    log?.info({ exitCode: code, stderr: stderr.trim().slice(0, 500) }, kvm ? "KVM probe guest completed: using KVM" : "KVM probe guest did not complete: using TCG");
    return kvm ? "kvm" : "qemu";
  } finally {
    await runner.run(["rm", "-f", "--", tmp]).catch(() => undefined);
  }
}
