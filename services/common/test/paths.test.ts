import { describe, expect, it } from "vitest";
import { dirListProblem, imagePathRefusal, isBelow, isPlainAbsolutePath, parseDirList } from "../src/paths.js";

describe("host path rules", () => {
  it("accepts plain absolute paths only", () => {
    for (const ok of ["/", "/var/lib/cirrus/images/a/rootfs.qcow2", "/x/a+b@c=d_e-f.g"]) expect(isPlainAbsolutePath(ok), ok).toBe(true);
    for (const bad of ["", "relative/x", "/a/../b", "/a/./b", "/a//b", "/a/", "/x;rm -rf /", "/a b", `/${"a".repeat(1024)}`, "/a/\n"]) expect(isPlainAbsolutePath(bad), bad).toBe(false);
  });

  it("is below a directory by whole segments, never by string prefix", () => {
    expect(isBelow("/var/lib/cirrus/images/a.qcow2", "/var/lib/cirrus/images")).toBe(true);
    expect(isBelow("/var/lib/cirrus/images-evil/a.qcow2", "/var/lib/cirrus/images")).toBe(false);
    expect(isBelow("/var/lib/cirrus/images", "/var/lib/cirrus/images")).toBe(false);
    expect(isBelow("/etc/shadow", "/")).toBe(true);
  });

  it("refuses image paths outside the image directories or inside a private one", () => {
    const images = ["/srv/images", "/var/lib/cirrus/images"];
    expect(imagePathRefusal("/var/lib/cirrus/images/a/rootfs.qcow2", images)).toBeUndefined();
    expect(imagePathRefusal("/etc/shadow", images)).toMatch(/not below an image directory/);
    expect(imagePathRefusal("/srv/images/instances/i-1.qcow2", images, ["/srv/images/instances"])).toMatch(/instances' disks/);
    expect(imagePathRefusal("/srv/images/x", [])).toMatch(/none configured/);
  });

  it("parses a directory list, naming a bad entry", () => {
    expect(parseDirList(" /a , /b/c ,")).toEqual(["/a", "/b/c"]);
    expect(() => parseDirList("/a,b")).toThrow(/"b"/);
    expect(dirListProblem("/a")).toBeUndefined();
    expect(dirListProblem("")).toMatch(/no directory/);
    expect(dirListProblem("/a/../b")).toMatch(/plain segments/);
  });
});
