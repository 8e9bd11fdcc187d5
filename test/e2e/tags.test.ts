// CreateTags, DeleteTags and DescribeTags over every resource kind, through
// the real API (fake-driver host) and through the CLI's derived commands.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "../src/stack.js";

const stack = new Stack();
/** One resource of each kind, by EC2 resource type. */
const ids: Record<string, string> = {};

const cirrus = (...args: string[]) => stack.cli(...args);

const code = (p: Promise<unknown>) => p.then(() => "ok", (e: { metadata: { get(k: string): unknown[] } }) => String(e.metadata.get("x-ec2-error-code")[0]));
const tagCount = async () => Number((await stack.pool.query("SELECT count(*) FROM tags")).rows[0].count);
const allTags = async (filters: unknown[] = []) => {
  const out: { Key: string; ResourceId: string; ResourceType: string; Value: string }[] = [];
  let NextToken = "";
  do {
    const page = await stack.call("describeTags", { Filters: filters, MaxResults: 5, NextToken });
    out.push(...page.Tags);
    NextToken = page.NextToken;
  } while (NextToken);
  return out;
};

beforeAll(async () => {
  await stack.start();
  await stack.addAgent({ name: "fake1", driver: "fake", capacity: { vcpus: 8, memoryMib: 8192, diskGib: 100 } });
  ids.image = await stack.registerTestImage();
  ids.instance = (await stack.call("runInstances", { ImageId: ids.image, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 })).Instances[0].InstanceId;
  ids["key-pair"] = (await stack.call("createKeyPair", { KeyName: `k-${stack.runId}` })).KeyPairId;
  ids.vpc = (await stack.call("createVpc", { CidrBlock: "10.250.0.0/16" })).Vpc.VpcId;
  ids.subnet = (await stack.call("createSubnet", { VpcId: ids.vpc, CidrBlock: "10.250.1.0/24" })).Subnet.SubnetId;
  ids["security-group"] = (await stack.call("createSecurityGroup", { GroupName: "tagged", Description: "tags", VpcId: ids.vpc })).GroupId;
  ids["elastic-ip"] = (await stack.call("allocateAddress", {})).AllocationId;
});
afterAll(() => stack.stop());

