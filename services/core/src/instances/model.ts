// The instance kind: its row, EC2's state names and codes, Describe filters,
// and the row → API mapping (instances show their tags, elastic IP and
// security groups besides their own row).
import type { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import type { Queryable } from "../db/tx.js";
import { Ec2Error } from "../errors.js";
import { defineKind } from "../resource.js";
import { loadTags } from "../tags.js";

export const STATE_CODES = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
} as const;

export type InstanceStateName = keyof typeof STATE_CODES;

/** The lifecycle step an instance has in flight (instances.task). */
export type InstanceTask = "launch" | "start" | "stop" | "reboot" | "terminate";

export interface InstanceRow {
  id: string;
  row_seq: string;
  reservation_id: string;
  owner_id: string;
  image_id: string;
  instance_type: string;
  vcpus: number;
  memory_mib: number;
  disk_gib: number;
  host_id: string | null;
  availability_zone: string;
  state: InstanceStateName;
  task: InstanceTask | null;
  task_seq: number;
  stop_force: boolean;
  state_reason_code: string;
  state_reason_message: string;
  state_transition_reason: string;
  launch_index: number;
  client_token: string;
  user_data: string;
  launched_at: Date;
  state_changed_at: Date;
  terminated_at: Date | null;
  vpc_id: string | null;
  subnet_id: string | null;
  /** inet as text; a host address prints without its /32. */
  private_ip: string | null;
  key_name: string;
  public_key: string;
  /** What a guest that powers itself off becomes. */
  shutdown_behavior: "stop" | "terminate";
}

/** What an instance shows besides its own row. */
export interface InstanceExtras {
  tags: Map<string, compute.Tag[]>;
  publicIps: Map<string, string>;
  groups: Map<string, compute.GroupIdentifier[]>;
  volumes: Map<string, compute.InstanceBlockDeviceMapping[]>;
}

/** What an instance shows of a volume attached to it. */
export interface AttachedVolume {
  instance_id: string;
  id: string;
  device: string;
  attach_time: Date;
  delete_on_termination: boolean;
  attachment_state: string;
}

/** Attached volumes (in target order) as their instances show them, by instance. */
export function blockDevicesByInstance(volumes: readonly AttachedVolume[]): Map<string, compute.InstanceBlockDeviceMapping[]> {
  const out = new Map<string, compute.InstanceBlockDeviceMapping[]>();
  for (const v of volumes) {
    const mapping = { DeviceName: v.device, Ebs: { AttachTime: v.attach_time.toISOString(), DeleteOnTermination: v.delete_on_termination, Status: v.attachment_state, VolumeId: v.id } };
    const list = out.get(v.instance_id);
    if (list) list.push(mapping);
    else out.set(v.instance_id, [mapping]);
  }
  return out;
}

/** Tags, elastic IPs, security groups and volumes of these instances. */
export async function loadExtras(db: Queryable, ids: readonly string[]): Promise<InstanceExtras> {
  const [tags, eips, groups, volumes] = await Promise.all([
    loadTags(db, ids),
    db.query<{ instance_id: string; ip: string }>("SELECT instance_id, host(public_ip) AS ip FROM addresses WHERE instance_id = ANY($1)", [ids]),
    db.query<{ instance_id: string; id: string; name: string }>(
      "SELECT m.instance_id, g.id, g.name FROM instance_security_groups m JOIN security_groups g ON g.id = m.group_id WHERE m.instance_id = ANY($1) ORDER BY g.name",
      [ids],
    ),
    db.query<AttachedVolume>(
      "SELECT instance_id, id, device, attach_time, delete_on_termination, attachment_state FROM volumes WHERE instance_id = ANY($1) ORDER BY target",
      [ids],
    ),
  ]);
  const groupMap = new Map<string, compute.GroupIdentifier[]>();
  for (const g of groups.rows) groupMap.set(g.instance_id, [...(groupMap.get(g.instance_id) ?? []), { GroupId: g.id, GroupName: g.name }]);
  return { tags, publicIps: new Map(eips.rows.map((e) => [e.instance_id, e.ip])), groups: groupMap, volumes: blockDevicesByInstance(volumes.rows) };
}

/** Every instance's root disk is its first virtio disk. */
export const ROOT_DEVICE_NAME = "/dev/vda";

