// DescribeInstances: the generic Describe over the instance kind, grouped
// into EC2 reservations.
import { compute } from "@cirrus/proto";
import type { RequestContext } from "../context.js";
import { describeRows } from "../describe.js";
import { defineOperation } from "../operation.js";
import { instanceKind, loadExtras, toReservations } from "./model.js";

export const describeInstances = defineOperation({
  name: "DescribeInstances",
  summary: "Describe instances (all pages unless --max-results or --next-token is given)",
  request: compute.DescribeInstancesRequest,
  response: compute.DescribeInstancesResponse,
  mutates: false,
  kinds: ["instance"],
  handler: async (ctx: RequestContext, req: compute.DescribeInstancesRequest): Promise<compute.DescribeInstancesResponse> => {
    const page = await describeRows(ctx, instanceKind, { ids: req.InstanceIds, filters: req.Filters, maxResults: req.MaxResults, nextToken: req.NextToken });
    return { Reservations: toReservations(page.rows, await loadExtras(ctx.db, page.rows.map((r) => r.id))), NextToken: page.nextToken };
  },
});
