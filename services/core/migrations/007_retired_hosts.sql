-- A host the operator retired (hosts.ts, retireHost): it takes no instances,
-- its agent is refused, and what its instances held was released.
ALTER TABLE hosts ADD COLUMN retired_at timestamptz;
