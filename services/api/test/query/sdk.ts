// The real AWS SDK for JavaScript v3 EC2 client, wired to no network: its
// request handler records the Query form it would send and answers with the
// XML a test gives. The SDK's own serializer and deserializer (its EC2
// model, newer than the aws-sdk v2 one the codec is generated from) are then
// the judge of the wire format.
import * as ec2 from "@aws-sdk/client-ec2";
import type { HttpRequest } from "@smithy/protocol-http";
import { HttpResponse } from "@smithy/protocol-http";

export interface Answer {
  status: number;
  xml: string;
}

export interface FakeEc2 {
  /** Sends `action` with `input` through the SDK; resolves with its parsed output (without `$metadata`). */
  call(action: string, input: object): Promise<Record<string, unknown>>;
  /** The form parameters of the last request, without Action and Version. */
  lastParams(): Array<[string, string]>;
}

/** A client whose every call is answered by `answer`. */
export function fakeEc2(answer: () => Answer): FakeEc2 {
  let last = "";
  const client = new ec2.EC2Client({
    region: "us-east-1",
    endpoint: "http://127.0.0.1:9",
    credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" },
    maxAttempts: 1,
    requestHandler: {
      handle: async (request: HttpRequest) => {
        last = String(request.body);
        const { status, xml } = answer();
        return { response: new HttpResponse({ statusCode: status, headers: { "content-type": "text/xml;charset=UTF-8" }, body: Buffer.from(xml) }) };
      },
    },
  });
  return {
    async call(action, input) {
      const Command = (ec2 as unknown as Record<string, new (input: object) => Parameters<typeof client.send>[0]>)[`${action}Command`];
      if (!Command) throw new Error(`the SDK has no ${action}Command`);
      const { $metadata: _metadata, ...output } = (await client.send(new Command(input))) as unknown as Record<string, unknown>;
      return output;
    },
    lastParams() {
      return [...new URLSearchParams(last)].filter(([name]) => name !== "Action" && name !== "Version");
    },
  };
}
