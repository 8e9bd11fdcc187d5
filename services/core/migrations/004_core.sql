-- The core redesign (docs/ARCHITECTURE.md).

-- Heartbeats write here, never to `hosts`: a launch claiming capacity holds
-- host rows until it commits, and a heartbeat must not wait for that.
CREATE TABLE host_heartbeats (
  host_id           text PRIMARY KEY REFERENCES hosts (id),
  last_heartbeat_at timestamptz NOT NULL
);
INSERT INTO host_heartbeats (host_id, last_heartbeat_at)
  SELECT id, last_heartbeat_at FROM hosts WHERE last_heartbeat_at IS NOT NULL;
ALTER TABLE hosts DROP COLUMN last_heartbeat_at;

-- Tags carry their owner and EC2 resource type, so DescribeTags is one
-- scoped query over this table.
ALTER TABLE tags ADD COLUMN owner_id text, ADD COLUMN resource_type text;
UPDATE tags t SET owner_id = r.owner_id, resource_type = r.type
  FROM (
    SELECT id, owner_id, 'instance' AS type FROM instances
    UNION ALL SELECT id, owner_id, 'image' FROM images
    UNION ALL SELECT id, owner_id, 'key-pair' FROM key_pairs
    UNION ALL SELECT id, owner_id, 'vpc' FROM vpcs
    UNION ALL SELECT id, owner_id, 'subnet' FROM subnets
    UNION ALL SELECT id, owner_id, 'security-group' FROM security_groups
    UNION ALL SELECT id, owner_id, 'elastic-ip' FROM addresses
  ) r
  WHERE r.id = t.resource_id;
-- Tags whose resource is gone were orphans already.
DELETE FROM tags WHERE owner_id IS NULL;
ALTER TABLE tags ALTER COLUMN owner_id SET NOT NULL, ALTER COLUMN resource_type SET NOT NULL;
CREATE INDEX tags_owner ON tags (owner_id, resource_id, key);
