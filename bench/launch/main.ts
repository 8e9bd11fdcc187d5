// bench/launch: how long RunInstances takes to reach `running` (domain
// started) through the whole control plane, against the physical limit measured
// in the same run: `qemu-img create` of the overlay plus `virsh create` of the
// very same domain XML, done by hand. Prints both and their ratio.
//
// Usage: npm run bench:launch -- [rounds]   (default 5; run as root with the host prepared)
import { execFileSync } from "node:child_process";
import { mkdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { XMLBuilder, XMLParser } from "fast-xml-parser";
import { Stack, TEST_AMI_DIR, waitUntil } from "@cirrus/test";

const rounds = Number(process.argv[2] ?? 5);
const virsh = (...args: string[]) => execFileSync("virsh", ["-c", "qemu:///system", ...args], { encoding: "utf8" });

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The control plane's domain XML, renamed and re-pathed for a raw launch. */
function rawDomainXml(controlPlaneXml: string, name: string, disk: string, consoleLog: string): string {
  const opts = { ignoreAttributes: false, attributeNamePrefix: "@_", preserveOrder: false };
  const dom = new XMLParser(opts).parse(controlPlaneXml);
  const d = dom.domain;
  d.name = name;
  delete d.uuid;
  const disks = Array.isArray(d.devices.disk) ? d.devices.disk : [d.devices.disk];
  disks[0].source["@_file"] = disk;
  for (const key of ["serial", "console"]) {
    const devs = Array.isArray(d.devices[key]) ? d.devices[key] : [d.devices[key]];
    for (const dev of devs) if (dev?.source) dev.source["@_path"] = consoleLog;
  }
  return new XMLBuilder(opts).build(dom);
}

async function main(): Promise<void> {
  const stack = new Stack();
  const rawDir = join(stack.workDir, "raw");
  const cp: number[] = [];
  const raw: number[] = [];
  try {
    await stack.start();
    await stack.addAgent({ name: "bench", driver: "libvirt", capacity: { vcpus: 64, memoryMib: 65536, diskGib: 500 } });
    const imageId = await stack.registerTestImage();
    mkdirSync(rawDir, { recursive: true });
    const manifestRoot = join(realpathSync(TEST_AMI_DIR), "rootfs.qcow2");
    for (let i = 0; i < rounds; i++) {
      // Control plane: RunInstances → running, polled every 50 ms.
      const t0 = performance.now();
      const res = await stack.call("runInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
      const id: string = res.Instances[0].InstanceId;
      await waitUntil("running", async () => (await stack.instance(id)).State?.Name === "running", 120_000, 50);
      cp.push(performance.now() - t0);
      const xml = virsh("dumpxml", `${stack.domainPrefix}${id}`);
      await stack.call("terminateInstances", { InstanceIds: [id] });
      await stack.waitForState([id], "terminated");

      // Raw: the same domain by hand.
      const name = `${stack.domainPrefix}raw${i}`;
      const disk = join(rawDir, `raw${i}.qcow2`);
      const xmlFile = join(rawDir, `raw${i}.xml`);
      writeFileSync(xmlFile, rawDomainXml(xml, name, disk, join(rawDir, `raw${i}.log`)));
      const t1 = performance.now();
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", manifestRoot, disk, "1G"]);
      virsh("create", xmlFile);
      raw.push(performance.now() - t1);
      virsh("destroy", name);
      rmSync(disk, { force: true });
      console.log(`round ${i + 1}: control plane ${cp[i]!.toFixed(0)} ms, raw ${raw[i]!.toFixed(0)} ms`);
    }
  } finally {
    await stack.stop();
  }
  const mc = median(cp);
  const mr = median(raw);
  console.log(`\nlaunch to running, median of ${rounds}: control plane ${mc.toFixed(0)} ms, raw qemu-img create + virsh create ${mr.toFixed(0)} ms`);
  console.log(`ratio control plane / raw: ${(mc / mr).toFixed(2)}x`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
