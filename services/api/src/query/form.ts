// application/x-www-form-urlencoded, strictly: the Query API's parameters
// come from a POST body or a GET query string in this form. Node's
// URLSearchParams would turn a malformed escape or invalid UTF-8 into
// replacement characters silently; here they are refused, so what reaches an
// operation is exactly what the client meant.
import { Ec2Error } from "@cirrus/core";

function decodeComponent(raw: string): string {
  if (/%(?![0-9a-fA-F]{2})/.test(raw)) throw new Ec2Error("InvalidParameterValue", "The request has a malformed percent-encoding.");
  try {
    // Once every escape is well-formed, decodeURIComponent fails only on bytes that are not UTF-8.
    return decodeURIComponent(raw.replace(/\+/g, " "));
  } catch {
    throw new Ec2Error("InvalidParameterValue", "The request is not valid UTF-8.");
  }
}

/**
 * The name/value pairs of `raw` in their order, duplicates kept (the caller
 * decides what a duplicate means). Throws InvalidParameterValue for a
 * malformed escape, invalid UTF-8 or an empty name.
 */
export function parseForm(raw: string): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const part of raw.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = decodeComponent(eq < 0 ? part : part.slice(0, eq));
    if (name === "") throw new Ec2Error("InvalidParameterValue", "The request has a parameter without a name.");
    pairs.push([name, eq < 0 ? "" : decodeComponent(part.slice(eq + 1))]);
  }
  return pairs;
}
