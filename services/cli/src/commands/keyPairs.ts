// Key pair commands.
import { compute } from "@cirrus/proto";
import { defineCommand, type AnyCommandSpec } from "../command.js";
import { grid } from "../output.js";
import { FILTERS, TAG_SPECIFICATIONS } from "./common-params.js";

const api = compute.ComputeService;

export const keyPairCommands: AnyCommandSpec[] = [
  defineCommand({
    name: "create-key-pair",
    summary: "Create a key pair; prints the private key once (save it with --query KeyMaterial --output text > key.pem)",
    rpc: api.createKeyPair,
    request: compute.CreateKeyPairRequest,
    response: compute.CreateKeyPairResponse,
    params: [
      { flag: "key-name", kind: "string", description: "a unique name for the key pair", required: true },
      { flag: "key-type", kind: "string", description: "rsa (default, 2048 bits) or ed25519" },
      { flag: "key-format", kind: "string", description: "pem (default)" },
      TAG_SPECIFICATIONS,
    ],
  }),
  defineCommand({
    name: "import-key-pair",
    summary: "Import a public key (OpenSSH, RFC 4716, or base64 DER; rsa or ed25519)",
    rpc: api.importKeyPair,
    request: compute.ImportKeyPairRequest,
    response: compute.ImportKeyPairResponse,
    params: [
      { flag: "key-name", kind: "string", description: "a unique name for the key pair", required: true },
      {
        flag: "public-key-material",
        kind: "blob",
        description: "the public key: fileb://~/.ssh/id_ed25519.pub, or the key text itself",
        required: true,
      },
      TAG_SPECIFICATIONS,
    ],
  }),
  defineCommand({
    name: "describe-key-pairs",
    summary: "Describe key pairs",
    rpc: api.describeKeyPairs,
    request: compute.DescribeKeyPairsRequest,
    response: compute.DescribeKeyPairsResponse,
    params: [
      { flag: "key-names", kind: "string-list", description: "key pair names" },
      { flag: "key-pair-ids", kind: "string-list", description: "key pair IDs" },
      FILTERS("key-name, key-pair-id, fingerprint, key-type, tag:<key>, tag-key"),
      { flag: "include-public-key", kind: "flag", description: "include the OpenSSH public key" },
    ],
    listKey: "KeyPairs",
    table: (res) =>
      grid(res.KeyPairs, {
        KeyPairId: (k) => k.KeyPairId,
        KeyName: (k) => k.KeyName,
        KeyType: (k) => k.KeyType,
        KeyFingerprint: (k) => k.KeyFingerprint,
        CreateTime: (k) => k.CreateTime,
      }),
  }),
  defineCommand({
    name: "delete-key-pair",
    summary: "Delete a key pair (by name or ID); instances launched with it keep it",
    rpc: api.deleteKeyPair,
    request: compute.DeleteKeyPairRequest,
    response: compute.DeleteKeyPairResponse,
    params: [
      { flag: "key-name", kind: "string", description: "the key pair's name" },
      { flag: "key-pair-id", kind: "string", description: "the key pair's ID" },
    ],
  }),
];
