// Configuration of the control plane's processes (API and worker), from the
// environment, validated at start-up with zod: every error at once.
import { dirListProblem, parseExactCidr } from "@cirrus/common";
import { z } from "zod";

const cidr = (what: string) => z.string().refine((v) => parseExactCidr(v) !== undefined, `${what} must be an IPv4 CIDR block without host bits, e.g. 10.0.0.0/16`);

/** Where the processes keep their state. */
export const connectionSchema = z.object({
  DATABASE_URL: z.string().default("postgres://postgres@127.0.0.1:5432/cirrus"),
  /**
   * Longest a Postgres statement may run before the server cancels it (the
   * caller gets an error, its transaction rolls back): a stuck query or a
   * lock wait never holds a connection for ever. Above the slowest
   * legitimate statement (the inserts of one RunInstances of 100,000).
   */
  CIRRUS_DB_STATEMENT_TIMEOUT_MS: z.coerce.number().int().positive().default(60_000),
  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  /** BullMQ key prefix: lets several stacks (or test runs) share one Redis. */
  CIRRUS_QUEUE_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]+$/).default("cirrus"),
});

/** What the core's operations and lifecycles need to know about the cloud. */
export const coreConfigSchema = z.object({
  /** The compute API (gRPC). Loopback unless the operator opens it on purpose; DescribeRegions names it as the region's endpoint. */
  CIRRUS_API_LISTEN: z.string().default("127.0.0.1:50051"),
  CIRRUS_REGION: z.string().regex(/^[a-z0-9-]+$/).default("lab-1"),
  /** Comma-separated availability zones of the region. */
  CIRRUS_ZONES: z.string().regex(/^[a-z0-9-]+(,[a-z0-9-]+)*$/, "CIRRUS_ZONES is a comma-separated list of zone names").default("lab-1a"),
  /** A host whose last heartbeat is older than this takes no new instances. */
  CIRRUS_HOST_DEAD_AFTER_MS: z.coerce.number().int().positive().default(30_000),
  /** Drift reported by an agent is applied only to instances whose state is older than this. */
  CIRRUS_DRIFT_GRACE_MS: z.coerce.number().int().nonnegative().default(10_000),
  CIRRUS_PLACEMENT_STRATEGY: z.enum(["spread", "pack"]).default("spread"),
  /** Optional JSON file overriding the instance type catalogue. */
  CIRRUS_INSTANCE_TYPES_FILE: z.string().optional(),
  /**
   * The largest VPC (smallest prefix) CreateVpc accepts. EC2 stops at /16; a
   * private cloud may need more addresses in one VPC (down to /8).
   */
  CIRRUS_VPC_MIN_PREFIX: z.coerce.number().int().min(8).max(16).default(16),
  /** CIDR of each account's default VPC; default subnets are /20s of it, one per zone (as in AWS). */
  CIRRUS_DEFAULT_VPC_CIDR: cidr("CIRRUS_DEFAULT_VPC_CIDR").default("172.31.0.0/16"),
  /** Destination of the egress rule new security groups start with (EC2: 0.0.0.0/0). Tests narrow it to their own networks. */
  CIRRUS_DEFAULT_EGRESS_CIDR: cidr("CIRRUS_DEFAULT_EGRESS_CIDR").default("0.0.0.0/0"),
  /**
   * Rules naming a source group are expanded to one /32 per member for every
   * instance they apply to (quadratic). Past this many expanded entries on one
   * host, that host's group-sourced rules are left out (fail closed) and an
   * error is logged, instead of exhausting the API's memory.
   */
  CIRRUS_MAX_GROUP_ENTRIES_PER_HOST: z.coerce.number().int().positive().default(200_000),
  /**
   * RunInstances transactions one process runs at once; the rest wait their
   * turn in order. Each holds claim locks on the hosts it places on until it
   * commits: past a few in flight, launches mostly plan around each other and
   * compete for the same CPU and WAL (docs/benchmarks.md, bench/scale).
   */
  CIRRUS_PLACEMENT_CONCURRENCY: z.coerce.number().int().positive().default(4),
  /** Comma-separated CIDRs of public addresses for elastic IPs. Empty: no elastic IPs. */
  CIRRUS_ADDRESS_POOL: z.string().default(""),
  /**
   * Comma-separated directories RegisterImage takes image files from (kernel,
   * initrd and root disk), symlinks followed; nothing outside them, such as
   * instances' disks or an agent's secrets, can be registered as an image.
   */
  CIRRUS_IMAGE_DIRS: z.string().refine((v) => dirListProblem(v) === undefined, (v) => ({ message: `must be a comma-separated list of absolute directories: ${dirListProblem(v)}` })).default("/var/lib/cirrus/images"),
  /**
   * The operator's 32-byte key that access keys' secrets are sealed under
   * (secrets.ts). Back it up with the database: without it no key verifies.
   */
  CIRRUS_SECRETS_KEY_FILE: z.string().default("/var/lib/cirrus/secrets.key"),
  /** How long terminated instances stay visible in DescribeInstances. */
  CIRRUS_TERMINATED_VISIBLE_MS: z.coerce.number().int().nonnegative().default(3_600_000),
});

export type CoreConfig = z.infer<typeof coreConfigSchema> & { zones: string[] };

/** The parsed core settings plus the zone list. */
export function withZones<T extends z.infer<typeof coreConfigSchema>>(parsed: T): T & { zones: string[] } {
  return { ...parsed, zones: parsed.CIRRUS_ZONES.split(",") };
}
