// Instance commands: run, describe, start/stop/reboot/terminate, console output.
import { compute } from "@cirrus/proto";
import type { ComputeApi, Rpc } from "../client.js";
import { defineCommand, fetchAllPages, type AnyCommandSpec } from "../command.js";
import { ServiceError } from "../errors.js";
import { grid, type Columns } from "../output.js";
import type { JsonMessageFns, ParamSpec } from "../params.js";
import type { Observation, WaitTarget } from "../wait.js";
import { FILTERS, MAX_RESULTS, NEXT_TOKEN, TAG_SPECIFICATIONS } from "./common-params.js";

const api = compute.ComputeService;

/** The columns of an instance table. */
export const INSTANCE_COLUMNS: Columns<compute.Instance> = {
  InstanceId: (i) => i.InstanceId,
  State: (i) => i.State?.Name,
  InstanceType: (i) => i.InstanceType,
  ImageId: (i) => i.ImageId,
  AvailabilityZone: (i) => i.Placement?.AvailabilityZone,
  PrivateIpAddress: (i) => i.PrivateIpAddress,
  PublicIpAddress: (i) => i.PublicIpAddress,
  LaunchTime: (i) => i.LaunchTime,
  Name: (i) => i.Tags.find((t) => t.Key === "Name")?.Value,
};

const STATE_CHANGE_COLUMNS: Columns<compute.InstanceStateChange> = {
  InstanceId: (c) => c.InstanceId,
  PreviousState: (c) => c.PreviousState?.Name,
  CurrentState: (c) => c.CurrentState?.Name,
};

const INSTANCE_IDS: ParamSpec = { flag: "instance-ids", kind: "string-list", description: "instance IDs (space- or comma-separated)", required: true };

/** What the waiter sees of an instance, keeping the instance for the final output. */
type Seen = Observation & { instance: compute.Instance };

async function describeAll(client: ComputeApi, ids: readonly string[]): Promise<compute.Instance[]> {
  const request = compute.DescribeInstancesRequest.fromPartial({ InstanceIds: [...ids] });
  const response = await fetchAllPages(client, api.describeInstances, request, "Reservations");
  return response.Reservations.flatMap((r) => r.Instances);
}

function isNotFound(err: unknown): boolean {
  return err instanceof ServiceError && err.code === "InvalidInstanceID.NotFound";
}

/**
 * The waiter's view of `ids`. DescribeInstances fails as a whole when one id
 * is unknown, so on NotFound each id is asked for alone to learn which are gone.
 */
async function observeInstances(client: ComputeApi, ids: readonly string[]): Promise<Map<string, Seen>> {
  let instances: compute.Instance[];
  try {
    instances = await describeAll(client, ids);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    instances = [];
    for (const id of ids) instances.push(...(await describeAll(client, [id]).catch((e: unknown) => (isNotFound(e) ? [] : Promise.reject(e)))));
  }
  return new Map(
    instances.map((i) => [
      i.InstanceId,
      { state: i.State?.Name ?? "", instance: i, ...(i.StateReason?.Message ? { reason: i.StateReason.Message } : {}) },
    ]),
  );
}

/** Start/stop/terminate: the same request and response shapes under different names. */
function stateChangeCommand<Req, K extends string, Res extends Record<K, compute.InstanceStateChange[]>>(o: {
  name: string;
  summary: string;
  rpc: Rpc<Req, Res>;
  request: JsonMessageFns<Req>;
  response: { toJSON(m: Res): unknown };
  listKey: K;
  target: WaitTarget;
  params?: ParamSpec[];
}): AnyCommandSpec {
  return defineCommand<Req, Res, Seen>({
    name: o.name,
    summary: o.summary,
    rpc: o.rpc,
    request: o.request,
    response: o.response,
    params: [INSTANCE_IDS, ...(o.params ?? [])],
    listKey: o.listKey,
    table: (res) => grid(res[o.listKey], STATE_CHANGE_COLUMNS),
    wait: {
      target: o.target,
      instanceIds: (_req, res) => res[o.listKey].map((c) => c.InstanceId),
      observe: observeInstances,
      // Same shape as without --wait; CurrentState becomes the state reached.
      finalize: (res, seen) => ({
        ...res,
        [o.listKey]: res[o.listKey].map((c) => {
          const state = seen.get(c.InstanceId)?.instance.State;
          return state ? { ...c, CurrentState: state } : c;
        }),
      }),
    },
  });
}

