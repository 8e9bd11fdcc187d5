// The whole CLI in-process (`run`) against a fake Compute server: argv →
// request mapping, output, waiting and exit codes.
import { Ec2Error } from "@cirrus/common";
import { compute } from "@cirrus/proto";
import { afterEach, describe, expect, it } from "vitest";
import { run, type Io } from "../src/cli.js";
import { startFakeCompute, instance, type FakeCompute, type Handlers } from "./fake-compute.js";

let server: FakeCompute | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cirrus <argv>` against a fake server answering with `handlers`. */
async function cirrus(handlers: Handlers, argv: string[], env: Record<string, string> = {}): Promise<Outcome & { server: FakeCompute }> {
  server = await startFakeCompute(handlers);
  const out = await runAgainst(server.endpoint, argv, env);
  return { ...out, server };
}

async function runAgainst(endpoint: string, argv: string[], env: Record<string, string> = {}): Promise<Outcome> {
  let stdout = "";
  let stderr = "";
  const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), stderrIsTTY: false, env: { CIRRUS_ENDPOINT: endpoint, ...env } };
  const code = await run(argv, io, { pollMs: 1 });
  return { code, stdout, stderr };
}

const reservation = (...instances: compute.Instance[]) =>
  compute.Reservation.fromPartial({ ReservationId: "r-0123456789abcdef0", OwnerId: "000000000000", Instances: instances });

describe("run-instances", () => {
  it("maps every aws flag onto the request", async () => {
    const { code, stdout, server } = await cirrus({ runInstances: () => reservation(instance("i-1", "pending")) }, [
      "run-instances",
      "--image-id", "ami-0123456789abcdef0",
      "--instance-type", "t3.micro",
      "--count", "1:3",
      "--client-token", "tok-1",
      "--placement", "AvailabilityZone=lab-1a",
      "--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web}]",
      "--user-data", "#!/bin/sh\necho hi",
      "--key-name", "mykey",
      "--security-group-ids", "sg-1", "sg-2",
    ]);
    expect(code).toBe(0);
    expect(server.requests("runInstances")).toEqual([
      compute.RunInstancesRequest.fromPartial({
        ImageId: "ami-0123456789abcdef0",
        InstanceType: "t3.micro",
        MinCount: 1,
        MaxCount: 3,
        ClientToken: "tok-1",
        Placement: { AvailabilityZone: "lab-1a" },
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "web" }] }],
        UserData: Buffer.from("#!/bin/sh\necho hi").toString("base64"),
        KeyName: "mykey",
        SecurityGroupIds: ["sg-1", "sg-2"],
      }),
    ]);
    expect(JSON.parse(stdout)).toEqual({
      ReservationId: "r-0123456789abcdef0",
      OwnerId: "000000000000",
      Instances: [compute.Instance.toJSON(instance("i-1", "pending"))].map((i) => ({ ...(i as object), AmiLaunchIndex: 0, State: { Code: 0, Name: "pending" } })),
    });
  });

  it("launches exactly one by default", async () => {
    const { server } = await cirrus({ runInstances: () => reservation(instance("i-1", "pending")) }, ["run-instances", "--image-id", "ami-1"]);
    expect(server.requests("runInstances")[0]).toMatchObject({ MinCount: 1, MaxCount: 1 });
  });

  it("--wait polls until running, shows progress on stderr and prints the final states", async () => {
    const states = ["pending", "pending", "running"];
    const { code, stdout, stderr } = await cirrus(
      {
        runInstances: () => reservation(instance("i-1", "pending")),
        describeInstances: () => compute.DescribeInstancesResponse.fromPartial({ Reservations: [reservation(instance("i-1", states.shift() ?? "running"))] }),
      },
      ["run-instances", "--image-id", "ami-1", "--wait"],
    );
    expect(code).toBe(0);
    expect(stderr).toMatch(/^i-1 pending \(\d+s\)\ni-1 pending → running \(\d+s\)\n$/);
    expect(JSON.parse(stdout).Instances[0].State).toEqual({ Code: 16, Name: "running" });
  });

  it("--wait exits 255 when an instance ends terminated, still printing the instances", async () => {
    const { code, stdout, stderr } = await cirrus(
      {
        runInstances: () => reservation(instance("i-1", "pending")),
        describeInstances: () =>
          compute.DescribeInstancesResponse.fromPartial({
            Reservations: [reservation(instance("i-1", "terminated", { StateReason: { Code: "Server.InternalError", Message: "Server.InternalError: boot failed" } }))],
          }),
      },
      ["run-instances", "--image-id", "ami-1", "--wait"],
    );
    expect(code).toBe(255);
    expect(JSON.parse(stdout).Instances[0].InstanceId).toBe("i-1");
    expect(stderr).toContain("Waiter InstanceRunning failed: i-1 is terminated (Server.InternalError: boot failed) while waiting for running");
  });

  it("rejects a bad --count before calling the server (exit 252)", async () => {
    const { code, stderr, server } = await cirrus({}, ["run-instances", "--image-id", "ami-1", "--count", "3:1"]);
    expect(code).toBe(252);
    expect(stderr).toContain("Error parsing parameter '--count'");
    expect(server.calls).toHaveLength(0);
  });
});

describe("describe-instances", () => {
  const page = (ids: string[], next = "") =>
    compute.DescribeInstancesResponse.fromPartial({ Reservations: [reservation(...ids.map((id) => instance(id, "running")))], NextToken: next });

  it("follows NextToken and prints one merged response without it", async () => {
    const { code, stdout, server } = await cirrus(
      { describeInstances: (req) => (req.NextToken === "" ? page(["i-1"], "t2") : req.NextToken === "t2" ? page(["i-2"], "t3") : page(["i-3"])) },
      ["describe-instances", "--filters", "Name=instance-state-name,Values=running,stopped", "Name=tag:Name,Values=web"],
    );
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.NextToken).toBeUndefined();
    expect(out.Reservations.flatMap((r: { Instances: { InstanceId: string }[] }) => r.Instances.map((i) => i.InstanceId))).toEqual(["i-1", "i-2", "i-3"]);
    expect(server.requests("describeInstances").map((r) => r.NextToken)).toEqual(["", "t2", "t3"]);
    expect(server.requests("describeInstances")[0]!.Filters).toEqual([
      { Name: "instance-state-name", Values: ["running", "stopped"] },
      { Name: "tag:Name", Values: ["web"] },
    ]);
  });

  it("returns one page, with its NextToken, when --max-results is given", async () => {
    const { stdout, server } = await cirrus({ describeInstances: () => page(["i-1"], "t2") }, ["describe-instances", "--max-results", "5"]);
    expect(JSON.parse(stdout).NextToken).toBe("t2");
    expect(server.requests("describeInstances")).toHaveLength(1);
    expect(server.requests("describeInstances")[0]!.MaxResults).toBe(5);
  });

  it("accepts global options after the command, and CIRRUS_OUTPUT", async () => {
    const handlers: Handlers = { describeInstances: () => page(["i-0abc"]) };
    const table = await cirrus(handlers, ["describe-instances", "--instance-ids", "i-0abc", "--output", "table"]);
    expect(table.stdout).toMatch(/InstanceId.*State/);
    expect(table.stdout).toMatch(/i-0abc.*running/);
    await server?.close();
    const text = await cirrus(handlers, ["describe-instances"], { CIRRUS_OUTPUT: "text" });
    expect(text.stdout).toMatch(/^RESERVATIONS\t/);
  });

  it("prints service errors the aws way and exits 254", async () => {
    const { code, stdout, stderr } = await cirrus(
      {
        describeInstances: () => {
          throw new Ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-0dead' does not exist");
        },
      },
      ["describe-instances", "--instance-ids", "i-0dead"],
    );
    expect(code).toBe(254);
    expect(stdout).toBe("");
    expect(stderr).toBe("An error occurred (InvalidInstanceID.NotFound) when calling the DescribeInstances operation: The instance ID 'i-0dead' does not exist\n");
  });
});

describe("state changes", () => {
  const change = (id: string, from: string, to: string) => ({
    InstanceId: id,
    PreviousState: { Code: 0, Name: from },
    CurrentState: { Code: 0, Name: to },
  });

  it("stop-instances --force --wait waits for stopped and prints the state reached", async () => {
    const states = ["stopping", "stopped"];
    const { code, stdout, server } = await cirrus(
      {
        stopInstances: () => compute.StopInstancesResponse.fromPartial({ StoppingInstances: [change("i-1", "running", "stopping")] }),
        describeInstances: () => compute.DescribeInstancesResponse.fromPartial({ Reservations: [reservation(instance("i-1", states.shift() ?? "stopped"))] }),
      },
      ["stop-instances", "--instance-ids", "i-1", "--force", "--wait"],
    );
    expect(code).toBe(0);
    expect(server.requests("stopInstances")).toEqual([{ InstanceIds: ["i-1"], Force: true }]);
    expect(JSON.parse(stdout).StoppingInstances[0].CurrentState).toEqual({ Code: 80, Name: "stopped" });
  });

  it("terminate-instances --wait counts a purged instance as terminated", async () => {
    const { code } = await cirrus(
      {
        terminateInstances: () => compute.TerminateInstancesResponse.fromPartial({ TerminatingInstances: [change("i-1", "running", "shutting-down")] }),
        describeInstances: () => {
          throw new Ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-1' does not exist");
        },
      },
      ["terminate-instances", "--instance-ids", "i-1", "--wait"],
    );
    expect(code).toBe(0);
  });

  it("reboot-instances prints nothing", async () => {
    const { code, stdout, server } = await cirrus({ rebootInstances: () => ({}) }, ["reboot-instances", "--instance-ids", "i-1,i-2"]);
    expect(code).toBe(0);
    expect(stdout).toBe("");
    expect(server.requests("rebootInstances")).toEqual([{ InstanceIds: ["i-1", "i-2"] }]);
  });

  it("requires --instance-ids (exit 252)", async () => {
    const { code, stderr, server } = await cirrus({}, ["start-instances"]);
    expect(code).toBe(252);
    expect(stderr).toContain("required option '--instance-ids <value...>' not specified");
    expect(server.calls).toHaveLength(0);
  });
});

describe("images and console", () => {
  it("register-image maps block device mappings and prints the ImageId", async () => {
    const { stdout, server } = await cirrus({ registerImage: () => ({ ImageId: "ami-1" }) }, [
      "register-image",
      "--name", "busybox",
      "--image-location", "/var/lib/cirrus/images/busybox.qcow2",
      "--kernel-location", "/boot/vmlinuz",
      "--block-device-mappings", "DeviceName=/dev/vda,Ebs={VolumeSize=1}",
    ]);
    expect(JSON.parse(stdout)).toEqual({ ImageId: "ami-1" });
    expect(server.requests("registerImage")[0]).toMatchObject({
      Name: "busybox",
      ImageLocation: "/var/lib/cirrus/images/busybox.qcow2",
      KernelLocation: "/boot/vmlinuz",
      BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 1 } }],
    });
  });

  it("get-console-output --output text prints the decoded console", async () => {
    const { stdout, server } = await cirrus(
      { getConsoleOutput: () => ({ InstanceId: "i-1", Output: Buffer.from("login: ").toString("base64"), Timestamp: "t" }) },
      ["get-console-output", "--instance-id", "i-1", "--latest", "--output", "text"],
    );
    expect(stdout).toBe("login: ");
    expect(server.requests("getConsoleOutput")).toEqual([{ InstanceId: "i-1", Latest: true }]);
  });
});

describe("exit codes", () => {
  it("252 for unknown options and commands, 0 for help", async () => {
    expect((await runAgainst("127.0.0.1:1", ["describe-instances", "--bogus"])).code).toBe(252);
    expect((await runAgainst("127.0.0.1:1", ["frobnicate"])).code).toBe(252);
    expect((await runAgainst("127.0.0.1:1", [])).code).toBe(252);
    expect((await runAgainst("127.0.0.1:1", ["--output", "xml", "describe-regions"])).code).toBe(252);
    expect((await runAgainst("127.0.0.1:1", ["describe-regions"], { CIRRUS_OUTPUT: "xml" })).code).toBe(252);
    const help = await runAgainst("127.0.0.1:1", ["run-instances", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--tag-specifications");
  });

  it("255 when the endpoint is down, without hanging", async () => {
    const t0 = Date.now();
    const out = await runAgainst("127.0.0.1:1", ["describe-regions"]);
    expect(out.code).toBe(255);
    expect(out.stderr).toBe('Could not connect to the endpoint URL: "127.0.0.1:1"\n');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
