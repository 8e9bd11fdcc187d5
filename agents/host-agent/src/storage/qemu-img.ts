// qemu-img as the stores use it: argv through the CommandRunner, formats
// always stated (probing a file's format lets a raw image posing as qcow2
// name any host file as its backing), and QEMU's image-lock refusals turned
// into StorageError("InUse").
//
// QEMU's locks are what keep a store's data operations from racing a guest
// or one another (qemu-img 7.2, measured): a running guest holds its disk
// against every other writer and reader; a read-only backing file is held
// against writers only, so a snapshot may read a file a guest holds as a
// backing while `commit`, `rebase` or `resize` into it fail.
import { CommandError, type CommandRunner } from "../runner/types.js";
import { StorageError, type CheckResult, type ImageFormat } from "./types.js";

export interface ImageInfo {
  virtualSize: number;
  /** Bytes the file takes on disk. */
  actualSize: number;
  /** The backing file name as written in the image's header, if any. */
  backing: string | undefined;
  /** A qcow2 external data file, if any. */
  dataFile: string | undefined;
}

/** How qemu-img words a refusal by an image lock ("Failed to get "write" lock", "Failed to get shared "write" lock"). */
const LOCK_REFUSAL = /Failed to get (?:shared )?"[a-z ]+" lock/;

export class QemuImg {
  constructor(
    private readonly runner: CommandRunner,
    /** For commands that copy data (rebase, commit, convert, compare), which take time in proportion to it. */
    private readonly dataTimeoutMs: number,
  ) {}

  /**
   * What the image's header says. `shared`: read it even while a guest
   * writes it (a header is consistent; data would not be). Without it,
   * throws InUse when someone writes the image, which is how callers
   * make sure a volume is not attached.
   */
  async info(path: string, format: ImageFormat, shared = false): Promise<ImageInfo> {
    const r = await this.run(["qemu-img", "info", ...(shared ? ["--force-share"] : []), "-f", format, "--output=json", "--", path]);
    const info = JSON.parse(r.stdout.toString("utf8")) as Record<string, unknown>;
    const specific = (info["format-specific"] as { data?: Record<string, unknown> } | undefined)?.data;
    const virtualSize = info["virtual-size"];
    if (typeof virtualSize !== "number") throw new Error(`qemu-img info ${path} gave no virtual size`);
    return {
      virtualSize,
      actualSize: typeof info["actual-size"] === "number" ? info["actual-size"] : 0,
      backing: typeof info["backing-filename"] === "string" ? info["backing-filename"] : undefined,
      dataFile: typeof specific?.["data-file"] === "string" ? specific["data-file"] : undefined,
    };
  }

  /**
   * A new qcow2 image at `path` (replacing any file there): empty, or an
   * overlay over `backing` (a qcow2 file; the name is written into the
   * header as given, a relative one being relative to `path`'s directory).
   * Without a size it takes the backing file's.
   */
  async create(path: string, opts: { sizeBytes?: number; backing?: string }): Promise<void> {
    const backing = opts.backing === undefined ? [] : ["-F", "qcow2", "-b", opts.backing];
    const size = opts.sizeBytes === undefined ? [] : [String(opts.sizeBytes)];
    await this.run(["qemu-img", "create", "-q", "-f", "qcow2", ...backing, "--", path, ...size]);
  }

  /**
   * Safe rebase: makes `backing` (null: none) the image's backing file and
   * writes into the image whatever reads differently through the new chain
   * than through the old, so the image reads the same. Only the header
   * change at the end switches chains, so a crash before it leaves the old
   * chain intact (with correct data written into it) and a second run does
   * the same again. When the new backing file is in the old chain, qemu-img
   * compares only what lies above it.
   */
  async rebase(path: string, backing: string | null): Promise<void> {
    const to = backing === null ? ["-b", ""] : ["-F", "qcow2", "-b", backing];
    await this.run(["qemu-img", "rebase", "-q", "-f", "qcow2", ...to, "--", path], this.dataTimeoutMs);
  }

  /** Writes the image's data into its backing file (growing it if smaller), keeping the image as it is (-d). */
  async commit(path: string): Promise<void> {
    await this.run(["qemu-img", "commit", "-q", "-d", "-f", "qcow2", "--", path], this.dataTimeoutMs);
  }

  /** Grows the image to `sizeBytes` (qemu-img refuses a shrink without --shrink, never given here). */
  async grow(path: string, sizeBytes: number): Promise<void> {
    await this.run(["qemu-img", "resize", "-q", "-f", "qcow2", "--", path, String(sizeBytes)]);
  }

  /** A standalone copy of the image (its chain read through) at `to`, replacing any file there. */
  async convert(from: string, fromFormat: ImageFormat, to: string, toFormat: ImageFormat): Promise<void> {
    await this.run(["qemu-img", "convert", "-q", "-f", fromFormat, "-O", toFormat, "--", from, to], this.dataTimeoutMs);
  }

  /** Whether the two images read the same (sizes may differ if the larger one's extra part reads as zeros). */
  async same(a: string, aFormat: ImageFormat, b: string, bFormat: ImageFormat): Promise<boolean> {
    const r = await this.run(["qemu-img", "compare", "-q", "-f", aFormat, "-F", bFormat, "--", a, b], this.dataTimeoutMs, [0, 1]);
    return r.code === 0;
  }

  /** `qemu-img check` of a qcow2 file, as a CheckResult. */
  async check(path: string): Promise<CheckResult> {
    let out: string;
    try {
      // 0: clean, 2: corruptions, 3: leaks only.
      out = (await this.run(["qemu-img", "check", "-f", "qcow2", "--output=json", "--", path], this.dataTimeoutMs, [0, 2, 3])).stdout.toString("utf8");
    } catch (err) {
      if (err instanceof StorageError && err.kind === "InUse") return { path, status: "in-use" };
      return { path, status: "error", detail: (err as Error).message };
    }
    const r = JSON.parse(out) as { corruptions?: number; leaks?: number; "check-errors"?: number };
    if ((r.corruptions ?? 0) > 0 || (r["check-errors"] ?? 0) > 0) return { path, status: "corrupt", detail: out.trim() };
    if ((r.leaks ?? 0) > 0) return { path, status: "leaks", detail: `${r.leaks} leaked clusters` };
    return { path, status: "clean" };
  }

  private async run(argv: string[], timeoutMs?: number, okCodes?: number[]) {
    try {
      return await this.runner.run(argv, { timeoutMs, okCodes });
    } catch (err) {
      if (err instanceof CommandError && LOCK_REFUSAL.test(err.stderr)) throw new StorageError("InUse", `qemu-img ${argv[1]}: ${err.stderr.trim().split("\n").join(" ")}`);
      throw err;
    }
  }
}
