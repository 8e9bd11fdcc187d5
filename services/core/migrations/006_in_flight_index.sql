-- Steps in flight, by id: the sweeper walks them in id order from a cursor
-- (lifecycle.ts, StaleSweeper), so many stuck steps cannot starve the rest.
CREATE INDEX instances_in_flight ON instances (id) WHERE task IS NOT NULL;
DROP INDEX instances_task;
