// Images are private unless shared, against a real Postgres: another
// account neither sees nor launches a private image (InvalidAMIID.NotFound,
// as for one that does not exist); launch permissions share it with an
// account or with all, by ModifyImageAttribute's LaunchPermission or its
// flat form; DescribeImages' Owners, ExecutableUsers, is-public and Public;
// only the owner reads or changes an image's attributes (AuthFailure for an
// image it sees but does not own).
import { compute } from "@cirrus/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../src/context.js";
import { Ec2Error } from "../src/errors.js";
import { ensureDefaultNetwork } from "../src/network/vpcs.js";
import { operationNamed } from "../src/operations.js";
import { addHost, addImage, testCore, type TestCore } from "./pg.js";

const A: Principal = { accountId: "123456789012", operator: false };
const B: Principal = { accountId: "210987654321", operator: false };
const C: Principal = { accountId: "333333333333", operator: false };

let t: TestCore;
beforeAll(async () => {
  t = await testCore();
  await addHost(t.core, "share", { vcpus: 64, memoryMib: 65536, diskGib: 640 });
  for (const p of [B, C]) await ensureDefaultNetwork(t.core, p.accountId);
});
afterAll(() => t?.close());

const call = <Res = any>(p: Principal, name: string, req: unknown): Promise<Res> => {
  const op = operationNamed(name)!;
  return op.handler(t.ctx(p), op.request.fromPartial(req as never));
};
const refusal = (p: Promise<unknown>) => p.then(() => undefined, (err: Ec2Error) => ({ code: err.code, message: err.message }));
const imageIds = async (p: Principal, req: unknown = {}) => (await call<compute.DescribeImagesResponse>(p, "DescribeImages", req)).Images.map((i) => i.ImageId);
const launch = (p: Principal, imageId: string) => call<compute.Reservation>(p, "RunInstances", { ImageId: imageId, InstanceType: "t2.nano", MinCount: 1, MaxCount: 1 });
const permissions = async (imageId: string) =>
  (await call<compute.ImageAttribute>(A, "DescribeImageAttribute", { ImageId: imageId, Attribute: "launchPermission" })).LaunchPermissions;

describe("a private image", () => {
  it("is invisible to other accounts: describing, launching or changing it answers InvalidAMIID.NotFound, as for an image that does not exist", async () => {
    const image = await addImage(t.core, A.accountId);
    const absent = "ami-0000000000000000a";
    const asIfAbsent = async (p: Promise<unknown>, q: Promise<unknown>) => {
      const [got, none] = await Promise.all([refusal(p), refusal(q)]);
      expect(got).toEqual({ code: "InvalidAMIID.NotFound", message: none!.message.replace(absent, image) });
    };
    expect(await imageIds(A)).toContain(image);
    expect(await imageIds(B)).not.toContain(image);
    await asIfAbsent(call(B, "DescribeImages", { ImageIds: [image] }), call(B, "DescribeImages", { ImageIds: [absent] }));
    await asIfAbsent(launch(B, image), launch(B, absent));
    await asIfAbsent(call(B, "DeregisterImage", { ImageId: image }), call(B, "DeregisterImage", { ImageId: absent }));
    await asIfAbsent(
      call(B, "ModifyImageAttribute", { ImageId: image, LaunchPermission: { Add: [{ UserId: B.accountId }] } }),
      call(B, "ModifyImageAttribute", { ImageId: absent, LaunchPermission: { Add: [{ UserId: B.accountId }] } }),
    );
    await asIfAbsent(call(B, "DescribeImageAttribute", { ImageId: image, Attribute: "launchPermission" }), call(B, "DescribeImageAttribute", { ImageId: absent, Attribute: "launchPermission" }));
    await asIfAbsent(call(B, "ResetImageAttribute", { ImageId: image, Attribute: "launchPermission" }), call(B, "ResetImageAttribute", { ImageId: absent, Attribute: "launchPermission" }));
    expect((await call<compute.DescribeImagesResponse>(A, "DescribeImages", { ImageIds: [image] })).Images[0]!.Public).toBe(false);
    expect(await permissions(image)).toEqual([]);
  });
});

