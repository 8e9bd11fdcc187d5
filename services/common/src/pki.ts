// The cluster's certificates: one CA (kept by the control plane), a
// certificate per agent issued at registration from the agent's own request
// (its key never leaves it), and one per control-plane process. X.509 and
// PKCS#10 with node-forge (well kept, pure JavaScript: Node can parse
// certificates but not make them); RSA keys come from node:crypto, which is
// fast where forge's JavaScript key generation is not.
import { generateKeyPair, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { isIP } from "node:net";
import forge from "node-forge";

/** The common name of every control-plane process's certificate; agents accept calls only from it. */
export const CONTROL_PLANE_CN = "cirrus-control-plane";

export interface KeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
}

/** A certificate with its private key, both PEM. */
export interface Credential {
  certPem: string;
  keyPem: string;
}

const DAY_MS = 86_400_000;

/** A new RSA-2048 key pair, made on libuv's thread pool (a process with a thousand agents must not stall on it). */
export async function generateKey(): Promise<KeyPair> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)("rsa", {
    modulusLength: 2048,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

function serial(): string {
  // Positive (leading bit clear) and unique enough: 120 random bits.
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString("hex");
}

function sign(cert: forge.pki.Certificate, keyPem: string): string {
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

/** A new self-signed CA, valid ten years. */
export async function createCa(name = "Cirrus cluster CA"): Promise<Credential> {
  const key = await generateKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3650 * DAY_MS);
  cert.setSubject([{ name: "commonName", value: name }]);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
  ]);
  return { certPem: sign(cert, key.privateKeyPem), keyPem: key.privateKeyPem };
}

/** A PKCS#10 request for `key`'s public key (the subject is the CA's to choose). */
export function createCsr(key: KeyPair): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(key.publicKeyPem);
  csr.setSubject([{ name: "commonName", value: "cirrus" }]);
  csr.sign(forge.pki.privateKeyFromPem(key.privateKeyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

/** The public key (PEM) of a request whose signature proves its holder has the private key; throws otherwise. */
export function csrPublicKey(csrPem: string): string {
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch {
    throw new Error("not a PEM certificate request");
  }
  if (!csr.publicKey || !csr.verify()) throw new Error("the certificate request's signature does not verify");
  return forge.pki.publicKeyToPem(csr.publicKey);
}

/**
 * A certificate signed by `ca` for `publicKeyPem`, valid a year, usable as
 * TLS server and client certificate, naming `commonName` and the
 * alternative names `hosts` (IP addresses and DNS names).
 */
export function issueCertificate(ca: Credential, publicKeyPem: string, commonName: string, hosts: readonly string[]): string {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * DAY_MS);
  cert.setSubject([{ name: "commonName", value: commonName }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [...new Set(hosts)].map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    ...(altNames.length ? [{ name: "subjectAltName", altNames }] : []),
  ]);
  return sign(cert, ca.keyPem);
}

/** A fresh key and a certificate for it from `ca`: a control-plane process's own credential. */
export async function issueCredential(ca: Credential, commonName: string, hosts: readonly string[]): Promise<Credential> {
  const key = await generateKey();
  return { certPem: issueCertificate(ca, key.publicKeyPem, commonName, hosts), keyPem: key.privateKeyPem };
}

/** The host part of "host:port" or "[v6]:port". */
export function endpointHost(endpoint: string): string {
  return endpoint.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
}
