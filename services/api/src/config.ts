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
  /** The account every compute API call acts as until accounts and signatures arrive (the default principal). */
  CIRRUS_DEFAULT_ACCOUNT_ID: z.string().regex(/^\d{12}$/).default("123456789012"),
});

export type ApiConfig = ReturnType<typeof loadApiConfig>;

/** The names HostControl's certificate carries: CIRRUS_CONTROL_NAMES and the listen address's host unless it is a wildcard. */
export function controlNames(config: { CIRRUS_CONTROL_NAMES: string; CIRRUS_CONTROL_LISTEN: string }): string[] {
  const listen = endpointHost(config.CIRRUS_CONTROL_LISTEN);
  return [...config.CIRRUS_CONTROL_NAMES.split(",").map((n) => n.trim()).filter(Boolean), ...(listen === "0.0.0.0" || listen === "::" ? [] : [listen])];
}

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env) {
  return withZones(schema.parse(env));
}