describe("an image shared with one account", () => {
  it("is seen (without its owner's tags) and launched by that account only, which may not change it (AuthFailure)", async () => {
    const image = await addImage(t.core, A.accountId);
    await call(A, "CreateTags", { Resources: [image], Tags: [{ Key: "Name", Value: "golden" }] });
    await call(A, "ModifyImageAttribute", { ImageId: image, LaunchPermission: { Add: [{ UserId: B.accountId }] } });
    expect(await permissions(image)).toEqual([{ Group: "", UserId: B.accountId }]);

    const [seen] = (await call<compute.DescribeImagesResponse>(B, "DescribeImages", { ImageIds: [image] })).Images;
    expect(seen).toMatchObject({ ImageId: image, OwnerId: A.accountId, Public: false, Tags: [] });
    expect(await imageIds(B, { Filters: [{ Name: "tag:Name", Values: ["golden"] }] })).toEqual([]);
    expect(await imageIds(A, { Filters: [{ Name: "tag:Name", Values: ["golden"] }] })).toEqual([image]);
    const reservation = await launch(B, image);
    expect(reservation).toMatchObject({ OwnerId: B.accountId, Instances: [{ ImageId: image }] });

    expect(await imageIds(C)).not.toContain(image);
    expect(await refusal(launch(C, image))).toMatchObject({ code: "InvalidAMIID.NotFound" });

    const notAuthorized = { code: "AuthFailure", message: `Not authorized for image:${image}` };
    expect(await refusal(call(B, "DeregisterImage", { ImageId: image }))).toEqual(notAuthorized);
    expect(await refusal(call(B, "ModifyImageAttribute", { ImageId: image, Description: { Value: "mine now" } }))).toEqual(notAuthorized);
    expect(await refusal(call(B, "DescribeImageAttribute", { ImageId: image, Attribute: "description" }))).toEqual(notAuthorized);
    expect(await refusal(call(B, "ResetImageAttribute", { ImageId: image, Attribute: "launchPermission" }))).toEqual(notAuthorized);
    expect(await permissions(image)).toEqual([{ Group: "", UserId: B.accountId }]);

    await call(A, "ModifyImageAttribute", { ImageId: image, LaunchPermission: { Remove: [{ UserId: B.accountId }] } });
    expect(await imageIds(B)).not.toContain(image);
  });

  it("is selected by Owners (self, account ids, amazon: none) and ExecutableUsers (explicit permissions only)", async () => {
    const image = await addImage(t.core, A.accountId);
    await call(A, "ModifyImageAttribute", { ImageId: image, Attribute: "launchPermission", OperationType: "add", UserIds: [B.accountId] });
    expect(await imageIds(B, { ExecutableUsers: ["self"] })).toContain(image);
    expect(await imageIds(B, { ExecutableUsers: [B.accountId] })).toContain(image);
    expect(await imageIds(B, { Owners: [A.accountId] })).toContain(image);
    expect(await imageIds(B, { Owners: ["self"] })).not.toContain(image);
    expect(await imageIds(A, { Owners: ["self"] })).toContain(image);
    // The owner's own launch permission is implicit: not "executable by self".
    expect(await imageIds(A, { ExecutableUsers: ["self"] })).not.toContain(image);
    expect(await imageIds(A, { ExecutableUsers: [B.accountId] })).toEqual([image]);
    expect(await imageIds(A, { ExecutableUsers: ["all"] })).not.toContain(image);
    expect(await imageIds(B, { Owners: ["amazon"] })).toEqual([]);
    expect(await refusal(call(B, "DescribeImages", { Owners: ["someone"] }))).toMatchObject({ code: "InvalidUserID.Malformed" });
    expect(await refusal(call(B, "DescribeImages", { ExecutableUsers: ["12345"] }))).toMatchObject({ code: "InvalidUserID.Malformed" });
  });
});

describe("a public image", () => {
  it("is seen and launched by every account with Public true, until Remove or Reset makes it private again", async () => {
    const image = await addImage(t.core, A.accountId);
    await call(A, "ModifyImageAttribute", { ImageId: image, Attribute: "launchPermission", OperationType: "add", UserGroups: ["all"] });
    await call(A, "ModifyImageAttribute", { ImageId: image, LaunchPermission: { Add: [{ UserId: C.accountId }, { Group: "all" }] } });
    expect(await permissions(image)).toEqual([{ Group: "all", UserId: "" }, { Group: "", UserId: C.accountId }]);
    const [seen] = (await call<compute.DescribeImagesResponse>(B, "DescribeImages", { ImageIds: [image] })).Images;
    expect(seen).toMatchObject({ ImageId: image, Public: true });
    expect(await imageIds(B, { Filters: [{ Name: "is-public", Values: ["true"] }] })).toContain(image);
    expect(await imageIds(B, { Filters: [{ Name: "is-public", Values: ["false"] }] })).not.toContain(image);
    expect(await imageIds(B, { ExecutableUsers: ["all"] })).toContain(image);
    await launch(B, image);

    await call(A, "ModifyImageAttribute", { ImageId: image, Attribute: "launchPermission", OperationType: "remove", UserGroups: ["all"] });
    expect(await imageIds(B)).not.toContain(image);
    expect(await imageIds(C)).toContain(image);
    await call(A, "ModifyImageAttribute", { ImageId: image, LaunchPermission: { Add: [{ Group: "all" }] } });
    await call(A, "ResetImageAttribute", { ImageId: image, Attribute: "launchPermission" });
    expect(await permissions(image)).toEqual([]);
    expect(await imageIds(C)).not.toContain(image);
  });

  it("stops being launchable once deregistered, and only its owner may deregister it", async () => {
    const image = await addImage(t.core, A.accountId);
    await call(A, "ModifyImageAttribute", { ImageId: image, LaunchPermission: { Add: [{ Group: "all" }] } });
    expect(await refusal(call(B, "DeregisterImage", { ImageId: image }))).toMatchObject({ code: "AuthFailure" });
    await call(A, "DeregisterImage", { ImageId: image });
    expect(await imageIds(B)).not.toContain(image);
    expect(await refusal(launch(B, image))).toMatchObject({ code: "InvalidAMIID.NotFound" });
  });
});

