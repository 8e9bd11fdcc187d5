import { describe, expect, it } from "vitest";
import { bounds, cidrText, contains, isIpv4, netmask, overlaps, parseCidr, parseExactCidr, parseUnicastMac } from "../src/network/addresses.js";
import { bridgeName, instanceChain, isOwnChain, mainChains, tapName } from "../src/network/names.js";
import { A, B, C } from "./helpers.js";

describe("addresses", () => {
  it("accepts only plain dotted quads", () => {
    for (const ip of ["0.0.0.0", "10.0.1.5", "255.255.255.255", "198.18.0.1"]) expect(isIpv4(ip), ip).toBe(true);
    for (const ip of ["", "10.0.1", "10.0.1.5.6", "10.0.1.256", "10.0.01.5", "010.0.1.5", " 10.0.1.5", "10.0.1.5\n", "10.0.1.5/32", "10.0.1.5;reboot", "0x0a.0.0.1", "1e1.0.0.1"]) {
      expect(isIpv4(ip), JSON.stringify(ip)).toBe(false);
    }
  });

  it("parses CIDRs, clearing host bits, and tells exact network addresses apart", () => {
    expect(parseCidr("10.0.1.5/24")).toEqual({ network: "10.0.1.0", prefix: 24 });
    expect(parseCidr("0.0.0.0/0")).toEqual({ network: "0.0.0.0", prefix: 0 });
    expect(parseCidr("203.0.113.7/32")).toEqual({ network: "203.0.113.7", prefix: 32 });
    for (const bad of ["10.0.1.0", "10.0.1.0/33", "10.0.1.0/024", "10.0.1.0/-1", "10.0.1.0/24 ", "10.0.1.0/24,10.0.2.0/24", "::/0"]) expect(parseCidr(bad), bad).toBeUndefined();
    expect(parseExactCidr("10.0.1.0/24")).toEqual({ network: "10.0.1.0", prefix: 24 });
    expect(parseExactCidr("10.0.1.5/24")).toBeUndefined();
    expect(cidrText(parseCidr("172.31.7.9/30")!)).toBe("172.31.7.8/30");
  });

  it("answers membership, bounds, overlap and netmask", () => {
    const net = parseCidr("10.0.1.0/24")!;
    expect(contains(net, "10.0.1.255")).toBe(true);
    expect(contains(net, "10.0.2.0")).toBe(false);
    expect(contains(parseCidr("0.0.0.0/0")!, "198.18.1.1")).toBe(true);
    expect(bounds(net)).toEqual({ first: "10.0.1.0", last: "10.0.1.255" });
    expect(bounds(parseCidr("10.0.0.0/30")!)).toEqual({ first: "10.0.0.0", last: "10.0.0.3" });
    expect(overlaps(net, parseCidr("10.0.0.0/16")!)).toBe(true);
    expect(overlaps(net, parseCidr("10.0.2.0/24")!)).toBe(false);
    expect(netmask(24)).toBe("255.255.255.0");
    expect(netmask(0)).toBe("0.0.0.0");
    expect(netmask(30)).toBe("255.255.255.252");
  });

  it("accepts unicast MACs only, lowercased", () => {
    expect(parseUnicastMac("52:54:00:AB:CD:EF")).toBe("52:54:00:ab:cd:ef");
    for (const bad of ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:00", "5254.00ab.cdef", "52:54:00:ab:cd:eg"]) expect(parseUnicastMac(bad), bad).toBeUndefined();
  });
});

describe("names", () => {
  it("gives bridges and taps distinct, deterministic names within IFNAMSIZ, even for ids sharing a long prefix", () => {
    const taps = [A, B, C].map(tapName);
    expect(new Set(taps).size).toBe(3);
    for (const t of taps) expect(t).toMatch(/^ct[0-9a-f]{13}$/);
    expect(tapName(A)).toBe(tapName(A));
    expect(bridgeName("subnet-0123456789abcdef0")).toMatch(/^cb[0-9a-f]{13}$/);
    expect(bridgeName("subnet-0123456789abcdef0")).not.toBe(bridgeName("subnet-0123456789abcdef1"));
  });

  it("keeps chain names within iptables' 28 characters and recognizes only its own prefix's", () => {
    expect(instanceChain("ABCDEFGH", A, "OUT").length).toBeLessThanOrEqual(28);
    for (const c of Object.values(mainChains("ABCDEFGH"))) expect(c.length).toBeLessThanOrEqual(28);
    expect(instanceChain("CIRRUS", A, "IN")).toMatch(/^CIRRUS-[0-9a-f]{12}-IN$/);
    expect(instanceChain("CIRRUS", A, "IN")).not.toBe(instanceChain("CIRRUS", B, "IN"));
    expect(isOwnChain("CIRRUS", "CIRRUS-FORWARD")).toBe(true);
    expect(isOwnChain("CI", "CIRRUS-FORWARD")).toBe(false);
    expect(isOwnChain("CIRRUS", "DOCKER-USER")).toBe(false);
  });
});