export const instanceCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "run-instances",
    summary: "Launch instances from an image",
    rpc: api.runInstances,
    request: compute.RunInstancesRequest,
    response: compute.Reservation,
    params: [
      { flag: "image-id", kind: "string", description: "the image (ami-…) to launch" },
      { flag: "instance-type", kind: "string", description: "the instance type, e.g. t3.micro" },
      { flag: "count", kind: "count", description: "N instances, or MIN:MAX (at least MIN, up to MAX)", defaultValue: "1" },
      { flag: "client-token", kind: "string", description: "idempotency token: retrying with the same token launches nothing new" },
      { flag: "placement", kind: "structure", description: "AvailabilityZone=<zone>" },
      TAG_SPECIFICATIONS,
      { flag: "user-data", kind: "blob", description: "user data text, or file://path (base64-encoded for you)" },
      { flag: "key-name", kind: "string", description: "the key pair to install" },
      { flag: "security-group-ids", kind: "string-list", description: "security group IDs" },
      { flag: "subnet-id", kind: "string", description: "the subnet to launch into" },
    ],
    listKey: "Instances",
    table: (res) => grid(res.Instances, INSTANCE_COLUMNS),
    wait: {
      target: "running",
      instanceIds: (_req, res) => res.Instances.map((i) => i.InstanceId),
      observe: observeInstances,
      finalize: (res, seen) => ({ ...res, Instances: res.Instances.map((i) => seen.get(i.InstanceId)?.instance ?? i) }),
    },
  }),
  defineCommand({
    name: "describe-instances",
    summary: "Describe instances (all pages unless --max-results or --next-token is given)",
    rpc: api.describeInstances,
    request: compute.DescribeInstancesRequest,
    response: compute.DescribeInstancesResponse,
    params: [
      { ...INSTANCE_IDS, required: false },
      FILTERS("instance-state-name, instance-type, image-id, availability-zone, tag:<key>, tag-key, …"),
      MAX_RESULTS,
      NEXT_TOKEN,
    ],
    listKey: "Reservations",
    paginate: true,
    table: (res) => grid(res.Reservations.flatMap((r) => r.Instances), INSTANCE_COLUMNS),
  }),
  stateChangeCommand({
    name: "start-instances",
    summary: "Start stopped instances",
    rpc: api.startInstances,
    request: compute.StartInstancesRequest,
    response: compute.StartInstancesResponse,
    listKey: "StartingInstances",
    target: "running",
  }),
  stateChangeCommand({
    name: "stop-instances",
    summary: "Stop running instances",
    rpc: api.stopInstances,
    request: compute.StopInstancesRequest,
    response: compute.StopInstancesResponse,
    listKey: "StoppingInstances",
    target: "stopped",
    params: [{ flag: "force", kind: "flag", description: "power off at once, skipping the graceful shutdown" }],
  }),
  defineCommand<compute.RebootInstancesRequest, compute.RebootInstancesResponse, Seen>({
    name: "reboot-instances",
    summary: "Reboot running instances",
    rpc: api.rebootInstances,
    request: compute.RebootInstancesRequest,
    response: compute.RebootInstancesResponse,
    params: [INSTANCE_IDS],
    wait: {
      target: "running",
      // The response is empty, so the instances are the ones asked for.
      instanceIds: (req) => req.InstanceIds,
      observe: observeInstances,
      finalize: (res) => res,
    },
  }),
  stateChangeCommand({
    name: "terminate-instances",
    summary: "Terminate instances",
    rpc: api.terminateInstances,
    request: compute.TerminateInstancesRequest,
    response: compute.TerminateInstancesResponse,
    listKey: "TerminatingInstances",
    target: "terminated",
  }),
  defineCommand({
    name: "modify-instance-attribute",
    summary: "Change an instance's security groups (--groups replaces the whole set)",
    rpc: api.modifyInstanceAttribute,
    request: compute.ModifyInstanceAttributeRequest,
    response: compute.ModifyInstanceAttributeResponse,
    params: [
      { flag: "instance-id", kind: "string", description: "the instance", required: true },
      { flag: "groups", kind: "string-list", description: "the security group IDs the instance should have", required: true },
    ],
  }),
  defineCommand({
    name: "get-console-output",
    summary: "Show an instance's serial console output",
    rpc: api.getConsoleOutput,
    request: compute.GetConsoleOutputRequest,
    response: compute.GetConsoleOutputResponse,
    params: [
      { flag: "instance-id", kind: "string", description: "the instance", required: true },
      { flag: "latest", kind: "flag", description: "the most recent output rather than the output since boot" },
    ],
    // The API returns base64, as EC2 does; the aws CLI prints it decoded.
    present: (json) => (typeof json.Output === "string" ? { ...json, Output: decodeBase64(json.Output) } : json),
    raw: (res) => decodeBase64(res.Output),
  }),
];

function decodeBase64(text: string): string {
  return Buffer.from(text, "base64").toString("utf8");
}
