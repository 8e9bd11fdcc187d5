// virsh over a CommandRunner: every call is `virsh -c <uri> <args...>`.
import { agent } from "@cirrus/proto";
import { CommandError, type CommandRunner, type RunOptions, type RunResult } from "../../runner/types.js";
import { parseDomState, parseNameList, powerStateOf } from "./parse.js";

const { PowerState } = agent;

export interface DomainState {
  power: agent.PowerState;
  /** libvirt's own word for it ("running", "shut off", "paused", ... or "absent"). */
  state: string;
}

const ABSENT: DomainState = { power: PowerState.POWER_STATE_ABSENT, state: "absent" };

export class Virsh {
  constructor(
    private readonly runner: CommandRunner,
    private readonly uri: string,
  ) {}

  run(args: string[], opts?: RunOptions): Promise<RunResult> {
    // LC_ALL=C: state names such as "shut off" are translated in other locales.
    return this.runner.run(["env", "LC_ALL=C", "virsh", "-c", this.uri, ...args], opts);
  }

  /** Names of domains, all of them or only those in one state. */
  async names(filter: "--all" | "--state-running" | "--state-shutoff"): Promise<string[]> {
    return parseNameList((await this.run(["list", "--name", filter])).stdout.toString("utf8"));
  }

  /**
   * The domain's state, or ABSENT when no such domain is defined. "No such
   * domain" is established by listing rather than by matching virsh's
   * (translatable) error text.
   */
  async state(name: string): Promise<DomainState> {
    const r = await this.run(["domstate", "--", name], { okCodes: [0, 1] });
    if (r.code === 0) {
      const state = parseDomState(r.stdout.toString("utf8"));
      return { power: powerStateOf(state), state };
    }
    if (!(await this.names("--all")).includes(name)) return ABSENT;
    throw new CommandError(["virsh", "domstate", name], r.code, r.stderr);
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
