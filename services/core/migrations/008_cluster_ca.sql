-- The cluster's certificate authority (pki.ts): it signs the agents'
-- certificates at registration and the control-plane processes' own. One
-- row, made by the first API process to start.
CREATE TABLE cluster_ca (
  id         integer PRIMARY KEY CHECK (id = 1),
  cert_pem   text NOT NULL,
  key_pem    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
