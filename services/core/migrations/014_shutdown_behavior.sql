-- InstanceInitiatedShutdownBehavior: what a guest that powers itself off
-- becomes (hosts.ts, the heartbeat's drift).
ALTER TABLE instances ADD COLUMN shutdown_behavior text NOT NULL DEFAULT 'stop' CHECK (shutdown_behavior IN ('stop', 'terminate'));
