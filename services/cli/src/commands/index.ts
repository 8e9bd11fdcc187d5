// Every command the CLI offers: one per operation of the core's table, in
// the table's order (`cirrus --help` lists them so).
import { KINDS, OPERATIONS } from "@cirrus/core/surface";
import type { AnyCommandSpec } from "../command.js";
import { CUSTOMIZATIONS } from "./customizations.js";
import { deriveCommand, kebab } from "./derive.js";
import { STORAGE_CUSTOMIZATIONS } from "./storage.js";

const CUSTOM = { ...CUSTOMIZATIONS, ...STORAGE_CUSTOMIZATIONS };

export const COMMANDS: AnyCommandSpec[] = OPERATIONS.map((op) =>
  deriveCommand(op, KINDS.filter((k) => op.kinds.includes(k.name)), CUSTOM[kebab(op.name)]),
);
