-- EBS volumes and snapshots (services/core/src/volumes/). Each has the EC2
-- state plus the step in flight (task, task_seq), as instances do; a
-- volume's one attachment lives on its row (Cirrus has no multi-attach).
CREATE TABLE volumes (
  id                    text PRIMARY KEY,
  owner_id              text NOT NULL,
  availability_zone     text NOT NULL,
  size_gib              integer NOT NULL CHECK (size_gib > 0),
  volume_type           text NOT NULL,
  iops                  integer,
  throughput            integer,
  snapshot_id           text NOT NULL DEFAULT '',
  encrypted             boolean NOT NULL DEFAULT false,
  -- creating, available, in-use, deleting, deleted, error
  state                 text NOT NULL,
  -- create, delete, attach, detach, modify
  task                  text,
  task_seq              integer NOT NULL DEFAULT 1,
  state_changed_at      timestamptz NOT NULL DEFAULT now(),
  state_message         text NOT NULL DEFAULT '',
  client_token          text,
  request_hash          text,
  created_at            timestamptz NOT NULL DEFAULT now(),
  deleted_at            timestamptz,
  -- The attachment: instance, the device name the user gave, the virtio
  -- target the guest sees (vdb…), and its state (attaching, attached, detaching).
  instance_id           text REFERENCES instances (id),
  device                text,
  target                text,
  attachment_state      text,
  attach_time           timestamptz,
  delete_on_termination boolean NOT NULL DEFAULT false,
  detach_force          boolean NOT NULL DEFAULT false,
  -- The latest modification (ModifyVolume): EC2 keeps the most recent one per volume.
  mod_state             text,
  mod_message           text NOT NULL DEFAULT '',
  mod_original          jsonb,
  mod_target            jsonb,
  mod_start_time        timestamptz,
  mod_end_time          timestamptz,
  row_seq               bigserial UNIQUE,
  CHECK ((instance_id IS NULL) = (attachment_state IS NULL) AND (instance_id IS NULL) = (target IS NULL))
);
CREATE UNIQUE INDEX volumes_client_token ON volumes (owner_id, client_token) WHERE client_token IS NOT NULL;
-- One volume per device name and per virtio target of an instance.
CREATE UNIQUE INDEX volumes_instance_device ON volumes (instance_id, device) WHERE instance_id IS NOT NULL;
CREATE UNIQUE INDEX volumes_instance_target ON volumes (instance_id, target) WHERE instance_id IS NOT NULL;
CREATE INDEX volumes_in_flight ON volumes (id) WHERE task IS NOT NULL;
CREATE INDEX volumes_owner ON volumes (owner_id, row_seq);

CREATE TABLE snapshots (
  id                text PRIMARY KEY,
  owner_id          text NOT NULL,
  -- The volume it was taken of (for a copy: the source's volume); kept after the volume is deleted, as EC2 shows it.
  volume_id         text NOT NULL,
  volume_size_gib   integer NOT NULL,
  description       text NOT NULL DEFAULT '',
  encrypted         boolean NOT NULL DEFAULT false,
  -- The snapshot a copy is made from.
  source_snapshot_id text,
  -- pending, completed, error, deleted
  state             text NOT NULL,
  -- create, copy, delete
  task              text,
  task_seq          integer NOT NULL DEFAULT 1,
  progress          integer NOT NULL DEFAULT 0,
  state_message     text NOT NULL DEFAULT '',
  stored_bytes      bigint,
  start_time        timestamptz NOT NULL DEFAULT now(),
  state_changed_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at        timestamptz,
  row_seq           bigserial UNIQUE
);
CREATE INDEX snapshots_in_flight ON snapshots (id) WHERE task IS NOT NULL;
CREATE INDEX snapshots_volume ON snapshots (volume_id);
CREATE INDEX snapshots_owner ON snapshots (owner_id, row_seq);