export function stateOf(name: InstanceStateName): compute.InstanceState {
  return { Code: STATE_CODES[name], Name: name };
}

export function instanceToProto(r: InstanceRow, x: InstanceExtras): compute.Instance {
  return {
    InstanceId: r.id,
    ImageId: r.image_id,
    State: stateOf(r.state),
    InstanceType: r.instance_type,
    LaunchTime: r.launched_at.toISOString(),
    Placement: { AvailabilityZone: r.availability_zone },
    AmiLaunchIndex: r.launch_index,
    Tags: x.tags.get(r.id) ?? [],
    StateReason: r.state_reason_code ? { Code: r.state_reason_code, Message: r.state_reason_message } : undefined,
    StateTransitionReason: r.state_transition_reason,
    ClientToken: r.client_token,
    Architecture: "x86_64",
    RootDeviceName: ROOT_DEVICE_NAME,
    RootDeviceType: "ebs",
    Hypervisor: "kvm",
    VirtualizationType: "hvm",
    CpuOptions: { CoreCount: r.vcpus, ThreadsPerCore: 1 },
    VpcId: r.vpc_id ?? "",
    SubnetId: r.subnet_id ?? "",
    PrivateIpAddress: r.private_ip ?? "",
    PublicIpAddress: x.publicIps.get(r.id) ?? "",
    KeyName: r.key_name,
    SecurityGroups: x.groups.get(r.id) ?? [],
    // The host's firewall drops whatever an instance sends from another address.
    SourceDestCheck: true,
    BlockDeviceMappings: x.volumes.get(r.id) ?? [],
  };
}

/** Groups instances (already in order) into EC2 reservations, in order of first appearance. */
export function toReservations(rows: readonly InstanceRow[], extras: InstanceExtras): compute.Reservation[] {
  const byId = new Map<string, compute.Reservation>();
  for (const r of rows) {
    let res = byId.get(r.reservation_id);
    if (!res) {
      res = { ReservationId: r.reservation_id, OwnerId: r.owner_id, Groups: [], Instances: [] };
      byId.set(r.reservation_id, res);
    }
    res.Instances.push(instanceToProto(r, extras));
  }
  return [...byId.values()];
}

const stateCodeSql = `CASE instances.state ${Object.entries(STATE_CODES).map(([n, c]) => `WHEN '${n}' THEN ${c}`).join(" ")} END`;

/** InvalidInstanceID.NotFound naming the missing ids, in EC2's singular or plural wording. */
export function instancesNotFound(missing: readonly string[]): Ec2Error {
  return missing.length === 1
    ? new Ec2Error("InvalidInstanceID.NotFound", `The instance ID '${missing[0]}' does not exist`)
    : new Ec2Error("InvalidInstanceID.NotFound", `The instance IDs '${missing.join(", ")}' do not exist`);
}

export const instanceKind = defineKind<InstanceRow, compute.Instance>({
  name: "instance",
  resourceType: "instance",
  idPrefix: "i",
  malformed: "InvalidInstanceID.Malformed",
  table: "instances",
  notFound: instancesNotFound,
  filters: {
    "instance-id": "instances.id",
    "instance-state-name": "instances.state",
    "instance-state-code": stateCodeSql,
    "instance-type": "instances.instance_type",
    "image-id": "instances.image_id",
    "availability-zone": "instances.availability_zone",
    "reservation-id": "instances.reservation_id",
    "client-token": "instances.client_token",
    "launch-index": "instances.launch_index",
    "owner-id": "instances.owner_id",
    "vpc-id": "instances.vpc_id",
    "subnet-id": "instances.subnet_id",
    "private-ip-address": "host(instances.private_ip)",
    "key-name": "instances.key_name",
  },
  // Terminated instances stay visible for a while, as in EC2.
  visible: (ctx: RequestContext, params: unknown[]) =>
    `(instances.state <> 'terminated' OR instances.terminated_at > now() - $${params.push(ctx.config.CIRRUS_TERMINATED_VISIBLE_MS)} * interval '1 millisecond')`,
  orderBy: "row_seq",
  toApi: async (ctx, rows) => {
    const extras = await loadExtras(ctx.db, rows.map((r) => r.id));
    return rows.map((r) => instanceToProto(r, extras));
  },
  states: Object.keys(STATE_CODES),
});
