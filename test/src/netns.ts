// A client network namespace for packet tests, connected to the host by a
// veth pair on a private /30, with routes only to the given test networks
// via the host. Network safety (docs/ARCHITECTURE.md, Tests): the host also gets blackhole
// routes for those networks, so a packet the agent failed to DNAT or bridge
// dies on the host instead of following the default route out; and every
// send is preceded by an `ip route get` check.
import { execFileSync } from "node:child_process";

const sh = (args: string[]) => execFileSync(args[0]!, args.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

export class ClientNamespace {
  readonly ns: string;
  readonly hostIf: string;
  readonly nsIf: string;
  readonly hostIp: string;
  readonly clientIp: string;
  private readonly blackholes: string[];

  /** `tag`: short unique hex; `octet`: picks 172.30.<octet>.0/30; `networks`: CIDRs reachable through the host. */
  constructor(tag: string, octet: number, private readonly networks: string[]) {
    this.ns = `cn${tag}`;
    this.hostIf = `cv${tag}h`;
    this.nsIf = `cv${tag}c`;
    this.hostIp = `172.30.${octet}.1`;
    this.clientIp = `172.30.${octet}.2`;
    this.blackholes = networks;
  }

  create(): void {
    sh(["ip", "netns", "add", this.ns]);
    sh(["ip", "link", "add", this.hostIf, "type", "veth", "peer", "name", this.nsIf, "netns", this.ns]);
    sh(["ip", "addr", "add", `${this.hostIp}/30`, "dev", this.hostIf]);
    sh(["ip", "link", "set", this.hostIf, "up"]);
    this.exec(["ip", "addr", "add", `${this.clientIp}/30`, "dev", this.nsIf]);
    this.exec(["ip", "link", "set", this.nsIf, "up"]);
    this.exec(["ip", "link", "set", "lo", "up"]);
    for (const n of this.networks) {
      this.exec(["ip", "route", "add", n, "via", this.hostIp]);
      sh(["ip", "route", "add", "blackhole", n, "metric", "4000"]);
    }
  }

  exec(args: string[]): string {
    return sh(["ip", "netns", "exec", this.ns, ...args]);
  }

  /** Throws unless `ip` is routed from the namespace through the host end of our veth. */
  assertRouted(ip: string): void {
    const route = this.exec(["ip", "route", "get", ip]);
    if (!route.includes(`via ${this.hostIp} dev ${this.nsIf}`)) throw new Error(`refusing to send to ${ip}: route is "${route.trim()}"`);
  }

  /** HTTP GET from the namespace; the body, or undefined when it cannot connect within `seconds`. */
  get(ip: string, port = 80, seconds = 2): string | undefined {
    this.assertRouted(ip);
    try {
      return this.exec(["curl", "-s", "--http0.9", "--max-time", String(seconds), `http://${ip}:${port}/`]);
    } catch {
      return undefined;
    }
  }

  destroy(): void {
    for (const n of this.blackholes) {
      try {
        sh(["ip", "route", "del", "blackhole", n, "metric", "4000"]);
      } catch {
        // already gone
      }
    }
    for (const cmd of [["ip", "link", "del", this.hostIf], ["ip", "netns", "del", this.ns]]) {
      try {
        sh(cmd);
      } catch {
        // already gone
      }
    }
  }
}
