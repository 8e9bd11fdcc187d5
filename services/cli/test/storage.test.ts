// The volume and snapshot commands against a fake server whose Describe
// answers step through states: --wait (each waiter's success and failure),
// `cirrus wait`, copy-snapshot's DestinationRegion and the table views.
import { Ec2Error } from "@cirrus/core";
import { compute } from "@cirrus/proto";
import { afterEach, describe, expect, it } from "vitest";
import { progression, snapshot, volume } from "./fake-compute.js";
import { cirrus, stopServer } from "./harness.js";

afterEach(stopServer);

const volumes = (...steps: compute.Volume[]) => {
  const next = progression(...steps);
  return () => compute.DescribeVolumesResponse.fromPartial({ Volumes: [next()] });
};
const snapshots = (...steps: compute.Snapshot[]) => {
  const next = progression(...steps);
  return () => compute.DescribeSnapshotsResponse.fromPartial({ Snapshots: [next()] });
};
const volumeNotFound = (id: string) => new Ec2Error("InvalidVolume.NotFound", `The volume '${id}' does not exist.`);
/** The attachment AttachVolume or DetachVolume answers, in `state`. */
const attachment = (state: string) => volume("vol-1", "in-use", state).Attachments[0]!;

/** A fake clock whose sleep advances time instantly, for the timeout paths. */
function clock() {
  let t = 0;
  return { now: () => t, sleep: async (ms: number) => void (t += ms) };
}

describe("create-volume --wait (VolumeAvailable)", () => {
  it("polls until available and prints the volume as reached", async () => {
    const { code, stdout, stderr } = await cirrus(
      { createVolume: () => volume("vol-1", "creating"), describeVolumes: volumes(volume("vol-1", "creating"), volume("vol-1", "available")) },
      ["create-volume", "--availability-zone", "lab-1a", "--size", "1", "--wait"],
    );
    expect(code).toBe(0);
    expect(stderr).toMatch(/^vol-1 creating \(\d+s\)\nvol-1 creating → available \(\d+s\)\n$/);
    expect(JSON.parse(stdout)).toMatchObject({ VolumeId: "vol-1", State: "available" });
  });

  it("fails on error (a failed create), still printing the volume", async () => {
    const { code, stdout, stderr } = await cirrus(
      { createVolume: () => volume("vol-1", "creating"), describeVolumes: volumes(volume("vol-1", "creating"), volume("vol-1", "error")) },
      ["create-volume", "--availability-zone", "lab-1a", "--size", "1", "--wait"],
    );
    expect(code).toBe(255);
    expect(JSON.parse(stdout).State).toBe("error");
    expect(stderr).toContain("Waiter VolumeAvailable failed: vol-1 is error while waiting for available");
  });

  it("fails when the volume is gone", async () => {
    const { code, stderr } = await cirrus(
      {
        createVolume: () => volume("vol-1", "creating"),
        describeVolumes: () => {
          throw volumeNotFound("vol-1");
        },
      },
      ["create-volume", "--availability-zone", "lab-1a", "--size", "1", "--wait"],
    );
    expect(code).toBe(255);
    expect(stderr).toContain("Waiter VolumeAvailable failed: vol-1 is not found while waiting for available");
  });
});

describe("attach-volume --wait (VolumeInUse, attached)", () => {
  it("waits through attaching until the attachment is attached", async () => {
    const { code, stdout, stderr, server } = await cirrus(
      { attachVolume: () => attachment("attaching"), describeVolumes: volumes(volume("vol-1", "in-use", "attaching"), volume("vol-1", "in-use", "attached")) },
      ["attach-volume", "--volume-id", "vol-1", "--instance-id", "i-1", "--device", "/dev/sdf", "--wait"],
    );
    expect(code).toBe(0);
    expect(server.requests("attachVolume")).toEqual([{ VolumeId: "vol-1", InstanceId: "i-1", Device: "/dev/sdf" }]);
    expect(stderr).toMatch(/^vol-1 attaching \(\d+s\)\nvol-1 attaching → in-use \(\d+s\)\n$/);
    expect(JSON.parse(stdout)).toMatchObject({ VolumeId: "vol-1", InstanceId: "i-1", State: "attached" });
  });

  it("fails when the attach is undone (the volume available again), printing the attachment as detached", async () => {
    const { code, stdout, stderr } = await cirrus(
      { attachVolume: () => attachment("attaching"), describeVolumes: volumes(volume("vol-1", "in-use", "attaching"), volume("vol-1", "available")) },
      ["attach-volume", "--volume-id", "vol-1", "--instance-id", "i-1", "--device", "/dev/sdf", "--wait"],
    );
    expect(code).toBe(255);
    expect(JSON.parse(stdout)).toMatchObject({ VolumeId: "vol-1", State: "detached" });
    expect(stderr).toContain("Waiter VolumeInUse failed: vol-1 is available while waiting for in-use");
  });
});

