-- EC2 key pairs. Only the public key is kept (OpenSSH format, commented with
-- the key name); a created key's private half is returned once and forgotten.
-- The fingerprint is EC2's: it depends on how the key arrived (created RSA:
-- SHA-1 of the PKCS#8 private key; imported RSA: MD5 of the public key DER;
-- ed25519: base64 SHA-256 of the key blob). Tags live in `tags`.
CREATE TABLE key_pairs (
  id          text PRIMARY KEY,
  owner_id    text NOT NULL,
  name        text NOT NULL,
  key_type    text NOT NULL CHECK (key_type IN ('rsa', 'ed25519')),
  fingerprint text NOT NULL,
  public_key  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (owner_id, name)
);
