// One structured logger for every process. Fixed keys: component, instanceId,
// hostId, requestId, jobId. Secrets are redacted by key name.
import { destination, pino, type Logger } from "pino";

export type { Logger };

/** `toStderr`: for a command whose stdout is its answer (cirrus-admin). */
export function createLogger(component: string, { toStderr = false } = {}): Logger {
  return pino({
    base: { component, pid: process.pid },
    level: process.env.CIRRUS_LOG_LEVEL ?? "info",
    redact: { paths: ["*.hostSecret", "*.host_secret", "*.enrolmentToken", "*.enrolment_token", "*.authorization", "*.password"], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  }, toStderr ? destination(2) : undefined);
}
