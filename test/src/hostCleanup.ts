// Removes what one test run's agent made on the host when the agent was
// killed before it could: iptables and ebtables chains with the run's prefix
// (and the jumps to them), the run's bridges and their dnsmasq processes.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";

const run = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return "";
  }
};

/** Deletes every iptables chain named `<prefix>-…` in the filter and nat tables, and every such ebtables chain, jumps first. */
export function removeChains(prefix: string): void {
  for (const [tool, table] of [["iptables", "filter"], ["iptables", "nat"], ["ebtables", "filter"]] as const) {
    const lines = run(`${tool}-save`, ["-t", table]).split("\n");
    const own = lines.filter((l) => l.startsWith(`:${prefix}-`)).map((l) => l.slice(1).split(" ")[0]!);
    for (const l of lines) {
      const m = /^-A (\S+) (.*-j (\S+).*)$/.exec(l);
      if (m && own.includes(m[3]!) && !own.includes(m[1]!)) run(tool, ["-t", table, "-D", m[1]!, ...m[2]!.split(" ")]);
    }
    for (const c of own) run(tool, ["-t", table, "-F", c]);
    for (const c of own) run(tool, ["-t", table, "-X", c]);
  }
}

/** Deletes these bridges and kills dnsmasq processes whose command line names `marker`. */
export function removeBridges(bridges: readonly string[], marker: string): void {
  run("pkill", ["-f", `dnsmasq.*${marker}`]);
  for (const b of bridges) run("ip", ["link", "del", b]);
}

const IP_FORWARD = "/proc/sys/net/ipv4/ip_forward";

export const readForwarding = (): string => readFileSync(IP_FORWARD, "utf8").trim();

/** Puts IPv4 forwarding back to `before` once no Cirrus bridge (ours or another run's) is left. */
export function restoreForwarding(before: string): void {
  const bridgesLeft = run("ip", ["-br", "link", "show", "type", "bridge"]).split("\n").some((l) => /^cb[0-9a-f]{13}\s/.test(l));
  if (!bridgesLeft && readForwarding() !== before) writeFileSync(IP_FORWARD, `${before}\n`);
}