describe("detach-volume --wait (VolumeAvailable)", () => {
  it("waits through detaching until the volume is available, printing the attachment as detached", async () => {
    const { code, stdout, stderr } = await cirrus(
      { detachVolume: () => attachment("detaching"), describeVolumes: volumes(volume("vol-1", "in-use", "detaching"), volume("vol-1", "available")) },
      ["detach-volume", "--volume-id", "vol-1", "--wait"],
    );
    expect(code).toBe(0);
    expect(stderr).toMatch(/^vol-1 detaching \(\d+s\)\nvol-1 detaching → available \(\d+s\)\n$/);
    expect(JSON.parse(stdout)).toMatchObject({ VolumeId: "vol-1", InstanceId: "i-1", State: "detached" });
  });

  it("gives up at --wait-timeout while the guest holds on", async () => {
    const { code, stdout, stderr } = await cirrus(
      { detachVolume: () => attachment("detaching"), describeVolumes: volumes(volume("vol-1", "in-use", "detaching")) },
      ["detach-volume", "--volume-id", "vol-1", "--wait", "--wait-timeout", "5"],
      {},
      { pollMs: 1000, ...clock() },
    );
    expect(code).toBe(255);
    expect(JSON.parse(stdout).State).toBe("detaching");
    expect(stderr).toContain("Waiter VolumeAvailable failed: Max wait time of 5s exceeded; still waiting for vol-1 (detaching)");
  });
});

describe("delete-volume --wait (VolumeDeleted)", () => {
  it("succeeds once DescribeVolumes says InvalidVolume.NotFound, printing nothing", async () => {
    let polls = 0;
    const { code, stdout, stderr, server } = await cirrus(
      {
        deleteVolume: () => ({}),
        describeVolumes: () => {
          if (++polls < 2) return compute.DescribeVolumesResponse.fromPartial({ Volumes: [volume("vol-1", "deleting")] });
          throw volumeNotFound("vol-1");
        },
      },
      ["delete-volume", "--volume-id", "vol-1", "--wait"],
    );
    expect(code).toBe(0);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^vol-1 deleting \(\d+s\)\nvol-1 deleting → not found \(\d+s\)\n$/);
    expect(server.requests("describeVolumes").map((r) => r.VolumeIds)).toEqual([["vol-1"], ["vol-1"], ["vol-1"]]);
  });

  it("ends on any other error of the Describe (exit 254)", async () => {
    const { code, stderr } = await cirrus(
      {
        deleteVolume: () => ({}),
        describeVolumes: () => {
          throw new Ec2Error("InternalError", "An internal error has occurred");
        },
      },
      ["delete-volume", "--volume-id", "vol-1", "--wait"],
    );
    expect(code).toBe(254);
    expect(stderr).toContain("(InternalError) when calling the DescribeVolumes operation");
  });
});

