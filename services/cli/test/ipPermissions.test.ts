import { compute } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { parsePort, parseProtocol, parseSourceGroup, simpleRule } from "../src/ipPermissions.js";
import { toMessage } from "../src/params.js";

function fails(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("--port", () => {
  it("reads a port, a range, and all", () => {
    expect(parsePort("80")).toEqual({ FromPort: 80, ToPort: 80 });
    expect(parsePort("8000-8080")).toEqual({ FromPort: 8000, ToPort: 8080 });
    expect(parsePort("all")).toEqual({ FromPort: -1, ToPort: -1 });
    expect(parsePort("-1")).toEqual({ FromPort: -1, ToPort: -1 });
  });

  it.each(["", "http", "80-", "-80", "80-90-100", "1.5", "-1-5"])("rejects %j", (bad) => {
    expect(fails(() => parsePort(bad))).toBe("Error parsing parameter '--port': port parameter should be of the form <from[-to]> (e.g. 22 or 22-25)");
  });
});

describe("--protocol", () => {
  it("passes names and numbers, and sends all as -1", () => {
    expect(parseProtocol("tcp")).toBe("tcp");
    expect(parseProtocol("icmp")).toBe("icmp");
    expect(parseProtocol("all")).toBe("-1");
    expect(parseProtocol("-1")).toBe("-1");
    expect(parseProtocol("6")).toBe("6");
  });

  it("rejects unknown names and numbers out of range", () => {
    expect(fails(() => parseProtocol("sctp"))).toMatch(/should be one of: tcp\|udp\|icmp\|all/);
    expect(fails(() => parseProtocol("256"))).toMatch(/range 0-255 or -1/);
  });
});

describe("--source-group", () => {
  it("takes group IDs only", () => {
    expect(parseSourceGroup("sg-0123456789abcdef0")).toBe("sg-0123456789abcdef0");
    expect(fails(() => parseSourceGroup("web"))).toMatch(/expected a security group ID/);
  });
});

describe("simpleRule", () => {
  it("builds one IpPermissions entry the request accepts", () => {
    const fields = simpleRule({ GroupId: "sg-1", Protocol: "tcp", Port: "22", Cidr: "10.0.0.0/16" });
    expect(fields).toEqual({ GroupId: "sg-1", IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "10.0.0.0/16" }] }] });
    expect(toMessage(compute.AuthorizeSecurityGroupRequest, fields)).toEqual(
      compute.AuthorizeSecurityGroupRequest.fromPartial({ GroupId: "sg-1", IpPermissions: [{ IpProtocol: "tcp", FromPort: 22, ToPort: 22, IpRanges: [{ CidrIp: "10.0.0.0/16" }] }] }),
    );
  });

  it("maps --source-group and --group-owner to a UserIdGroupPair", () => {
    expect(simpleRule({ GroupId: "sg-1", Protocol: "all", SourceGroup: "sg-2", GroupOwner: "123456789012" })).toEqual({
      GroupId: "sg-1",
      IpPermissions: [{ IpProtocol: "-1", UserIdGroupPairs: [{ GroupId: "sg-2", UserId: "123456789012" }] }],
    });
  });

  it("leaves requests without the shortcut options alone", () => {
    const fields = { GroupId: "sg-1", IpPermissions: [{ IpProtocol: "tcp" }] };
    expect(simpleRule(fields)).toBe(fields);
  });

  it("refuses mixing the shortcut with --ip-permissions, as the aws CLI does", () => {
    expect(fails(() => simpleRule({ GroupId: "sg-1", IpPermissions: [{}], Port: "22" }))).toBe("The --port option is not compatible with the --ip-permissions option");
  });
});
