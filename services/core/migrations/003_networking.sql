-- VPCs, subnets, security groups and elastic IPs.
--
-- Address allocation uses pool tables with one row per assignable address:
-- a claim is `UPDATE … WHERE ip = (SELECT … FOR UPDATE SKIP LOCKED)`, so
-- concurrent claims never hand out one address twice and never wait on
-- each other, and the primary key makes a double assignment impossible
-- even if the code were wrong.
CREATE TABLE vpcs (
  id         text PRIMARY KEY,
  owner_id   text NOT NULL,
  cidr       cidr NOT NULL,
  is_default boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX vpcs_one_default ON vpcs (owner_id) WHERE is_default;

CREATE TABLE subnets (
  id                text PRIMARY KEY,
  vpc_id            text NOT NULL REFERENCES vpcs (id),
  owner_id          text NOT NULL,
  cidr              cidr NOT NULL,
  availability_zone text NOT NULL,
  default_for_az    boolean NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX subnets_one_default_per_az ON subnets (vpc_id, availability_zone) WHERE default_for_az;

-- Every assignable address of every subnet (EC2 reserves the first four and
-- the last; the first usable, .1, is the host's gateway on the bridge).
CREATE TABLE subnet_addresses (
  subnet_id   text NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
  ip          inet NOT NULL,
  instance_id text UNIQUE,
  PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX subnet_addresses_free ON subnet_addresses (subnet_id, ip) WHERE instance_id IS NULL;

CREATE TABLE security_groups (
  id          text PRIMARY KEY,
  owner_id    text NOT NULL,
  vpc_id      text NOT NULL REFERENCES vpcs (id),
  name        text NOT NULL,
  description text NOT NULL,
  is_default  boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (vpc_id, name)
);

-- protocol: tcp, udp, icmp or -1 (all). Ports -1 when not applicable.
-- Exactly one of cidr and source_group_id is set.
CREATE TABLE security_group_rules (
  id              text PRIMARY KEY,
  group_id        text NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
  is_egress       boolean NOT NULL,
  protocol        text NOT NULL,
  from_port       integer NOT NULL,
  to_port         integer NOT NULL,
  cidr            cidr,
  source_group_id text REFERENCES security_groups (id),
  description     text NOT NULL DEFAULT '',
  CHECK ((cidr IS NULL) <> (source_group_id IS NULL)),
  UNIQUE NULLS NOT DISTINCT (group_id, is_egress, protocol, from_port, to_port, cidr, source_group_id)
);

CREATE TABLE instance_security_groups (
  instance_id text NOT NULL REFERENCES instances (id),
  group_id    text NOT NULL REFERENCES security_groups (id),
  PRIMARY KEY (instance_id, group_id)
);
CREATE INDEX instance_security_groups_group ON instance_security_groups (group_id);

ALTER TABLE instances
  ADD COLUMN vpc_id text REFERENCES vpcs (id) ON DELETE SET NULL,
  ADD COLUMN subnet_id text REFERENCES subnets (id) ON DELETE SET NULL,
  ADD COLUMN private_ip inet,
  ADD COLUMN key_name text NOT NULL DEFAULT '',
  ADD COLUMN public_key text NOT NULL DEFAULT '';

-- The operator's public address pool, one row per address. allocation_id
-- is set while the address is allocated to an account.
CREATE TABLE address_pool (
  ip            inet PRIMARY KEY,
  allocation_id text UNIQUE
);

-- id is the allocation id (eipalloc-…).
CREATE TABLE addresses (
  id             text PRIMARY KEY,
  owner_id       text NOT NULL,
  public_ip      inet NOT NULL UNIQUE REFERENCES address_pool (ip),
  association_id text UNIQUE,
  instance_id    text REFERENCES instances (id),
  private_ip     inet,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX addresses_one_per_private_ip ON addresses (private_ip) WHERE private_ip IS NOT NULL;
