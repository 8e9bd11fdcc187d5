-- The SHA-256 of the public key a host enrolled with (hosts.ts, registerHost):
-- an enrolment whose answer was lost is retried with the token and the same
-- key, and gets the same identity; the token with another key is refused.
ALTER TABLE hosts ADD COLUMN enrolment_key text NOT NULL DEFAULT '';
