// The `cirrus` CLI as a user runs it, against the real API (fake-driver host:
// this checks the CLI's shapes, waits and errors, not booting).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "../src/stack.js";

const stack = new Stack();
let imageId = "";

const cirrus = (...args: string[]) => stack.cli(...args);

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "fake1", driver: "fake", capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } });
  imageId = await stack.registerTestImage();
});
afterAll(() => stack.stop());

describe("cirrus CLI", () => {
  it("runs, waits, describes in EC2's shapes, and terminates", async () => {
    const run = await cirrus("run-instances", "--image-id", imageId, "--instance-type", "t2.micro", "--count", "2",
      "--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=cli}]", "--wait");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/running/);
    const ids = (JSON.parse(run.stdout).Instances as Array<{ InstanceId: string }>).map((i) => i.InstanceId);
    expect(ids).toHaveLength(2);

    const desc = await cirrus("describe-instances", "--filters", "Name=tag:Name,Values=cli");
    expect(desc.code).toBe(0);
    const parsed = JSON.parse(desc.stdout);
    const instances = parsed.Reservations.flatMap((r: { Instances: unknown[] }) => r.Instances);
    expect(instances).toHaveLength(2);
    expect(instances[0]).toMatchObject({ InstanceId: expect.stringMatching(/^i-[0-9a-f]{17}$/), State: { Code: 16, Name: "running" }, InstanceType: "t2.micro", ImageId: imageId });

    const table = await cirrus("describe-instances", "--output", "table");
    expect(table.stdout).toContain(ids[0]);
    expect(table.stdout).toContain("running");

    const term = await cirrus("terminate-instances", "--instance-ids", ...ids, "--wait");
    expect(term.code, term.stderr).toBe(0);
    expect(JSON.parse(term.stdout).TerminatingInstances).toHaveLength(2);
    for (const id of ids) expect((await stack.instance(id)).State?.Name).toBe("terminated");
  });

  it("prints EC2 errors the aws CLI way and exits non-zero", async () => {
    const res = await cirrus("run-instances", "--image-id", "ami-0123456789abcdef0", "--count", "1");
    expect(res.code).toBe(254);
    expect(res.stderr).toMatch(/An error occurred \(InvalidAMIID\.NotFound\) when calling the RunInstances operation: /);
    const bad = await cirrus("run-instances", "--image-id", imageId, "--count", "x");
    expect(bad.code).toBe(252);
  });

  it("drives security groups and elastic IPs with the aws CLI's commands and flags", async () => {
    const json = async (...args: string[]) => {
      const r = await cirrus(...args);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim() ? JSON.parse(r.stdout) : {};
    };
    const { GroupId } = await json("create-security-group", "--group-name", "cli-web", "--description", "from the CLI");
    expect(GroupId).toMatch(/^sg-[0-9a-f]{17}$/);
    await json("authorize-security-group-ingress", "--group-id", GroupId, "--protocol", "tcp", "--port", "80", "--cidr", "10.1.0.0/16");
    const dup = await cirrus("authorize-security-group-ingress", "--group-id", GroupId, "--protocol", "tcp", "--port", "80", "--cidr", "10.1.0.0/16");
    expect(dup.code).toBe(254);
    expect(dup.stderr).toContain("(InvalidPermission.Duplicate)");
    const { SecurityGroups } = await json("describe-security-groups", "--group-ids", GroupId);
    expect(SecurityGroups[0].IpPermissions).toEqual([{ IpProtocol: "tcp", FromPort: 80, ToPort: 80, IpRanges: [{ CidrIp: "10.1.0.0/16" }] }]);

    const run = await json("run-instances", "--image-id", imageId, "--count", "1", "--security-group-ids", GroupId, "--wait");
    const instanceId = run.Instances[0].InstanceId;
    const { AllocationId, PublicIp } = await json("allocate-address", "--domain", "vpc");
    const { AssociationId } = await json("associate-address", "--allocation-id", AllocationId, "--instance-id", instanceId);
    const { Addresses } = await json("describe-addresses", "--allocation-ids", AllocationId);
    expect(Addresses[0]).toMatchObject({ PublicIp, AllocationId, AssociationId, InstanceId: instanceId });
    const ip = await cirrus("describe-instances", "--instance-ids", instanceId, "--query", "Reservations[0].Instances[0].PublicIpAddress", "--output", "text");
    expect(ip.stdout.trim()).toBe(PublicIp);
    await json("disassociate-address", "--association-id", AssociationId);
    await json("release-address", "--allocation-id", AllocationId);
    await json("terminate-instances", "--instance-ids", instanceId, "--wait");
  });
});