describe("create-snapshot and copy-snapshot --wait (SnapshotCompleted)", () => {
  it("create-snapshot polls until completed and prints the snapshot as reached", async () => {
    const { code, stdout, stderr } = await cirrus(
      { createSnapshot: () => snapshot("snap-1", "pending"), describeSnapshots: snapshots(snapshot("snap-1", "pending"), snapshot("snap-1", "completed")) },
      ["create-snapshot", "--volume-id", "vol-1", "--description", "nightly", "--wait"],
    );
    expect(code).toBe(0);
    expect(stderr).toMatch(/^snap-1 pending \(\d+s\)\nsnap-1 pending → completed \(\d+s\)\n$/);
    expect(JSON.parse(stdout)).toMatchObject({ SnapshotId: "snap-1", State: "completed", Progress: "100%" });
  });

  it("create-snapshot fails on error with the state message", async () => {
    const { code, stdout, stderr } = await cirrus(
      { createSnapshot: () => snapshot("snap-1", "pending"), describeSnapshots: snapshots(snapshot("snap-1", "error", { StateMessage: "no space left in the snapshot store" })) },
      ["create-snapshot", "--volume-id", "vol-1", "--wait"],
    );
    expect(code).toBe(255);
    expect(JSON.parse(stdout).SnapshotId).toBe("snap-1");
    expect(stderr).toContain("Waiter SnapshotCompleted failed: snap-1 is error (no space left in the snapshot store) while waiting for completed");
  });

  it("copy-snapshot --wait polls the copy until completed, and fails on error", async () => {
    const copied = () => ({ SnapshotId: "snap-2", Tags: [] });
    const ok = await cirrus(
      { copySnapshot: copied, describeSnapshots: snapshots(snapshot("snap-2", "pending"), snapshot("snap-2", "completed")) },
      ["copy-snapshot", "--source-snapshot-id", "snap-1", "--source-region", "lab-1", "--wait"],
    );
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ SnapshotId: "snap-2" });
    expect(ok.server.requests("describeSnapshots")[0]!.SnapshotIds).toEqual(["snap-2"]);
    await stopServer();
    const failed = await cirrus(
      { copySnapshot: copied, describeSnapshots: snapshots(snapshot("snap-2", "error", { StateMessage: "source unreadable" })) },
      ["copy-snapshot", "--source-snapshot-id", "snap-1", "--source-region", "lab-1", "--wait"],
    );
    expect(failed.code).toBe(255);
    expect(failed.stderr).toContain("Waiter SnapshotCompleted failed: snap-2 is error (source unreadable) while waiting for completed");
  });

  it("copy-snapshot sends the region signed for as DestinationRegion unless one is given, as the aws CLI does", async () => {
    const copied = () => ({ SnapshotId: "snap-2", Tags: [] });
    const argv = ["copy-snapshot", "--source-snapshot-id", "snap-1", "--source-region", "lab-1"];
    const byDefault = await cirrus({ copySnapshot: copied }, argv);
    expect(byDefault.server.requests("copySnapshot")[0]).toMatchObject({ SourceSnapshotId: "snap-1", SourceRegion: "lab-1", DestinationRegion: "lab-1" });
    await stopServer();
    const fromEnv = await cirrus({ copySnapshot: copied }, argv, { AWS_REGION: "lab-2" });
    expect(fromEnv.server.requests("copySnapshot")[0]!.DestinationRegion).toBe("lab-2");
    await stopServer();
    const given = await cirrus({ copySnapshot: copied }, [...argv, "--destination-region", "elsewhere"]);
    expect(given.server.requests("copySnapshot")[0]!.DestinationRegion).toBe("elsewhere");
  });
});

