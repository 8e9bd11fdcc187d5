// SshRunner against a real OpenSSH server started for this test on
// 127.0.0.1 (needs the openssh-server package and libvirtd; the test runs as
// root, as CI does).
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { cpus, tmpdir, totalmem, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshRunner } from "../src/runner/ssh.js";
import { CommandError } from "../src/runner/types.js";
import { LibvirtDriver } from "../src/driver/libvirt/driver.js";
import { A, eventually, freePort, quietLogger, testSpec } from "./helpers.js";

const SSHD = "/usr/sbin/sshd";

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

describe("SshRunner against a real sshd", () => {
  let dir: string;
  let sshd: ChildProcess | undefined;
  let sshdLog = "";
  let port: number;
  let fingerprint: string;
  let runner: SshRunner;

  beforeAll(async () => {
    if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: install the openssh-server package`);
    dir = mkdtempSync(join(tmpdir(), "cirrus-sshd-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host_key")]);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "client_key")]);
    writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_key.pub")), { mode: 0o600 });
    fingerprint = execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", join(dir, "host_key.pub")], { encoding: "utf8" }).split(" ")[1]!;
    port = await freePort();
    writeFileSync(
      join(dir, "sshd_config"),
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(dir, "host_key")}`,
        `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        "MaxSessions 10",
        "",
      ].join("\n"),
    );
    // sshd's privilege-separation directory; the package's service unit normally creates it.
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    sshd = spawn(SSHD, ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
    sshd.stderr?.on("data", (d: Buffer) => (sshdLog += d.toString()));
    await eventually(() => canConnect(port), 10_000, `sshd on port ${port}`).catch((err: unknown) => {
      throw new Error(`${String(err)}; sshd said: ${sshdLog}`);
    });
    runner = new SshRunner({ host: "127.0.0.1", port, username: userInfo().username, privateKeyPath: join(dir, "client_key"), hostKeyFingerprint: fingerprint });
  }, 30_000);

  afterAll(async () => {
    await runner?.close();
    sshd?.kill("SIGTERM");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("runs argv with hostile arguments unchanged", async () => {
    const r = await runner.run(["printf", "%s", "a b'c$(x)`y`;|&\n-n"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString("utf8")).toBe("a b'c$(x)`y`;|&\n-n");
  });

  it("passes each argument as one word, leading dashes included", async () => {
    const args = ["--", "-rf", "", "two words", "*", "$HOME"];
    const r = await runner.run(["printf", "[%s]", ...args]);
    expect(r.stdout.toString("utf8")).toBe(args.map((a) => `[${a}]`).join(""));
  });

  it("feeds stdin (tee writes the domain XML this way)", async () => {
    const xml = "<domain type='qemu'><name>x</name></domain>\n";
    expect((await runner.run(["cat"], { input: xml })).stdout.toString("utf8")).toBe(xml);
  });

  it("returns binary stdout intact", async () => {
    const bytes = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x0d]);
    expect(Buffer.compare((await runner.run(["cat"], { input: bytes })).stdout, bytes)).toBe(0);
  });

  it("rejects a failing command with its code and stderr", async () => {
    const err = (await runner.run(["sh", "-c", "echo nope >&2; exit 7"]).catch((e: unknown) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.code).toBe(7);
    expect(err.stderr).toBe("nope\n");
    expect(await runner.run(["sh", "-c", "exit 7"], { okCodes: [7] })).toMatchObject({ code: 7 });
  });

  it("runs more concurrent commands than the server allows sessions", async () => {
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => runner.run(["sh", "-c", `sleep 0.2; echo ${i}`])));
    expect(results.map((r) => r.stdout.toString().trim())).toEqual(Array.from({ length: 25 }, (_, i) => String(i)));
  });

  it("times out a command that runs too long", async () => {
    const err = (await runner.run(["sleep", "5"], { timeoutMs: 300 }).catch((e: unknown) => e)) as CommandError;
    expect(err).toBeInstanceOf(CommandError);
    expect(err.timedOut).toBe(true);
  });

  it("refuses a host whose key does not match the expected fingerprint", async () => {
    const wrong = new SshRunner({ host: "127.0.0.1", port, username: userInfo().username, privateKeyPath: join(dir, "client_key"), hostKeyFingerprint: `SHA256:${"A".repeat(43)}` });
    try {
      await expect(wrong.run(["true"])).rejects.toThrow(/ssh connection to .* failed/);
    } finally {
      await wrong.close();
    }
  });

  it("drives the libvirt driver's host commands over SSH", async () => {
    const driver = new LibvirtDriver({ runner, uri: "qemu:///system", hypervisor: "qemu", domainPrefix: "cirrus-ssh-test-", instancesDir: join(dir, "instances"), imageDirs: ["/var/lib/cirrus/images"], privateDirs: [], log: quietLogger() });
    const cap = await driver.capacity();
    expect(cap.vcpus).toBe(cpus().length);
    expect(cap.memoryMib).toBe(Math.floor(totalmem() / 1024 / 1024));
    expect(cap.diskGib).toBeGreaterThan(0);
    expect(await driver.list()).toEqual([]);
    expect(await driver.listArtifacts()).toEqual([]);
    const err = await driver.createInstance({ ...testSpec(A), image: { ...testSpec(A).image!, rootPath: "/nonexistent/rootfs.qcow2" } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: "InvalidImage" });
  });

  it("reconnects after the server drops the connection", async () => {
    expect((await runner.run(["echo", "before"])).stdout.toString()).toBe("before\n");
    // Each SSH connection is served by a child of the sshd we started: end those children by pid.
    const children = execFileSync("ps", ["-o", "pid=", "--ppid", String(sshd!.pid)], { encoding: "utf8" }).split("\n").map((l) => l.trim()).filter(Boolean);
    expect(children.length).toBeGreaterThan(0);
    for (const pid of children) process.kill(Number(pid), "SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    expect((await runner.run(["echo", "after"])).stdout.toString()).toBe("after\n");
  });
});
