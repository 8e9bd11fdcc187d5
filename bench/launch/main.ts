// bench/launch: how long RunInstances takes to reach `running` (domain
// started) through the whole control plane, against the physical limit measured
// in the same run: `qemu-img create` of the overlay plus `virsh create` of the
// very same domain XML, done by hand. Prints both and their ratio.
//
// Fairness, as in bench/launch/agent.ts: round 0 is a warm-up for both sides
// and not counted; the side that goes first alternates; each side's domain
// is gone before the other side runs. The control plane is polled every
// --poll-ms (default 10 ms), which adds up to that much to its side.
//
// Usage: npm run bench:launch -- [rounds] [--poll-ms N]   (default 10 rounds; run as root with the host prepared)
import { randomUUID } from "node:crypto";
import { mkdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Stack, TEST_AMI_DIR, waitUntil } from "@cirrus/test";
import { option, rawLaunch, report, rewriteXml, roundsOf, virsh, runRounds } from "../src/stats.js";

const argv = process.argv.slice(2);
const ROUNDS = roundsOf(argv, 10);
const POLL_MS = Number(option(argv, "poll-ms", "10"));

async function main(): Promise<void> {
  const stack = new Stack();
  const rawDir = join(stack.workDir, "raw");
  const cp: number[] = [];
  const raw: number[] = [];
  let template: { xml: string; name: string; uuid: string; overlay: string; consoleLog: string; tap?: string; mac?: string } | undefined;
  try {
    await stack.start();
    await stack.addAgent({ name: "bench", driver: "libvirt", capacity: { vcpus: 64, memoryMib: 65536, diskGib: 500 } });
    const imageId = await stack.registerTestImage();
    mkdirSync(rawDir, { recursive: true });
    const root = join(realpathSync(TEST_AMI_DIR), "rootfs.qcow2");

    // Control plane: RunInstances → running, polled every POLL_MS.
    const launchControlPlane = async (): Promise<number> => {
      const t0 = performance.now();
      const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
      const id: string = res.Instances[0].InstanceId;
      await waitUntil("running", async () => (await stack.instance(id)).State?.Name === "running", 120_000, POLL_MS);
      const ms = performance.now() - t0;
      if (!template) {
        const name = `${stack.domainPrefix}${id}`;
        const xml = await virsh("dumpxml", "--inactive", name);
        const source = (tag: string, attr: string) => new RegExp(`<${tag}[^>]*>\\s*(?:<[^>]*>\\s*)*?<source ${attr}='([^']+)'`).exec(xml)?.[1];
        const nic = /<interface type='bridge'>[^]*?<\/interface>/.exec(xml)?.[0];
        template = {
          xml, name,
          uuid: /<uuid>([^<]+)<\/uuid>/.exec(xml)![1]!,
          overlay: source("disk", "file")!,
          consoleLog: source("serial", "path")!,
          tap: nic && /<target dev='([^']+)'/.exec(nic)?.[1],
          mac: nic && /<mac address='([^']+)'/.exec(nic)?.[1],
        };
      }
      await stack.call("terminateInstances", { InstanceIds: [id] });
      await stack.waitForState([id], "terminated");
      return ms;
    };

    // Raw: the same domain by hand: renamed, its own disk and log, and (with a NIC) its own tap and MAC on the same bridge.
    const launchRaw = async (round: number): Promise<number> => {
      if (!template) throw new Error("no domain XML to copy yet");
      const name = `${stack.domainPrefix}raw${round}`;
      const disk = join(rawDir, `raw${round}.qcow2`);
      const log = join(rawDir, `raw${round}.log`);
      const xmlFile = join(rawDir, `raw${round}.xml`);
      const replacements: Array<[string, string]> = [[template.overlay, disk], [template.consoleLog, log], [`<name>${template.name}</name>`, `<name>${name}</name>`], [template.uuid, randomUUID()]];
      if (template.tap) replacements.push([`'${template.tap}'`, `'crraw${round.toString(16).padStart(4, "0")}'`]);
      if (template.mac) replacements.push([template.mac, `52:54:00:fe:${(round >> 8).toString(16).padStart(2, "0")}:${(round & 0xff).toString(16).padStart(2, "0")}`]);
      writeFileSync(xmlFile, rewriteXml(template.xml, replacements));
      const ms = await rawLaunch(root, disk, 1, xmlFile);
      await virsh("destroy", name);
      rmSync(disk, { force: true });
      rmSync(log, { force: true });
      return ms;
    };

    const [cpSide, rawSide] = await runRounds(ROUNDS, [
      { name: "control plane", run: () => launchControlPlane() },
      { name: "raw", run: (round: number) => launchRaw(round) },
    ]);
    cp.push(...cpSide!.ms);
    raw.push(...rawSide!.ms);
  } finally {
    await stack.stop();
  }
  console.log(report(`RunInstances to running (1 × t2.nano, test AMI), ${ROUNDS} rounds after a warm-up, order alternating, polled every ${POLL_MS} ms:`, [
    { name: "control plane", ms: cp },
    { name: "raw qemu-img create + virsh create", ms: raw },
  ], `npm run bench:launch -- ${ROUNDS}${POLL_MS !== 10 ? ` --poll-ms ${POLL_MS}` : ""}`));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
