// GetConsoleOutput: the last 64 KiB of the serial console, read from the
// instance's host agent.
import { Ec2Error, type AgentClients } from "@cirrus/common";
import type { compute } from "@cirrus/proto";
import type { DomainContext } from "../context.js";
import { loadInstances } from "./describe.js";

export async function getConsoleOutput(ctx: DomainContext, agents: AgentClients, req: compute.GetConsoleOutputRequest): Promise<compute.GetConsoleOutputResponse> {
  if (!req.InstanceId) throw new Ec2Error("MissingParameter", "The request must contain the parameter InstanceId");
  const [inst] = await loadInstances(ctx, [req.InstanceId]);
  const timestamp = new Date().toISOString();
  if (!inst?.host_id || inst.state === "terminated") return { InstanceId: req.InstanceId, Output: "", Timestamp: timestamp };
  const { rows: [host] } = await ctx.pool.query<{ id: string; endpoint: string; secret: string }>("SELECT id, endpoint, secret FROM hosts WHERE id = $1", [inst.host_id]);
  try {
    const out = await agents.consoleOutput(host!, inst.id);
    return { InstanceId: inst.id, Output: Buffer.from(out.output).toString("base64"), Timestamp: timestamp };
  } catch (err) {
    ctx.log.warn({ instanceId: inst.id, hostId: inst.host_id, err: (err as Error).message }, "console output unavailable");
    throw new Ec2Error("InternalError", "The console output is unavailable right now: the instance's host did not answer");
  }
}
