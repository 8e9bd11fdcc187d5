-- Host states (services/core/src/hostState.ts). Each compile of a host's
-- state (its instances and network) takes the next revision of its counter
-- here; agents apply states in revision order.
CREATE TABLE host_states (
  host_id  text PRIMARY KEY REFERENCES hosts (id),
  revision bigint NOT NULL
);

-- A mark per change that concerns a host, written in the change's own
-- transaction: while one exists, the host's next heartbeat (or push) gets a
-- freshly compiled state, so a change is never lost to a push that failed or
-- a process that died after committing. Rows are only inserted, so
-- concurrent changes never wait on each other; a compile deletes the marks
-- it covers.
CREATE TABLE host_state_changes (
  id      bigserial PRIMARY KEY,
  host_id text NOT NULL
);
CREATE INDEX host_state_changes_host ON host_state_changes (host_id);

-- When the revision was compiled: a heartbeat behind a revision compiled a
-- moment ago leaves its delivery to the push that is on its way.
ALTER TABLE host_states ADD COLUMN compiled_at timestamptz NOT NULL DEFAULT now();
