// Volume types as QoS classes: EC2's bounds and defaults, and the iotune
// each type gets on the host.
import { describe, expect, it } from "vitest";
import { Ec2Error } from "../src/errors.js";
import { iotuneOf, volumeQuality } from "../src/volumes/types.js";

const MIB = 1024 * 1024;
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as Ec2Error).code;
  }
  return "accepted";
};

describe("volumeQuality", () => {
  it("gives each type EC2's defaults", () => {
    expect(volumeQuality("", 10, undefined, undefined)).toEqual({ type: "gp2", sizeGiB: 10, iops: 100 });
    expect(volumeQuality("gp2", 1000, undefined, undefined)).toEqual({ type: "gp2", sizeGiB: 1000, iops: 3000 });
    expect(volumeQuality("gp2", 16_000, undefined, undefined).iops).toBe(16_000);
    expect(volumeQuality("gp3", 10, undefined, undefined)).toEqual({ type: "gp3", sizeGiB: 10, iops: 3000, throughput: 125 });
    expect(volumeQuality("st1", 500, undefined, undefined)).toEqual({ type: "st1", sizeGiB: 500 });
  });

  it("refuses what EC2 refuses", () => {
    expect(code(() => volumeQuality("io1", 10, 500, undefined))).toBe("accepted");
    expect(code(() => volumeQuality("io1", 10, 501, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("io1", 3, 100, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("io2", 10, 99, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("io2", 300, 256_000, undefined))).toBe("accepted");
    expect(code(() => volumeQuality("gp3", 10, 16_001, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("gp3", 10, 3000, 751))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("gp3", 10, 4000, 1000))).toBe("accepted");
    expect(code(() => volumeQuality("gp2", 10, 100, undefined))).toBe("InvalidParameterCombination");
    expect(code(() => volumeQuality("sc1", 124, undefined, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("standard", 1025, undefined, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("gp2", 0, undefined, undefined))).toBe("InvalidParameterValue");
    expect(code(() => volumeQuality("gp2", 1.5, undefined, undefined))).toBe("InvalidParameterValue");
  });
});

describe("iotuneOf", () => {
  it("gp2: 3 IOPS per GiB with a burst to 3,000 while a full credit bucket lasts; throughput by size", () => {
    expect(iotuneOf(volumeQuality("gp2", 100, undefined, undefined))).toEqual({ totalIopsSec: 300, totalBytesSec: 128 * MIB, totalIopsSecMax: 3000, totalIopsSecMaxLength: 2000 });
    expect(iotuneOf(volumeQuality("gp2", 2000, undefined, undefined))).toEqual({ totalIopsSec: 6000, totalBytesSec: 250 * MIB, totalIopsSecMax: 0, totalIopsSecMaxLength: 0 });
  });

  it("gp3, io1/io2, st1/sc1 and standard as their classes", () => {
    expect(iotuneOf(volumeQuality("gp3", 10, 5000, 300))).toMatchObject({ totalIopsSec: 5000, totalBytesSec: 300 * MIB });
    expect(iotuneOf(volumeQuality("io1", 100, 5000, undefined))).toMatchObject({ totalIopsSec: 5000, totalBytesSec: 1000 * MIB });
    expect(iotuneOf(volumeQuality("st1", 2048, undefined, undefined))).toMatchObject({ totalIopsSec: 0, totalBytesSec: 80 * MIB });
    expect(iotuneOf(volumeQuality("sc1", 125, undefined, undefined))).toMatchObject({ totalIopsSec: 0, totalBytesSec: 1 * MIB });
    expect(iotuneOf(volumeQuality("standard", 10, undefined, undefined))).toMatchObject({ totalIopsSec: 200, totalBytesSec: 90 * MIB });
  });
});
