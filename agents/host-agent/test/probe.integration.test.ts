import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KVM_PROBE_IMAGE, probeHypervisor } from "../src/driver/libvirt/probe.js";
import { LocalRunner } from "../src/runner/local.js";

const SOURCE = new URL("../src/driver/libvirt/kvm-probe.S", import.meta.url).pathname;

describe("KVM probe", () => {
  it("embeds exactly the assembled kvm-probe.S (needs binutils)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cirrus-probe-"));
    try {
      execFileSync("as", ["--64", "-o", join(dir, "p.o"), SOURCE]);
      execFileSync("ld", ["-m", "elf_x86_64", "-Ttext=0x100000", "--oformat", "binary", "-e", "_start", "-o", join(dir, "p.bin"), join(dir, "p.o")]);
      expect(readFileSync(join(dir, "p.bin")).toString("base64")).toBe(KVM_PROBE_IMAGE.toString("base64"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("is a guest that runs to completion and exits QEMU with status 33 (checked under TCG)", () => {
    const dir = mkdtempSync(join(tmpdir(), "cirrus-probe-"));
    try {
      writeFileSync(join(dir, "probe.bin"), KVM_PROBE_IMAGE);
      let status = 0;
      try {
        execFileSync("timeout", ["-s", "KILL", "30", "qemu-system-x86_64", "-machine", "accel=tcg", "-m", "128", "-nodefaults", "-no-user-config", "-display", "none", "-kernel", join(dir, "probe.bin"), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"], { stdio: "ignore" });
      } catch (err) {
        status = (err as { status: number }).status;
      }
      expect(status).toBe(33);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);

  it("answers kvm or qemu on this host and cleans up its temp file", async () => {
    const before = execFileSync("sh", ["-c", "ls /tmp | grep -c '^cirrus-kvm-probe' || true"], { encoding: "utf8" }).trim();
    const kind = await probeHypervisor(new LocalRunner());
    expect(["kvm", "qemu"]).toContain(kind);
    const after = execFileSync("sh", ["-c", "ls /tmp | grep -c '^cirrus-kvm-probe' || true"], { encoding: "utf8" }).trim();
    expect(after).toBe(before);
  }, 30_000);
});
