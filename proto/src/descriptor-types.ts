// The shape of src/gen/descriptors.ts (written by scripts/descriptors.mjs).

/** One member of a compute API message. */
export interface FieldDescriptor {
  /** A scalar type (string, int32, bool, bytes…) or the name of a message in the same package. */
  type: string;
  repeated?: true;
  /** proto3 `optional`: absent and zero are different. */
  optional?: true;
  /** Required in EC2's model (cirrus/options.proto). */
  required?: true;
  /** `type` names a message. */
  message?: true;
  /** The member's comment in compute.proto. */
  comment?: string;
}

export interface MethodDescriptor {
  request: string;
  response: string;
  comment?: string;
}

export interface ComputeDescriptors {
  /** Message name → member name → member, in declaration order. */
  messages: Record<string, Record<string, FieldDescriptor>>;
  /** RPC (EC2 action) name → its messages. */
  methods: Record<string, MethodDescriptor>;
}