describe("ModifyImageAttribute", () => {
  it("refuses launch permissions that are neither the group all nor a 12-digit account id, writing nothing", async () => {
    const image = await addImage(t.core, A.accountId);
    const modify = (req: object) => refusal(call(A, "ModifyImageAttribute", { ImageId: image, ...req }));
    expect(await modify({ LaunchPermission: { Add: [{ Group: "everyone" }] } })).toEqual({ code: "InvalidAMIAttributeItemValue", message: 'Invalid attribute item value "everyone" for group item type.' });
    expect(await modify({ OperationType: "add", UserIds: [B.accountId, "12345678901A"] })).toMatchObject({ code: "InvalidAMIAttributeItemValue" });
    expect(await modify({ LaunchPermission: { Add: [{}] } })).toMatchObject({ code: "InvalidAMIAttributeItemValue" });
    expect(await permissions(image)).toEqual([]);
    expect(await modify({ OperationType: "grant", UserIds: [B.accountId] })).toMatchObject({ code: "InvalidParameterValue" });
    expect(await modify({ Attribute: "launchPermission", OperationType: "add" })).toMatchObject({ code: "MissingParameter" });
    expect(await modify({ Attribute: "launchPermission", UserIds: [B.accountId] })).toMatchObject({ code: "MissingParameter" });
    expect(await modify({})).toMatchObject({ code: "MissingParameter" });
    expect(await modify({ LaunchPermission: { Add: [{ Group: "all" }] }, OperationType: "add", UserIds: [B.accountId] })).toMatchObject({ code: "InvalidParameterCombination" });
    expect(await modify({ LaunchPermission: { Add: [{ Group: "all" }] }, Description: { Value: "x" } })).toMatchObject({ code: "InvalidParameterCombination" });
    expect(await modify({ Attribute: "productCodes", Value: "x" })).toMatchObject({ code: "Unsupported" });
    expect(await modify({ Attribute: "colour", Value: "x" })).toMatchObject({ code: "InvalidParameterValue" });
    expect(await permissions(image)).toEqual([]);
  });

  it("sets the description (Description, or Attribute=description with Value), which DescribeImageAttribute and DescribeImages show", async () => {
    const image = await addImage(t.core, A.accountId);
    const description = async () => (await call<compute.ImageAttribute>(A, "DescribeImageAttribute", { ImageId: image, Attribute: "description" })).Description?.Value;
    await call(A, "ModifyImageAttribute", { ImageId: image, Description: { Value: "golden image" } });
    expect(await description()).toBe("golden image");
    await call(A, "ModifyImageAttribute", { ImageId: image, Attribute: "description", Value: "flat form" });
    expect(await description()).toBe("flat form");
    expect((await call<compute.DescribeImagesResponse>(A, "DescribeImages", { ImageIds: [image] })).Images[0]!.Description).toBe("flat form");
    expect(await refusal(call(A, "ModifyImageAttribute", { ImageId: image, Description: { Value: "x".repeat(256) } }))).toMatchObject({ code: "InvalidParameterValue" });
  });
});

describe("DescribeImageAttribute and ResetImageAttribute", () => {
  it("answer launchPermission, description and blockDeviceMapping, reset only launchPermission, and name what they do not serve", async () => {
    const image = await addImage(t.core, A.accountId);
    expect(await call(A, "DescribeImageAttribute", { ImageId: image, Attribute: "blockDeviceMapping" })).toMatchObject({
      ImageId: image, BlockDeviceMappings: [{ DeviceName: "/dev/vda", Ebs: { VolumeSize: 1, DeleteOnTermination: true } }],
    });
    expect(await refusal(call(A, "DescribeImageAttribute", { ImageId: image, Attribute: "bootMode" }))).toMatchObject({ code: "Unsupported" });
    expect(await refusal(call(A, "DescribeImageAttribute", { ImageId: image, Attribute: "colour" }))).toMatchObject({ code: "InvalidParameterValue" });
    expect(await refusal(call(A, "DescribeImageAttribute", { ImageId: image }))).toMatchObject({ code: "MissingParameter" });
    expect(await refusal(call(A, "ResetImageAttribute", { ImageId: image, Attribute: "description" }))).toMatchObject({ code: "InvalidParameterValue" });
    expect(await refusal(call(A, "DescribeImageAttribute", { ImageId: "ami-nothex", Attribute: "description" }))).toMatchObject({ code: "InvalidAMIID.Malformed" });
  });
});
