// Instances with EBS volumes from RunInstances' block device mappings, with
// real guests: the guest boots with them (by id), their data survives a
// stop and start, DeleteOnTermination true and false are honoured at
// terminate, and a guest that powers itself off is stopped or terminated as
// its InstanceInitiatedShutdownBehavior says.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack, waitUntil } from "../src/stack.js";

const stack = new Stack();
let imageId = "";

// Every second, each virtio disk but the root is reported once per boot with
// its serial and first line; a blank one gets a marker naming its serial.
const WATCHER = `#!/bin/sh
seen=""
while true; do
  for d in /sys/block/vd[b-z]; do
    [ -e "$d" ] || continue
    n=\${d##*/}; s=$(cat $d/serial 2>/dev/null)
    case " $seen " in *" $n:$s "*) continue;; esac
    seen="$seen $n:$s"
    head=$(dd if=/dev/$n bs=512 count=1 2>/dev/null | tr -d '\\000' | head -n 1)
    echo "CIRRUS-DISK boot=$(cat /var/lib/cirrus/boot-count 2>/dev/null) dev=$n serial=$s head=$head"
    if [ -z "$head" ]; then printf 'MARKER-%s\\n' "$s" | dd of=/dev/$n conv=fsync 2>/dev/null && echo "CIRRUS-DISK-WRITTEN dev=$n serial=$s"; fi
  done
  sleep 1
done
`;
const POWEROFF = "#!/bin/sh\nsleep 3\necho CIRRUS-POWEROFF\npoweroff -f\n";
const b64 = (s: string) => Buffer.from(s).toString("base64");
const serialOf = (volumeId: string) => volumeId.replace("-", "");

async function consoleHas(instanceId: string, pattern: RegExp, timeoutMs = 120_000): Promise<void> {
  await waitUntil(`${pattern} on the console of ${instanceId}`, async () => pattern.test(await stack.consoleText(instanceId)), timeoutMs, 1000);
}

beforeAll(async () => {
  await stack.start();
  // Room for an m5d.large (8 GiB, 75 GiB of instance store: sparse files, QEMU's memory taken only as the guest touches it).
  await stack.addAgent({ name: "ebs", driver: "libvirt", capacity: { vcpus: 4, memoryMib: 16384, diskGib: 200 } });
  imageId = await stack.registerTestImage();
}, 300_000);
afterAll(() => stack.stop());

describe("instances with EBS volumes", () => {
  it("boots with its mapped volumes, keeps their data over stop and start, and honours DeleteOnTermination at terminate", async () => {
    const res = await stack.call("runInstances", {
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, UserData: b64(WATCHER),
      BlockDeviceMappings: [
        { DeviceName: "/dev/sdf", Ebs: { VolumeSize: 1, VolumeType: "gp3" } },
        { DeviceName: "/dev/sdg", Ebs: { VolumeSize: 2, DeleteOnTermination: false } },
      ],
    });
    const id = res.Instances[0].InstanceId as string;
    await stack.waitForState([id], "running", 180_000);
    const mapped = (await stack.instance(id)).BlockDeviceMappings as { DeviceName: string; Ebs: { VolumeId: string; Status: string; DeleteOnTermination: boolean } }[];
    expect(mapped.map((m) => [m.DeviceName, m.Ebs.Status, m.Ebs.DeleteOnTermination])).toEqual([["/dev/sdf", "attached", true], ["/dev/sdg", "attached", false]]);
    const [dropped, kept] = mapped.map((m) => m.Ebs.VolumeId) as [string, string];
    for (const v of [dropped, kept]) await consoleHas(id, new RegExp(`CIRRUS-DISK boot=1 dev=vd[b-z] serial=${serialOf(v)} head=\\r?\\n`));
    const volumes = (await stack.call("describeVolumes", { VolumeIds: [dropped, kept] })).Volumes;
    expect(volumes.map((v: { State: string; Size: number }) => [v.State, v.Size])).toEqual([["in-use", 1], ["in-use", 2]]);

    await stack.call("stopInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "stopped");
    await stack.call("startInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "running");
    for (const v of [dropped, kept]) await consoleHas(id, new RegExp(`CIRRUS-DISK boot=2 dev=vd[b-z] serial=${serialOf(v)} head=MARKER-${serialOf(v)}`));

    await stack.call("terminateInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "terminated");
    await waitUntil(`${dropped} deleted`, async () => stack.call("describeVolumes", { VolumeIds: [dropped] }).then(() => false, (e: { details?: string }) => /InvalidVolume\.NotFound/.test(e.details ?? "")), 60_000, 500);
    const [left] = (await stack.call("describeVolumes", { VolumeIds: [kept] })).Volumes;
    expect(left).toMatchObject({ State: "available", Attachments: [] });
  });

  it("an m5d's instance store is a blank scratch disk at every start: its data is gone after a stop", async () => {
    const id = (await stack.call("runInstances", { ImageId: imageId, InstanceType: "m5d.large", MinCount: 1, MaxCount: 1, UserData: b64(WATCHER) })).Instances[0].InstanceId as string;
    await stack.waitForState([id], "running", 180_000);
    await consoleHas(id, /CIRRUS-DISK boot=1 dev=vd[b-z] serial=ephemeral0 head=\r?\n/);
    await consoleHas(id, /CIRRUS-DISK-WRITTEN dev=vd[b-z] serial=ephemeral0/);
    await stack.call("stopInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "stopped");
    await stack.call("startInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "running");
    await consoleHas(id, /CIRRUS-DISK boot=2 dev=vd[b-z] serial=ephemeral0 head=\r?\n/);
    expect(await stack.consoleText(id)).not.toMatch(/serial=ephemeral0 head=MARKER/);
    expect((await stack.instance(id)).BlockDeviceMappings).toEqual([]);
    await stack.call("terminateInstances", { InstanceIds: [id] });
    await stack.waitForState([id], "terminated");
  });

  it("a guest that powers itself off is stopped or terminated as its shutdown behaviour says", async () => {
    const launch = async (behavior: string) => (await stack.call("runInstances", {
      ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1, UserData: b64(POWEROFF), InstanceInitiatedShutdownBehavior: behavior,
    })).Instances[0].InstanceId as string;
    const stops = await launch("stop");
    const terminates = await launch("terminate");
    expect((await stack.call("describeInstanceAttribute", { InstanceId: terminates, Attribute: "instanceInitiatedShutdownBehavior" })).InstanceInitiatedShutdownBehavior.Value).toBe("terminate");
    await stack.waitForState([stops], "stopped", 240_000);
    await stack.waitForState([terminates], "terminated", 240_000);
    for (const id of [stops, terminates]) expect((await stack.instance(id)).StateReason).toMatchObject({ Code: "Client.InstanceInitiatedShutdown" });
    // (A terminated instance's console log goes with it.)
    expect(await stack.consoleText(stops)).toContain("CIRRUS-POWEROFF");
    expect(stack.domState(stops)).toBe("shut off");
    expect(stack.domState(terminates)).toBe("absent");
  });
});
