import { compute } from "@cirrus/proto";
import { describe, expect, it } from "vitest";
import { render, type AnyCommandSpec } from "../src/command.js";
import { COMMANDS } from "../src/commands/index.js";
import { formatJson, formatTable, formatText, grid, type JsonObject } from "../src/output.js";
import { instance } from "./fake-compute.js";

function command(name: string): AnyCommandSpec {
  const spec = COMMANDS.find((c) => c.name === name);
  if (!spec) throw new Error(`no command ${name}`);
  return spec;
}

const described = compute.DescribeInstancesResponse.fromPartial({
  Reservations: [
    {
      ReservationId: "r-0123456789abcdef0",
      OwnerId: "000000000000",
      Instances: [
        instance("i-0aaaaaaaaaaaaaaaa", "running", { Tags: [{ Key: "Name", Value: "web" }] }),
        instance("i-0bbbbbbbbbbbbbbbb", "pending"),
      ],
    },
  ],
});

describe("json output", () => {
  it("prints the EC2 shape with 4-space indent, as the aws CLI does", () => {
    const out = render(command("describe-instances"), described, "json");
    expect(out).toBe(`{
    "Reservations": [
        {
            "ReservationId": "r-0123456789abcdef0",
            "OwnerId": "000000000000",
            "Instances": [
                {
                    "InstanceId": "i-0aaaaaaaaaaaaaaaa",
                    "ImageId": "ami-0123456789abcdef0",
                    "State": {
                        "Code": 16,
                        "Name": "running"
                    },
                    "InstanceType": "t3.micro",
                    "LaunchTime": "2024-01-01T00:00:00.000Z",
                    "Placement": {
                        "AvailabilityZone": "lab-1a"
                    },
                    "AmiLaunchIndex": 0,
                    "Tags": [
                        {
                            "Key": "Name",
                            "Value": "web"
                        }
                    ]
                },
                {
                    "InstanceId": "i-0bbbbbbbbbbbbbbbb",
                    "ImageId": "ami-0123456789abcdef0",
                    "State": {
                        "Code": 0,
                        "Name": "pending"
                    },
                    "InstanceType": "t3.micro",
                    "LaunchTime": "2024-01-01T00:00:00.000Z",
                    "Placement": {
                        "AvailabilityZone": "lab-1a"
                    },
                    "AmiLaunchIndex": 0
                }
            ]
        }
    ]
}
`);
  });

  it("keeps zero numbers and false booleans that EC2 always sends, which toJSON drops", () => {
    const json = JSON.parse(render(command("describe-instances"), described, "json"));
    expect(json.Reservations[0].Instances[1].State).toEqual({ Code: 0, Name: "pending" });
    const images = compute.DescribeImagesResponse.fromPartial({ Images: [{ ImageId: "ami-1", Public: false }] });
    expect(JSON.parse(render(command("describe-images"), images, "json")).Images[0]).toEqual({ ImageId: "ami-1", Public: false });
  });

  it("keeps the resource list when it is empty, and prints nothing for an empty response", () => {
    expect(render(command("describe-instances"), compute.DescribeInstancesResponse.fromPartial({}), "json")).toBe(
      '{\n    "Reservations": []\n}\n',
    );
    expect(render(command("reboot-instances"), compute.RebootInstancesResponse.fromPartial({}), "json")).toBe("");
    expect(formatJson({})).toBe("");
  });

  it("decodes console output, as the aws CLI does", () => {
    const res = compute.GetConsoleOutputResponse.fromPartial({
      InstanceId: "i-1",
      Output: Buffer.from("Booting Linux\nlogin: ").toString("base64"),
      Timestamp: "2024-01-01T00:00:00.000Z",
    });
    expect(JSON.parse(render(command("get-console-output"), res, "json"))).toEqual({
      InstanceId: "i-1",
      Output: "Booting Linux\nlogin: ",
      Timestamp: "2024-01-01T00:00:00.000Z",
    });
    expect(render(command("get-console-output"), res, "text")).toBe("Booting Linux\nlogin: ");
  });
});

describe("table output", () => {
  it("shows one row per instance with the key columns", () => {
    const out = render(command("describe-instances"), described, "table");
    const header = out.split("\n")[1]!;
    for (const col of ["InstanceId", "State", "InstanceType", "ImageId", "AvailabilityZone", "LaunchTime", "Name"]) expect(header).toContain(col);
    const rows = out.split("\n").filter((l) => l.includes("i-0"));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/i-0aaaaaaaaaaaaaaaa.*running.*t3\.micro.*ami-0123456789abcdef0.*lab-1a.*2024-01-01T00:00:00\.000Z.*web/);
    expect(rows[1]).toMatch(/i-0bbbbbbbbbbbbbbbb.*pending/);
  });

  it("falls back to Key/Value rows, and prints nothing for an empty response", () => {
    const out = render(command("register-image"), compute.RegisterImageResponse.fromPartial({ ImageId: "ami-1" }), "table");
    expect(out).toMatch(/Key.*Value/);
    expect(out).toMatch(/ImageId.*ami-1/);
    expect(render(command("reboot-instances"), compute.RebootInstancesResponse.fromPartial({}), "table")).toBe("");
  });

  it("renders missing cells empty", () => {
    expect(formatTable(grid([{ a: "x" }], { A: (r) => r.a, B: () => undefined }))).toMatch(/│ x +│ +│/);
  });
});

describe("text output", () => {
  it("follows awscli/text.py: upper-case identifiers, sorted scalars, nested lines", () => {
    const out = render(command("describe-instances"), described, "text");
    expect(out).toBe(
      [
        "RESERVATIONS\t000000000000\tr-0123456789abcdef0",
        "INSTANCES\t0\tami-0123456789abcdef0\ti-0aaaaaaaaaaaaaaaa\tt3.micro\t2024-01-01T00:00:00.000Z",
        "STATE\t16\trunning",
        "PLACEMENT\tlab-1a",
        "TAGS\tName\tweb",
        "INSTANCES\t0\tami-0123456789abcdef0\ti-0bbbbbbbbbbbbbbbb\tt3.micro\t2024-01-01T00:00:00.000Z",
        "STATE\t0\tpending",
        "PLACEMENT\tlab-1a",
        "",
      ].join("\n"),
    );
  });

  it("aligns a list of dicts on the union of their keys and prints scalar lists one per line", () => {
    const data: JsonObject = { Items: [{ A: "1", B: true }, { A: "2" }], Names: ["x", "y"], Return: false };
    expect(formatText(data)).toBe("False\nITEMS\t1\tTrue\nITEMS\t2\tNone\nNAMES\tx\nNAMES\ty\n");
  });
});
