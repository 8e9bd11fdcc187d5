// What grpcurl and health probes rely on: server reflection lists and
// describes the compute service, and gRPC health checking answers SERVING.
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { credentials, loadPackageDefinition, type GrpcObject } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "../src/stack.js";

const stack = new Stack();
const require = createRequire(import.meta.url);
const reflectionProto = join(dirname(require.resolve("@grpc/reflection/package.json")), "build/proto/grpc/reflection/v1/reflection.proto");
const healthProto = join(dirname(require.resolve("grpc-health-check/package.json")), "proto/health/v1/health.proto");

beforeAll(() => stack.start(0));
afterAll(() => stack.stop());

function service(protoFile: string, path: string[]): any {
  let obj: any = loadPackageDefinition(loadSync(protoFile, { enums: String })) as GrpcObject;
  for (const p of path) obj = obj[p];
  return new obj(`127.0.0.1:${stack.apiPort}`, credentials.createInsecure());
}

describe("gRPC surface", () => {
  it("server reflection lists and describes cirrus.compute.v1.Compute", async () => {
    const client = service(reflectionProto, ["grpc", "reflection", "v1", "ServerReflection"]);
    const ask = (req: object) =>
      new Promise<any>((resolve, reject) => {
        const call = client.ServerReflectionInfo();
        call.on("data", (res: unknown) => {
          resolve(res);
          call.end();
        });
        call.on("error", reject);
        call.write(req);
      });
    const list = await ask({ listServices: "" });
    expect(list.listServicesResponse.service.map((s: { name: string }) => s.name)).toContain("cirrus.compute.v1.Compute");
    const file = await ask({ fileContainingSymbol: "cirrus.compute.v1.Compute" });
    expect(Buffer.concat(file.fileDescriptorResponse.fileDescriptorProto).toString("latin1")).toContain("RunInstances");
    client.close();
  });

  it("health checking answers SERVING", async () => {
    const client = service(healthProto, ["grpc", "health", "v1", "Health"]);
    const res = await new Promise<any>((resolve, reject) => client.Check({ service: "cirrus.compute.v1.Compute" }, (err: Error | null, r: unknown) => (err ? reject(err) : resolve(r))));
    expect(res.status).toBe("SERVING");
    client.close();
  });
});
