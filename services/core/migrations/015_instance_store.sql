-- The instance-store disks an instance got at launch, from its type
-- (agent.proto's InstanceStoreDisk: name, target, sizeGib). They live on
-- its host like its root disk, so instances.disk_gib (the host disk the
-- instance holds, which claims and the capacity audit count) includes them;
-- the root disk is disk_gib less their sizes (instances/spec.ts).
ALTER TABLE instances ADD COLUMN instance_store jsonb NOT NULL DEFAULT '[]';
