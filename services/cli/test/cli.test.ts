// The whole CLI in-process (`run`) against a fake Compute server: argv →
// request mapping, output, waiting and exit codes.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ec2Error } from "@cirrus/core";
import { compute } from "@cirrus/proto";
import { afterEach, describe, expect, it } from "vitest";
import { instance, type Handlers } from "./fake-compute.js";
import { cirrus, runAgainst, stopServer } from "./harness.js";

afterEach(stopServer);

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
    await stopServer();
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
      ["get-console-output", "--instance-id", "i-1", "--output", "text"],
    );
    expect(stdout).toBe("login: ");
    expect(server.requests("getConsoleOutput")).toEqual([{ InstanceId: "i-1" }]);
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

describe("key pairs, networking and --query", () => {
  const keyMaterial = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----";
  const created = () => ({ KeyFingerprint: "aa:bb", KeyMaterial: keyMaterial, KeyName: "k", KeyPairId: "key-0123456789abcdef0", Tags: [] });

  it("create-key-pair --query KeyMaterial --output text prints the raw private key, as the aws CLI does", async () => {
    const { code, stdout, server } = await cirrus({ createKeyPair: created }, [
      "create-key-pair", "--key-name", "k", "--key-type", "ed25519", "--query", "KeyMaterial", "--output", "text",
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe(`${keyMaterial}\n`);
    expect(server.requests("createKeyPair")).toEqual([compute.CreateKeyPairRequest.fromPartial({ KeyName: "k", KeyType: "ed25519" })]);
  });

  it("--query with json output prints the selected JSON value", async () => {
    const { stdout } = await cirrus({ createKeyPair: created }, ["create-key-pair", "--key-name", "k", "--query", "KeyPairId"]);
    expect(stdout).toBe('"key-0123456789abcdef0"\n');
  });

  it("--query is full JMESPath (multi-select, functions)", async () => {
    const { code, stdout } = await cirrus({ createKeyPair: created }, ["create-key-pair", "--key-name", "k", "--query", "{Id: KeyPairId, NameLength: length(KeyName)}", "--output", "text"]);
    expect(code).toBe(0);
    expect(stdout).toBe("key-0123456789abcdef0\t1\n");
  });

  it("a bad --query fails before calling the server (exit 252)", async () => {
    const { code, stderr, server } = await cirrus({ createKeyPair: created }, ["create-key-pair", "--key-name", "k", "--query", "KeyPairs[?KeyName='k']"]);
    expect(code).toBe(252);
    expect(stderr).toBe("Bad value for --query KeyPairs[?KeyName='k']: unknown operator '=' (compare with ==)\n");
    expect(server.calls).toHaveLength(0);
  });

  it("a --query that fails on the response exits 255 with jmespath's reason", async () => {
    const { code, stdout, stderr } = await cirrus({ createKeyPair: created }, ["create-key-pair", "--key-name", "k", "--query", "sum(KeyName)"]);
    expect(code).toBe(255);
    expect(stdout).toBe("");
    expect(stderr).toBe("Error evaluating --query sum(KeyName): TypeError: sum() expected argument 1 to be type Array<number> but received type string instead.\n");
  });

  it("import-key-pair sends the bytes of fileb:// or of the text itself", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cirrus-cli-"));
    const pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAgmjuX04LPGou me@host\n";
    writeFileSync(join(dir, "id.pub"), pub);
    const imported = () => ({ KeyFingerprint: "x=", KeyName: "k", KeyPairId: "key-1", Tags: [] });
    const { code, server } = await cirrus({ importKeyPair: imported }, ["import-key-pair", "--key-name", "k", "--public-key-material", `fileb://${join(dir, "id.pub")}`]);
    expect(code).toBe(0);
    expect(server.requests("importKeyPair")[0]!.PublicKeyMaterial.toString()).toBe(pub);
    await server.close();
    const text = await cirrus({ importKeyPair: imported }, ["import-key-pair", "--key-name", "k", "--public-key-material", pub.trim()]);
    expect(text.server.requests("importKeyPair")[0]!.PublicKeyMaterial.toString()).toBe(pub.trim());
  });

  it("describe-key-pairs maps its flags and prints a table", async () => {
    const { stdout, server } = await cirrus(
      { describeKeyPairs: () => ({ KeyPairs: [{ KeyPairId: "key-1", KeyFingerprint: "aa:bb", KeyName: "k", KeyType: "rsa", Tags: [], PublicKey: "", CreateTime: "2024-01-01T00:00:00.000Z" }] }) },
      ["describe-key-pairs", "--key-names", "k", "--filters", "Name=key-type,Values=rsa", "--include-public-key", "--output", "table"],
    );
    expect(server.requests("describeKeyPairs")).toEqual([
      compute.DescribeKeyPairsRequest.fromPartial({ KeyNames: ["k"], Filters: [{ Name: "key-type", Values: ["rsa"] }], IncludePublicKey: true }),
    ]);
    expect(stdout).toMatch(/KeyPairId.*KeyName.*KeyType/);
    expect(stdout).toMatch(/key-1.*k.*rsa.*aa:bb/);
  });

  it("describe-key-pairs prints an empty list as the aws CLI does", async () => {
    const { stdout } = await cirrus({ describeKeyPairs: () => ({ KeyPairs: [] }) }, ["describe-key-pairs"]);
    expect(JSON.parse(stdout)).toEqual({ KeyPairs: [] });
  });

  it("authorize-security-group-ingress builds IpPermissions from --protocol/--port/--cidr", async () => {
    const { code, server } = await cirrus({ authorizeSecurityGroupIngress: () => ({ Return: true, SecurityGroupRules: [] }) }, [
      "authorize-security-group-ingress", "--group-id", "sg-1", "--protocol", "tcp", "--port", "8000-8080", "--cidr", "10.0.0.0/16",
    ]);
    expect(code).toBe(0);
    expect(server.requests("authorizeSecurityGroupIngress")[0]).toEqual(
      compute.AuthorizeSecurityGroupRequest.fromPartial({ GroupId: "sg-1", IpPermissions: [{ IpProtocol: "tcp", FromPort: 8000, ToPort: 8080, IpRanges: [{ CidrIp: "10.0.0.0/16" }] }] }),
    );
  });

  it("revoke-security-group-egress takes --ip-permissions shorthand and rule ids", async () => {
    const { server } = await cirrus({ revokeSecurityGroupEgress: () => ({ Return: true, UnknownIpPermissions: [] }) }, [
      "revoke-security-group-egress", "--group-id", "sg-1", "--security-group-rule-ids", "sgr-1", "sgr-2",
      "--ip-permissions", "IpProtocol=-1,UserIdGroupPairs=[{GroupId=sg-2}]",
    ]);
    expect(server.requests("revokeSecurityGroupEgress")[0]).toEqual(
      compute.RevokeSecurityGroupRequest.fromPartial({ GroupId: "sg-1", SecurityGroupRuleIds: ["sgr-1", "sgr-2"], IpPermissions: [{ IpProtocol: "-1", UserIdGroupPairs: [{ GroupId: "sg-2" }] }] }),
    );
  });

  it("refuses --port together with --ip-permissions (exit 252)", async () => {
    const { code, stderr, server } = await cirrus({}, ["authorize-security-group-ingress", "--group-id", "sg-1", "--port", "22", "--ip-permissions", "IpProtocol=tcp"]);
    expect(code).toBe(252);
    expect(stderr).toContain("The --port option is not compatible with the --ip-permissions option");
    expect(server.calls).toHaveLength(0);
  });

  it("create-vpc --query Vpc.VpcId --output text prints the id; create-subnet maps its flags", async () => {
    const vpc = await cirrus({ createVpc: () => ({ Vpc: { VpcId: "vpc-1", CidrBlock: "10.0.0.0/16", State: "available", IsDefault: false, OwnerId: "1", InstanceTenancy: "default", Tags: [] } }) }, [
      "create-vpc", "--cidr-block", "10.0.0.0/16", "--query", "Vpc.VpcId", "--output", "text",
    ]);
    expect(vpc.stdout).toBe("vpc-1\n");
    await stopServer();
    const subnet = await cirrus({ createSubnet: () => compute.CreateSubnetResponse.fromPartial({}) }, ["create-subnet", "--vpc-id", "vpc-1", "--cidr-block", "10.0.1.0/24", "--availability-zone", "lab-1a"]);
    expect(subnet.server.requests("createSubnet")).toEqual([compute.CreateSubnetRequest.fromPartial({ VpcId: "vpc-1", CidrBlock: "10.0.1.0/24", AvailabilityZone: "lab-1a" })]);
  });

  it("modify-instance-attribute --groups and associate-address --allow-reassociation", async () => {
    const mod = await cirrus({ modifyInstanceAttribute: () => ({}) }, ["modify-instance-attribute", "--instance-id", "i-1", "--groups", "sg-a", "sg-b"]);
    expect(mod.code).toBe(0);
    expect(mod.stdout).toBe("");
    expect(mod.server.requests("modifyInstanceAttribute")).toEqual([compute.ModifyInstanceAttributeRequest.fromPartial({ InstanceId: "i-1", Groups: ["sg-a", "sg-b"] })]);
    await stopServer();
    const assoc = await cirrus({ associateAddress: () => ({ AssociationId: "eipassoc-1" }) }, [
      "associate-address", "--allocation-id", "eipalloc-1", "--instance-id", "i-1", "--allow-reassociation",
    ]);
    expect(JSON.parse(assoc.stdout)).toEqual({ AssociationId: "eipassoc-1" });
    expect(assoc.server.requests("associateAddress")[0]).toMatchObject({ AllocationId: "eipalloc-1", InstanceId: "i-1", AllowReassociation: true });
  });

  it("describe-addresses --output table lists the addresses", async () => {
    const { stdout } = await cirrus(
      { describeAddresses: () => ({ Addresses: [{ PublicIp: "198.18.0.5", AllocationId: "eipalloc-1", AssociationId: "", Domain: "vpc", InstanceId: "", PrivateIpAddress: "", NetworkBorderGroup: "", PublicIpv4Pool: "", Tags: [] }] }) },
      ["describe-addresses", "--output", "table"],
    );
    expect(stdout).toMatch(/198\.18\.0\.5.*eipalloc-1.*vpc/);
  });
});
