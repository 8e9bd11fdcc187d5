// Every command the CLI offers, in the order `cirrus --help` lists them.
import type { AnyCommandSpec } from "../command.js";
import { addressCommands } from "./addresses.js";
import { catalogCommands } from "./catalog.js";
import { imageCommands } from "./images.js";
import { instanceCommands } from "./instances.js";
import { keyPairCommands } from "./keyPairs.js";
import { networkCommands } from "./network.js";
import { securityGroupCommands } from "./securityGroups.js";

export const COMMANDS: AnyCommandSpec[] = [
  ...instanceCommands,
  ...imageCommands,
  ...keyPairCommands,
  ...networkCommands,
  ...securityGroupCommands,
  ...addressCommands,
  ...catalogCommands,
];
