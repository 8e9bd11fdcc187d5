-- Hosts enrolled by their agents. used_* is the capacity reserved by
-- non-terminated instances; it only changes inside the transaction that
-- places or terminates an instance, under a row lock.
CREATE TABLE hosts (
  id                text PRIMARY KEY,
  name              text NOT NULL UNIQUE,
  availability_zone text NOT NULL,
  endpoint          text NOT NULL,
  hypervisor        text NOT NULL,
  secret            text NOT NULL,
  vcpus             integer NOT NULL CHECK (vcpus >= 0),
  memory_mib        integer NOT NULL CHECK (memory_mib >= 0),
  disk_gib          integer NOT NULL CHECK (disk_gib >= 0),
  used_vcpus        integer NOT NULL DEFAULT 0 CHECK (used_vcpus >= 0),
  used_memory_mib   integer NOT NULL DEFAULT 0 CHECK (used_memory_mib >= 0),
  used_disk_gib     integer NOT NULL DEFAULT 0 CHECK (used_disk_gib >= 0),
  last_heartbeat_at timestamptz,
  registered_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE images (
  id                  text PRIMARY KEY,
  owner_id            text NOT NULL,
  name                text NOT NULL,
  description         text NOT NULL DEFAULT '',
  state               text NOT NULL,
  location            text NOT NULL,
  kernel_location     text NOT NULL DEFAULT '',
  ramdisk_location    text NOT NULL DEFAULT '',
  kernel_cmdline      text NOT NULL DEFAULT '',
  architecture        text NOT NULL,
  root_device_name    text NOT NULL,
  virtualization_type text NOT NULL,
  root_size_gib       integer NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX images_owner_name ON images (owner_id, name) WHERE state <> 'deregistered';

-- Tags of any resource, keyed by its EC2 id.
CREATE TABLE tags (
  resource_id text NOT NULL,
  key         text NOT NULL,
  value       text NOT NULL,
  PRIMARY KEY (resource_id, key)
);

-- RunInstances ClientToken idempotency: one row per token and account.
CREATE TABLE run_requests (
  owner_id       text NOT NULL,
  client_token   text NOT NULL,
  request_hash   text NOT NULL,
  reservation_id text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner_id, client_token)
);

-- state is the stable EC2 state; task is the lifecycle step in flight (NULL
-- when none) and task_seq numbers the steps so a superseded job is a no-op.
CREATE TABLE instances (
  row_seq                 bigserial NOT NULL UNIQUE,
  id                      text PRIMARY KEY,
  reservation_id          text NOT NULL,
  owner_id                text NOT NULL,
  image_id                text NOT NULL REFERENCES images (id),
  instance_type           text NOT NULL,
  vcpus                   integer NOT NULL,
  memory_mib              integer NOT NULL,
  disk_gib                integer NOT NULL,
  host_id                 text REFERENCES hosts (id),
  availability_zone       text NOT NULL,
  state                   text NOT NULL,
  task                    text,
  task_seq                integer NOT NULL DEFAULT 1,
  stop_force              boolean NOT NULL DEFAULT false,
  state_reason_code       text NOT NULL DEFAULT '',
  state_reason_message    text NOT NULL DEFAULT '',
  state_transition_reason text NOT NULL DEFAULT '',
  launch_index            integer NOT NULL,
  client_token            text NOT NULL DEFAULT '',
  user_data               text NOT NULL DEFAULT '',
  launched_at             timestamptz NOT NULL DEFAULT now(),
  state_changed_at        timestamptz NOT NULL DEFAULT now(),
  terminated_at           timestamptz
);
CREATE INDEX instances_host_live ON instances (host_id) WHERE state <> 'terminated';
CREATE INDEX instances_reservation ON instances (reservation_id);
CREATE INDEX instances_task ON instances (task_seq) WHERE task IS NOT NULL;