describe("tags", () => {
  it("CreateTags tags resources of every kind in one call, and each Describe shows them", async () => {
    await stack.call("createTags", { Resources: Object.values(ids), Tags: [{ Key: "team", Value: "blue" }, { Key: "env", Value: "test" }] });
    const tags = await allTags();
    expect(tags.filter((t) => t.Key === "team").map((t) => [t.ResourceType, t.ResourceId]).sort()).toEqual(Object.entries(ids).sort());
    expect((await stack.instance(ids.instance!)).Tags).toEqual([{ Key: "env", Value: "test" }, { Key: "team", Value: "blue" }]);
    expect((await stack.call("describeVpcs", { VpcIds: [ids.vpc] })).Vpcs[0].Tags).toContainEqual({ Key: "team", Value: "blue" });
    expect((await stack.call("describeAddresses", { AllocationIds: [ids["elastic-ip"]] })).Addresses[0].Tags).toContainEqual({ Key: "team", Value: "blue" });
  });

  it("DescribeTags filters by resource-type, resource-id, key and value (with wildcards) and pages exactly once over everything", async () => {
    expect((await allTags([{ Name: "resource-type", Values: ["vpc", "subnet"] }])).map((t) => t.ResourceId).sort()).toEqual([ids.subnet, ids.subnet, ids.vpc, ids.vpc].sort());
    expect(await allTags([{ Name: "resource-id", Values: [ids.instance] }, { Name: "key", Values: ["te*"] }])).toEqual([{ Key: "team", ResourceId: ids.instance, ResourceType: "instance", Value: "blue" }]);
    expect((await allTags([{ Name: "value", Values: ["bl?e"] }])).length).toBe(7);
    const all = await allTags();
    expect(all).toHaveLength(14);
    expect(new Set(all.map((t) => `${t.ResourceId}/${t.Key}`)).size).toBe(14);
    await expect(code(stack.call("describeTags", { Filters: [{ Name: "colour", Values: ["x"] }] }))).resolves.toBe("InvalidParameterValue");
    await expect(code(stack.call("describeTags", { MaxResults: 4 }))).resolves.toBe("InvalidParameterValue");
    await expect(code(stack.call("describeTags", { NextToken: "bogus" }))).resolves.toBe("InvalidNextToken");
  });

  it("CreateTags overwrites a key's value; bad input writes nothing", async () => {
    await stack.call("createTags", { Resources: [ids.vpc], Tags: [{ Key: "team", Value: "red" }] });
    expect(await allTags([{ Name: "resource-id", Values: [ids.vpc] }, { Name: "key", Values: ["team"] }])).toEqual([{ Key: "team", ResourceId: ids.vpc, ResourceType: "vpc", Value: "red" }]);
    const before = await tagCount();
    const many = Array.from({ length: 49 }, (_, i) => ({ Key: `k${i}`, Value: "v" }));
    await expect(code(stack.call("createTags", { Resources: [ids.subnet], Tags: many }))).resolves.toBe("TagLimitExceeded");
    await expect(code(stack.call("createTags", { Resources: [ids.subnet, "i-0123456789abcdef0"], Tags: [{ Key: "x", Value: "y" }] }))).resolves.toBe("InvalidInstanceID.NotFound");
    await expect(code(stack.call("createTags", { Resources: ["bogus-123"], Tags: [{ Key: "x", Value: "y" }] }))).resolves.toBe("InvalidID");
    await expect(code(stack.call("createTags", { Resources: ["sg-xyz"], Tags: [{ Key: "x", Value: "y" }] }))).resolves.toBe("InvalidGroupId.Malformed");
    await expect(code(stack.call("createTags", { Resources: [ids.vpc], Tags: [{ Key: "aws:x", Value: "y" }] }))).resolves.toBe("InvalidParameterValue");
    await expect(code(stack.call("createTags", { Resources: [], Tags: [{ Key: "x", Value: "y" }] }))).resolves.toBe("MissingParameter");
    expect(await tagCount()).toBe(before);
  });

  it("DeleteTags by key, by key and value, or every tag", async () => {
    await stack.call("deleteTags", { Resources: [ids.image], Tags: [{ Key: "team", Value: "green" }] });
    expect((await allTags([{ Name: "resource-id", Values: [ids.image] }])).map((t) => t.Key)).toEqual(["env", "team"]);
    await stack.call("deleteTags", { Resources: [ids.image], Tags: [{ Key: "team", Value: "blue" }] });
    expect((await allTags([{ Name: "resource-id", Values: [ids.image] }])).map((t) => t.Key)).toEqual(["env"]);
    await stack.call("deleteTags", { Resources: [ids["key-pair"]], Tags: [{ Key: "env" }] });
    expect((await allTags([{ Name: "resource-id", Values: [ids["key-pair"]] }])).map((t) => t.Key)).toEqual(["team"]);
    await stack.call("deleteTags", { Resources: [ids["security-group"]] });
    expect(await allTags([{ Name: "resource-id", Values: [ids["security-group"]] }])).toEqual([]);
  });

  it("the CLI's create-tags, describe-tags and delete-tags come from the operation table", async () => {
    const create = await cirrus("create-tags", "--resources", ids.subnet!, "--tags", "Key=Name,Value=web", "Key=tier,Value=front");
    expect(create.code, create.stderr).toBe(0);
    expect(create.stdout).toBe("");
    const desc = await cirrus("describe-tags", "--filters", `Name=resource-id,Values=${ids.subnet}`, "Name=key,Values=Name,tier");
    expect(desc.code, desc.stderr).toBe(0);
    expect(JSON.parse(desc.stdout)).toEqual({ Tags: [
      { Key: "Name", ResourceId: ids.subnet, ResourceType: "subnet", Value: "web" },
      { Key: "tier", ResourceId: ids.subnet, ResourceType: "subnet", Value: "front" },
    ] });
    expect((await cirrus("delete-tags", "--resources", ids.subnet!, "--tags", "Key=tier")).code).toBe(0);
    expect(JSON.parse((await cirrus("describe-tags", "--filters", `Name=resource-id,Values=${ids.subnet}`, "--query", "Tags[].Key")).stdout).sort()).toEqual(["Name", "env", "team"]);
    const missing = await cirrus("create-tags", "--tags", "Key=a,Value=b");
    expect(missing.code).toBe(252);
    expect(missing.stderr).toContain("--resources");
  });
});
