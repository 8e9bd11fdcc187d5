-- Create-volume permissions of snapshots (volumes/snapshotSharing.ts): who
-- besides its owner may make volumes from a snapshot and copy it. None:
-- private; 'all': public; an account id: shared with that account.
CREATE TABLE snapshot_permissions (
  snapshot_id text NOT NULL REFERENCES snapshots (id),
  grantee     text NOT NULL CHECK (grantee = 'all' OR grantee ~ '^[0-9]{12}$'),
  PRIMARY KEY (snapshot_id, grantee)
);
CREATE INDEX snapshot_permissions_grantee ON snapshot_permissions (grantee, snapshot_id);
