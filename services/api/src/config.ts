// API service configuration from the environment, validated at start-up.
import { connectionSchema, coreConfigSchema, withZones } from "@cirrus/core";
import { z } from "zod";

const schema = connectionSchema.merge(coreConfigSchema).extend({
  /** HostControl, the agent-facing API. */
  CIRRUS_CONTROL_LISTEN: z.string().default("127.0.0.1:50052"),
  CIRRUS_ENROLMENT_TOKEN: z.string().min(16, "CIRRUS_ENROLMENT_TOKEN must be at least 16 characters"),
  /** The account every compute API call acts as until accounts and signatures arrive (the default principal). */
  CIRRUS_DEFAULT_ACCOUNT_ID: z.string().regex(/^\d{12}$/).default("123456789012"),
});

export type ApiConfig = ReturnType<typeof loadApiConfig>;

export function loadApiConfig(env: NodeJS.ProcessEnv = process.env) {
  return withZones(schema.parse(env));
}
