// virsh over a CommandRunner: every call is `virsh -c <uri> <args...>`, one
// process and one libvirtd connection each, so callers make as few as they can.
import { agent } from "@cirrus/proto";
import { withHostTempFile } from "../../runner/host-files.js";
import { type CommandRunner, type RunOptions, CommandError, type RunResult } from "../../runner/types.js";
import { parseDomStats, powerStateOf, STATE_WORDS } from "./parse.js";
import { LibvirtConnectionError, type LibvirtRpc } from "./rpc.js";

const { PowerState } = agent;

export interface DomainState {
  power: agent.PowerState;
  /** libvirt's own word for it ("running", "shut off", "paused", ... or "absent"). */
  state: string;
}

const ABSENT: DomainState = { power: PowerState.POWER_STATE_ABSENT, state: "absent" };

/** What may appear in a virsh command string without quoting trouble: our names, paths and flags. */
const PLAIN_TOKEN = /^[A-Za-z0-9._+@=/:,-]+$/;

/**
 * One virsh command line for several commands, run in order over one
 * connection (`virsh "a ; b"`). virsh parses this string itself, so every
 * token is single-quoted; tokens that could need escaping are refused
 * (ours never do: ids, names and paths are validated upstream).
 */
export function virshScript(commands: ReadonlyArray<readonly string[]>): string {
  if (commands.length === 0) throw new Error("virshScript: no commands");
  return commands
    .map((argv) => {
      if (argv.length === 0) throw new Error("virshScript: empty command");
      return argv
        .map((t) => {
          if (!PLAIN_TOKEN.test(t)) throw new Error(`virshScript: refusing token ${JSON.stringify(t.slice(0, 100))}`);
          return `'${t}'`;
        })
        .join(" ");
    })
    .join(" ; ");
}

/**
 * libvirt as the driver uses it: virsh commands, plus (when given) a
 * persistent RPC connection for the calls on the launch path (a domain's
 * state; define and start). When that connection cannot be made, the same
 * calls go through virsh; `onFallback` hears why.
 */
export class Virsh {
  constructor(
    private readonly runner: CommandRunner,
    private readonly uri: string,
    private readonly rpc?: LibvirtRpc,
    private readonly onFallback: (err: Error) => void = () => {},
  ) {}

  run(args: string[], opts?: RunOptions): Promise<RunResult> {
    // LC_ALL=C: state names such as "shut off" are translated in other locales.
    return this.runner.run(["env", "LC_ALL=C", "virsh", "-c", this.uri, ...args], opts);
  }

  /**
   * Runs the commands in order in one virsh process (one connection
   * instead of one per command). virsh goes on after a failed command and
   * exits with the status of the last one, so callers order them such that
   * the last fails whenever an earlier one did (define, then start of what
   * was defined), and treat a rejection as "any of them may have failed".
   */
  script(commands: ReadonlyArray<readonly string[]>, opts?: RunOptions): Promise<RunResult> {
    return this.run([virshScript(commands)], opts);
  }

  /**
   * Every domain libvirt knows (defined or running) with its state, from
   * one consistent listing: `virsh domstats --state` prints names quoted
   * and states as numbers.
   */
  async states(): Promise<Map<string, string>> {
    return parseDomStats((await this.run(["domstats", "--state"])).stdout.toString("utf8"));
  }

  /**
   * The domain's state, or ABSENT when no such domain is defined or
   * running: established by libvirt's error number (VIR_ERR_NO_DOMAIN) over
   * RPC, or by a complete listing with virsh; never by error text.
   */
  async state(name: string): Promise<DomainState> {
    if (this.rpc) {
      try {
        const dom = await this.rpc.lookupDomain(name);
        const n = dom && (await this.rpc.domainState(dom));
        if (n === undefined) return ABSENT;
        const state = STATE_WORDS[n] ?? "no state";
        return { power: powerStateOf(state), state };
      } catch (err) {
        // A lookup has no effect: retrying it through virsh is always safe.
        if (!(err instanceof LibvirtConnectionError)) throw err;
        this.onFallback(err);
      }
    }
    const state = (await this.states()).get(name);
    return state === undefined ? ABSENT : { power: powerStateOf(state), state };
  }

  /**
   * Defines the domain in `xml` (persistent) and starts it, over one
   * connection: two RPC calls, or one virsh process running both commands.
   * Rejects when either failed; the domain may then be defined (not running).
   */
  async defineAndStart(xml: string, name: string): Promise<void> {
    if (this.rpc) {
      try {
        const dom = await this.rpc.defineXml(xml);
        await this.rpc.startDomain(dom);
        return;
      } catch (err) {
        // Only a define that never reached libvirt is done again through virsh.
        if (!(err instanceof LibvirtConnectionError && err.beforeSend)) throw err;
        this.onFallback(err);
      }
    }
    // virsh start fails whenever define did (no such domain), so the exit status says it all.
    await withHostTempFile(this.runner, "cirrus-domain", xml, (file) => this.script([["define", "--", file], ["start", "--", name]]));
  }

  /**
   * Runs a state-changing virsh command; a failure is forgiven when the
   * domain has reached the wanted state anyway (it was already there, or
   * another actor got it there), which is what makes each step idempotent.
   */
  async change(args: string[], reached: (s: DomainState) => boolean, name: string): Promise<void> {
    try {
      await this.run(args);
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      if (!reached(await this.state(name))) throw err;
    }
  }
}
