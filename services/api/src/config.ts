// API service configuration from the environment, validated at start-up.
import { z } from "zod";

const schema = z.object({
  DATABASE_URL: z.string().default("postgres://postgres@127.0.0.1:5432/cirrus"),
  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  /** BullMQ key prefix: lets several stacks (or test runs) share one Redis. */
  CIRRUS_QUEUE_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]+$/).default("cirrus"),
  /** The compute API. Loopback unless the operator opens it on purpose. */
  CIRRUS_API_LISTEN: z.string().default("127.0.0.1:50051"),
  /** HostControl, the agent-facing API. */
  CIRRUS_CONTROL_LISTEN: z.string().default("127.0.0.1:50052"),
  CIRRUS_ENROLMENT_TOKEN: z.string().min(16, "CIRRUS_ENROLMENT_TOKEN must be at least 16 characters"),
  CIRRUS_REGION: z.string().regex(/^[a-z0-9-]+$/).default("lab-1"),
  /** Comma-separated availability zones of the region. */
  CIRRUS_ZONES: z.string().default("lab-1a"),
  CIRRUS_ACCOUNT_ID: z.string().regex(/^\d{12}$/).default("123456789012"),
  /** A host whose last heartbeat is older than this takes no new instances. */
  CIRRUS_HOST_DEAD_AFTER_MS: z.coerce.number().int().positive().default(30_000),
  /** Drift reported by an agent is applied only to instances whose state is older than this. */
  CIRRUS_DRIFT_GRACE_MS: z.coerce.number().int().nonnegative().default(10_000),
  CIRRUS_PLACEMENT_STRATEGY: z.enum(["spread", "pack"]).default("spread"),
  /** Optional JSON file overriding the instance type catalogue. */
  CIRRUS_INSTANCE_TYPES_FILE: z.string().optional(),
  /** CIDR of each account's default VPC; default subnets are /20s of it, one per zone (as in AWS). */
  CIRRUS_DEFAULT_VPC_CIDR: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/(1[6-9]|2[0-8])$/).default("172.31.0.0/16"),
  /** Destination of the egress rule new security groups start with (EC2: 0.0.0.0/0). Tests narrow it to their own networks. */
  CIRRUS_DEFAULT_EGRESS_CIDR: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/).default("0.0.0.0/0"),
  /**
   * Rules naming a source group are expanded to one /32 per member for every
   * instance they apply to (quadratic). Past this many expanded entries on one
   * host, that host's group-sourced rules are left out (fail closed) and an
   * error is logged, instead of exhausting the API's memory.
   */
  CIRRUS_MAX_GROUP_ENTRIES_PER_HOST: z.coerce.number().int().positive().default(200_000),
  /** Comma-separated CIDRs of public addresses for elastic IPs. Empty: no elastic IPs. */
  CIRRUS_ADDRESS_POOL: z.string().default(""),
  /** How long terminated instances stay visible in DescribeInstances. */
  CIRRUS_TERMINATED_VISIBLE_MS: z.coerce.number().int().nonnegative().default(3_600_000),
});

export type ApiConfig = z.infer<typeof schema> & { zones: string[] };

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const parsed = schema.parse(env);
  const zones = parsed.CIRRUS_ZONES.split(",").map((z) => z.trim()).filter(Boolean);
  return { ...parsed, zones };
}
