-- Accounts and their access keys (accounts.ts). Every resource's owner_id is
-- an account id. Resources made before accounts existed belong to
-- 123456789012, the id `npm run up` gives the account named "default"; no
-- account is made here.
CREATE TABLE accounts (
  id          text PRIMARY KEY CHECK (id ~ '^[0-9]{12}$'),
  name        text NOT NULL UNIQUE,
  -- The cloud's operator: may manage hosts and accounts through the API.
  operator    boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- SigV4 needs the secret itself, so it is kept encrypted (AES-256-GCM under
-- the operator's secrets key, CIRRUS_SECRETS_KEY_FILE), never in clear.
CREATE TABLE access_keys (
  id                text PRIMARY KEY CHECK (id ~ '^AKIA[A-Z2-7]{16}$'),
  account_id        text NOT NULL REFERENCES accounts (id),
  secret_sealed     bytea NOT NULL,
  status            text NOT NULL DEFAULT 'Active' CHECK (status IN ('Active', 'Inactive')),
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_keys_account ON access_keys (account_id);
