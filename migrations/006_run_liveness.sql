-- Run liveness. A run holds a session-level advisory lock keyed by its id
-- for its whole life (load/postgres.LockRun), taken before its row is
-- written. A row still 'running' whose lock any session can take belongs to
-- a run that is gone (killed, its host or the database restarted): the next
-- run marks it 'abandoned' with a finish time.
ALTER TABLE cms.etl_run DROP CONSTRAINT etl_run_status_check;
ALTER TABLE cms.etl_run ADD CONSTRAINT etl_run_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'aborted', 'abandoned'));
-- Runs look up the rows still running at start.
CREATE INDEX etl_run_running_idx ON cms.etl_run (started_at) WHERE status = 'running';

COMMENT ON COLUMN cms.etl_run.finished_at IS 'When the run ended; for an abandoned run, when a later run found it gone. NULL while running.';
COMMENT ON COLUMN cms.etl_run.status IS 'running, succeeded (every row loaded or no_data), partial (some rows failed or were rejected), aborted (stopped early, e.g. authentication refused or interrupted), abandoned (the run died without finishing, e.g. kill -9 or a database restart: a later run found it gone and set finished_at; its counts stay zero, as written at start).';
