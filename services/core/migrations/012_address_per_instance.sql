-- One elastic IP per instance, not per private address: every account's
-- default VPC has the same CIDR (as in EC2), so two accounts' instances can
-- hold the same private address, and one's association must not end the
-- other's (addresses.ts, associateAddress).
DROP INDEX addresses_one_per_private_ip;
CREATE UNIQUE INDEX addresses_one_per_instance ON addresses (instance_id) WHERE instance_id IS NOT NULL;
