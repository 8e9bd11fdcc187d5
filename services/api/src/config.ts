// API service configuration from the environment, validated at start-up.
import { endpointHost } from "@cirrus/common";
import { connectionSchema, coreConfigSchema, withZones } from "@cirrus/core";
import { z } from "zod";

const schema = connectionSchema.merge(coreConfigSchema).extend({
  /** HostControl, the agent-facing API. */
  CIRRUS_CONTROL_LISTEN: z.string().default("127.0.0.1:50052"),
  CIRRUS_ENROLMENT_TOKEN: z.string().min(16, "CIRRUS_ENROLMENT_TOKEN must be at least 16 characters"),
  /** Where the API writes the cluster CA's certificate, for agents' CIRRUS_CONTROL_CA (copy it to every host). */
  CIRRUS_CA_CERT_FILE: z.string().default("/var/lib/cirrus/ca.pem"),
  /** Comma-separated host names and addresses agents reach HostControl by (its certificate names them, and the listen address's host). */
  CIRRUS_CONTROL_NAMES: z.string().default("localhost,127.0.0.1"),
  /** The EC2 Query API (HTTP; HTTPS with the two files below, required beyond loopback). */
  CIRRUS_QUERY_LISTEN: z.string().default("127.0.0.1:8773"),
  CIRRUS_QUERY_TLS_CERT_FILE: z.string().optional(),
  CIRRUS_QUERY_TLS_KEY_FILE: z.string().optional(),
  /** Longest Query request body (EC2's largest inputs, e.g. 16 KiB of user data, are far below it). */
  CIRRUS_QUERY_MAX_BODY_BYTES: z.coerce.number().int().positive().default(2 * 1024 * 1024),
});

export type ApiConfig = ReturnType<typeof loadApiConfig>;

/** The names HostControl's certificate carries: CIRRUS_CONTROL_NAMES and the listen address's host unless it is a wildcard. */
export function controlNames(config: { CIRRUS_CONTROL_NAMES: string; CIRRUS_CONTROL_LISTEN: string }): string[] {
  const listen = endpointHost(config.CIRRUS_CONTROL_LISTEN);
  return [...config.CIRRUS_CONTROL_NAMES.split(",").map((n) => n.trim()).filter(Boolean), ...(listen === "0.0.0.0" || listen === "::" ? [] : [listen])];
}

/** The API's configuration; throws with every problem at once (zod), including a certificate without its key or the reverse. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env) {
  const config = schema.refine((c) => !c.CIRRUS_QUERY_TLS_CERT_FILE === !c.CIRRUS_QUERY_TLS_KEY_FILE, {
    message: "CIRRUS_QUERY_TLS_CERT_FILE and CIRRUS_QUERY_TLS_KEY_FILE go together: set both for HTTPS, or neither",
  }).parse(env);
  return withZones(config);
}
