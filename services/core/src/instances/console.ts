// GetConsoleOutput: the last 64 KiB of the serial console, read through the
// agent port from the instance's host.
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { findOwned } from "../describe.js";
import { Ec2Error } from "../errors.js";
import { hostEndpoint } from "../hosts.js";
import { defineOperation } from "../operation.js";
import { requireNonEmpty } from "../validate.js";
import { instanceKind } from "./model.js";

export const getConsoleOutput = defineOperation({
  name: "GetConsoleOutput",
  summary: "Show an instance's serial console output",
  request: compute.GetConsoleOutputRequest,
  response: compute.GetConsoleOutputResponse,
  mutates: false,
  kinds: ["instance"],
  handler: async (ctx: RequestContext, req: compute.GetConsoleOutputRequest): Promise<compute.GetConsoleOutputResponse> => {
    requireNonEmpty("InstanceId", req.InstanceId ? [req.InstanceId] : []);
    const [inst] = await findOwned(ctx, ctx.db, instanceKind, [req.InstanceId]);
    const timestamp = new Date().toISOString();
    if (!inst?.host_id || inst.state === "terminated") return { InstanceId: req.InstanceId, Output: "", Timestamp: timestamp };
    const host = await hostEndpoint(ctx.db, inst.host_id);
    try {
      const out = await ctx.agents.consoleOutput(host, inst.id);
      return { InstanceId: inst.id, Output: out.toString("base64"), Timestamp: timestamp };
    } catch (err) {
      ctx.log.warn({ instanceId: inst.id, hostId: inst.host_id, err: (err as Error).message }, "console output unavailable");
      throw new Ec2Error("InternalError", "The console output is unavailable right now: the instance's host did not answer");
    }
  },
});
