// One structured logger for every process. Fixed keys: component, instanceId,
// hostId, requestId, jobId. Secrets are redacted by key name.
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(component: string): Logger {
  return pino({
    base: { component, pid: process.pid },
    level: process.env.CIRRUS_LOG_LEVEL ?? "info",
    redact: { paths: ["*.hostSecret", "*.host_secret", "*.enrolmentToken", "*.enrolment_token", "*.authorization", "*.password"], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
