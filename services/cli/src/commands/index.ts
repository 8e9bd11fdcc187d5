// Every command the CLI offers, in the order `cirrus --help` lists them.
import type { AnyCommandSpec } from "../command.js";
import { catalogCommands } from "./catalog.js";
import { imageCommands } from "./images.js";
import { instanceCommands } from "./instances.js";

export const COMMANDS: AnyCommandSpec[] = [...instanceCommands, ...imageCommands, ...catalogCommands];