describe("cirrus wait", () => {
  it("volume-available waits for every volume named and prints nothing", async () => {
    const next = progression("creating", "available");
    const { code, stdout, server } = await cirrus(
      { describeVolumes: (req) => compute.DescribeVolumesResponse.fromPartial({ Volumes: req.VolumeIds.map((id) => volume(id, next())) }) },
      ["wait", "volume-available", "--volume-ids", "vol-1", "vol-2"],
    );
    expect(code).toBe(0);
    expect(stdout).toBe("");
    expect(server.requests("describeVolumes")[0]!.VolumeIds).toEqual(["vol-1", "vol-2"]);
  });

  it("volume-in-use waits while the attachment is attaching", async () => {
    const { code, server } = await cirrus(
      { describeVolumes: volumes(volume("vol-1", "in-use", "attaching"), volume("vol-1", "in-use", "attached")) },
      ["wait", "volume-in-use", "--volume-ids", "vol-1"],
    );
    expect(code).toBe(0);
    expect(server.requests("describeVolumes")).toHaveLength(2);
  });

  it("volume-deleted asks for each volume alone when one is gone, and waits for the rest", async () => {
    let polls = 0;
    const { code, server } = await cirrus(
      {
        describeVolumes: (req) => {
          if (req.VolumeIds.includes("vol-1")) throw volumeNotFound("vol-1");
          return compute.DescribeVolumesResponse.fromPartial({ Volumes: ++polls < 2 ? [volume("vol-2", "deleting")] : [] });
        },
      },
      ["wait", "volume-deleted", "--volume-ids", "vol-1", "vol-2"],
    );
    expect(code).toBe(0);
    expect(server.requests("describeVolumes").map((r) => r.VolumeIds)).toEqual([["vol-1", "vol-2"], ["vol-1"], ["vol-2"], ["vol-1", "vol-2"], ["vol-1"], ["vol-2"]]);
  });

  it("snapshot-completed fails on error (exit 255)", async () => {
    const { code, stdout, stderr } = await cirrus({ describeSnapshots: snapshots(snapshot("snap-1", "error")) }, ["wait", "snapshot-completed", "--snapshot-ids", "snap-1"]);
    expect(code).toBe(255);
    expect(stdout).toBe("");
    expect(stderr).toContain("Waiter SnapshotCompleted failed: snap-1 is error while waiting for completed");
  });

  it("instance-running is there too", async () => {
    const reservation = compute.Reservation.fromPartial({ Instances: [{ InstanceId: "i-1", State: { Code: 16, Name: "running" } }] });
    const { code } = await cirrus({ describeInstances: () => ({ Reservations: [reservation], NextToken: "" }) }, ["wait", "instance-running", "--instance-ids", "i-1"]);
    expect(code).toBe(0);
  });

  it("requires the ids and a known waiter (exit 252)", async () => {
    const noIds = await cirrus({}, ["wait", "volume-available"]);
    expect(noIds.code).toBe(252);
    expect(noIds.stderr).toContain("required option '--volume-ids <value...>' not specified");
    await stopServer();
    expect((await cirrus({}, ["wait", "volume-exists", "--volume-ids", "vol-1"])).code).toBe(252);
  });
});

describe("tables and help", () => {
  it("describe-volumes, describe-snapshots and describe-volume-status --output table list one row each", async () => {
    const vols = await cirrus(
      { describeVolumes: () => ({ Volumes: [volume("vol-1", "in-use", "attached", { Tags: [{ Key: "Name", Value: "data" }] })], NextToken: "" }) },
      ["describe-volumes", "--output", "table"],
    );
    expect(vols.stdout).toMatch(/VolumeId.*State.*Size.*VolumeType.*AvailabilityZone.*InstanceId.*Device.*Attachment.*Name/);
    expect(vols.stdout).toMatch(/vol-1.*in-use.*1.*gp3.*lab-1a.*i-1.*\/dev\/sdf.*attached.*data/);
    await stopServer();
    const snaps = await cirrus({ describeSnapshots: () => ({ Snapshots: [snapshot("snap-1", "completed", { Description: "nightly" })], NextToken: "" }) }, [
      "describe-snapshots", "--output", "table",
    ]);
    expect(snaps.stdout).toMatch(/SnapshotId.*State.*Progress.*VolumeId.*VolumeSize.*StartTime.*Description/);
    expect(snaps.stdout).toMatch(/snap-1.*completed.*100%.*vol-1.*1.*nightly/);
    await stopServer();
    const status = await cirrus(
      { describeVolumeStatus: () => compute.DescribeVolumeStatusResponse.fromPartial({ VolumeStatuses: [{ VolumeId: "vol-1", AvailabilityZone: "lab-1a", VolumeStatus: { Status: "ok", Details: [{ Name: "io-enabled", Status: "passed" }] } }] }) },
      ["describe-volume-status", "--output", "table"],
    );
    expect(status.stdout).toMatch(/vol-1.*lab-1a.*ok.*passed/);
  });

  it("--wait is offered with its waiter's name", async () => {
    const help = await cirrus({}, ["create-volume", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--wait .*every volume is available[\s\S]*VolumeAvailable waiter/);
    await stopServer();
    expect((await cirrus({}, ["wait", "--help"])).stdout).toMatch(/volume-deleted[\s\S]*snapshot-completed/);
  });
});
