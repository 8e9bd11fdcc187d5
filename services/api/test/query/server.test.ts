import { describe, expect, it } from "vitest";
import type { Core } from "@cirrus/core";
import type { Authenticator } from "../../src/auth.js";
import { loadApiConfig } from "../../src/config.js";
import { startQueryServer } from "../../src/query/server.js";

describe("the Query API's listener", () => {
  it("refuses to listen beyond loopback without a certificate", async () => {
    // Nothing is served, so neither the core nor the authenticator is used.
    const opts = { auth: {} as Authenticator, maxBodyBytes: 1024 };
    await expect(startQueryServer({} as Core, { ...opts, listen: "0.0.0.0:0" })).rejects.toThrow(/beyond loopback: give it a certificate/);
    await expect(startQueryServer({} as Core, { ...opts, listen: "10.1.2.3:0" })).rejects.toThrow(/beyond loopback/);
  });

  it("takes a certificate only with its key", () => {
    const base = { CIRRUS_ENROLMENT_TOKEN: "x".repeat(16) };
    expect(() => loadApiConfig({ ...base, CIRRUS_QUERY_TLS_CERT_FILE: "/etc/cirrus/query.crt" })).toThrow(/go together/);
    expect(() => loadApiConfig({ ...base, CIRRUS_QUERY_TLS_KEY_FILE: "/etc/cirrus/query.key" })).toThrow(/go together/);
    expect(loadApiConfig({ ...base, CIRRUS_QUERY_TLS_CERT_FILE: "/a", CIRRUS_QUERY_TLS_KEY_FILE: "/b" }).CIRRUS_QUERY_TLS_CERT_FILE).toBe("/a");
  });
});
