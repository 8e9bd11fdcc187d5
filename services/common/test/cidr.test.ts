import { describe, expect, it } from "vitest";
import { bounds, cidrText, contains, containsCidr, gatewayOf, intToIp, ipToInt, isIpv4, macFor, netmask, nthAddress, overlaps, parseCidr, parseExactCidr, parseUnicastMac, size } from "../src/cidr.js";

describe("IPv4 addresses", () => {
  it("accepts only plain dotted decimal", () => {
    for (const ip of ["0.0.0.0", "10.0.1.5", "255.255.255.255", "198.18.0.1"]) expect(isIpv4(ip), ip).toBe(true);
    for (const ip of ["", "10.0.1", "10.0.1.5.6", "10.0.1.256", "10.0.01.5", "010.0.1.5", " 10.0.1.5", "10.0.1.5\n", "10.0.1.5/32", "10.0.1.5;reboot", "0x0a.0.0.1", "1e1.0.0.1", "10.1", "167772161"]) {
      expect(isIpv4(ip), JSON.stringify(ip)).toBe(false);
    }
  });

  it("converts to and from 32-bit numbers", () => {
    expect(ipToInt("10.0.1.5")).toBe(0x0a000105);
    expect(ipToInt("255.255.255.255")).toBe(0xffffffff);
    expect(intToIp(0x0a000105)).toBe("10.0.1.5");
    expect(intToIp(0xffffffff)).toBe("255.255.255.255");
  });
});

describe("CIDR blocks", () => {
  it("parses strictly, refusing octal-looking octets (010.0.0.0/8 would be 8.0.0.0/8 to inet_aton)", () => {
    expect(parseCidr("010.0.0.0/8")).toBeUndefined();
    expect(parseExactCidr("010.0.0.0/8")).toBeUndefined();
    expect(parseCidr("10.0.0.0/08")).toBeUndefined();
    for (const bad of ["10.0.1.0", "10.0.1.0/33", "10.0.1.0/024", "10.0.1.0/-1", "10.0.1.0/24 ", "10.0.1.0/24,10.0.2.0/24", "::/0", "10.0.1/24", "/24"]) expect(parseCidr(bad), bad).toBeUndefined();
  });

  it("clears host bits, and tells exact network addresses apart", () => {
    expect(parseCidr("10.0.1.5/24")).toEqual({ network: "10.0.1.0", prefix: 24 });
    expect(parseCidr("0.0.0.0/0")).toEqual({ network: "0.0.0.0", prefix: 0 });
    expect(parseCidr("203.0.113.7/32")).toEqual({ network: "203.0.113.7", prefix: 32 });
    expect(parseExactCidr("10.0.1.0/24")).toEqual({ network: "10.0.1.0", prefix: 24 });
    expect(parseExactCidr("10.0.1.5/24")).toBeUndefined();
    expect(cidrText(parseCidr("172.31.7.9/30")!)).toBe("172.31.7.8/30");
  });

  it("answers membership, containment, bounds, overlap, size and netmask", () => {
    const net = parseCidr("10.0.1.0/24")!;
    expect(contains(net, "10.0.1.255")).toBe(true);
    expect(contains(net, "10.0.2.0")).toBe(false);
    expect(contains(parseCidr("0.0.0.0/0")!, "198.18.1.1")).toBe(true);
    expect(containsCidr(parseCidr("10.0.0.0/16")!, net)).toBe(true);
    expect(containsCidr(net, parseCidr("10.0.0.0/16")!)).toBe(false);
    expect(containsCidr(net, parseCidr("10.0.2.0/25")!)).toBe(false);
    expect(bounds(net)).toEqual({ first: "10.0.1.0", last: "10.0.1.255" });
    expect(bounds(parseCidr("10.0.0.0/30")!)).toEqual({ first: "10.0.0.0", last: "10.0.0.3" });
    expect(overlaps(net, parseCidr("10.0.0.0/16")!)).toBe(true);
    expect(overlaps(net, parseCidr("10.0.2.0/24")!)).toBe(false);
    expect(size(net)).toBe(256);
    expect(size(parseCidr("10.0.0.0/14")!)).toBe(262_144);
    expect(nthAddress(parseCidr("172.31.0.0/16")!, 4096)).toBe("172.31.16.0");
    expect(netmask(24)).toBe("255.255.255.0");
    expect(netmask(0)).toBe("0.0.0.0");
    expect(netmask(30)).toBe("255.255.255.252");
  });
});

describe("instance NICs", () => {
  it("derive the MAC from the address and the gateway from the subnet", () => {
    expect(macFor("10.0.1.5")).toBe("52:54:00:00:01:05");
    expect(macFor("172.31.255.254")).toBe("52:54:00:1f:ff:fe");
    expect(gatewayOf(parseCidr("10.0.1.0/24")!)).toBe("10.0.1.1");
  });

  it("accepts unicast MACs only, lowercased", () => {
    expect(parseUnicastMac("52:54:00:AB:CD:EF")).toBe("52:54:00:ab:cd:ef");
    for (const bad of ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:00", "5254.00ab.cdef", "52:54:00:ab:cd:eg"]) expect(parseUnicastMac(bad), bad).toBeUndefined();
  });
});
