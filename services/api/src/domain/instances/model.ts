// The instance row, EC2's state names and codes, and the row → API mapping.
import type { compute } from "@cirrus/proto";
import type { LifecycleTask } from "@cirrus/common";

export const STATE_CODES = {
  pending: 0,
  running: 16,
  "shutting-down": 32,
  terminated: 48,
  stopping: 64,
  stopped: 80,
} as const;

export type InstanceStateName = keyof typeof STATE_CODES;

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
  task: LifecycleTask | null;
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
}

export function stateOf(name: InstanceStateName): compute.InstanceState {
  return { Code: STATE_CODES[name], Name: name };
}

export function instanceToProto(r: InstanceRow, tags: compute.Tag[]): compute.Instance {
  return {
    InstanceId: r.id,
    ImageId: r.image_id,
    State: stateOf(r.state),
    InstanceType: r.instance_type,
    LaunchTime: r.launched_at.toISOString(),
    Placement: { AvailabilityZone: r.availability_zone },
    AmiLaunchIndex: r.launch_index,
    Tags: tags,
    StateReason: r.state_reason_code ? { Code: r.state_reason_code, Message: r.state_reason_message } : undefined,
    StateTransitionReason: r.state_transition_reason,
    ClientToken: r.client_token,
    Architecture: "x86_64",
    RootDeviceName: "/dev/vda",
    RootDeviceType: "ebs",
    Hypervisor: "kvm",
    VirtualizationType: "hvm",
    CpuOptions: { CoreCount: r.vcpus, ThreadsPerCore: 1 },
    VpcId: "",
    SubnetId: "",
    PrivateIpAddress: "",
    PublicIpAddress: "",
    KeyName: "",
    SecurityGroups: [],
  };
}

/** Groups instances (already in order) into EC2 reservations, in order of first appearance. */
export function toReservations(rows: readonly InstanceRow[], tags: Map<string, compute.Tag[]>): compute.Reservation[] {
  const byId = new Map<string, compute.Reservation>();
  for (const r of rows) {
    let res = byId.get(r.reservation_id);
    if (!res) {
      res = { ReservationId: r.reservation_id, OwnerId: r.owner_id, Groups: [], Instances: [] };
      byId.set(r.reservation_id, res);
    }
    res.Instances.push(instanceToProto(r, tags.get(r.id) ?? []));
  }
  return [...byId.values()];
}
