-- Run bookkeeping: one row per run, and the rows a run could not load.
CREATE TABLE cms.etl_run (
    id              text PRIMARY KEY,
    host            text,
    version         text,
    input           text,
    outputs         text,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running'
        CONSTRAINT etl_run_status_check CHECK (status IN ('running', 'succeeded', 'partial', 'aborted')),
    rows_read       bigint NOT NULL DEFAULT 0,
    loaded          bigint NOT NULL DEFAULT 0,
    no_data         bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    rejected        bigint NOT NULL DEFAULT 0,
    duplicate       bigint NOT NULL DEFAULT 0,
    configured_rate double precision,
    achieved_rate   double precision,
    summary         jsonb
);
CREATE INDEX etl_run_started_at_idx ON cms.etl_run (started_at);

COMMENT ON TABLE cms.etl_run IS 'One row per run of the job, written at start and updated at the end.';
COMMENT ON COLUMN cms.etl_run.id IS 'Run ID (also cms.call_info.run_id and cms.call_failure.run_id).';
COMMENT ON COLUMN cms.etl_run.host IS 'Host the run ran on.';
COMMENT ON COLUMN cms.etl_run.version IS 'Version of the job binary.';
COMMENT ON COLUMN cms.etl_run.input IS 'Input of the run: a CSV path or the queue.';
COMMENT ON COLUMN cms.etl_run.outputs IS 'Outputs written: Postgres and/or Parquet locations (no credentials).';
COMMENT ON COLUMN cms.etl_run.started_at IS 'When the run started.';
COMMENT ON COLUMN cms.etl_run.finished_at IS 'When the run ended; NULL while running or when it died.';
COMMENT ON COLUMN cms.etl_run.status IS 'running, succeeded (every row loaded or no_data), partial (some rows failed or were rejected), aborted (stopped early, e.g. authentication refused).';
COMMENT ON COLUMN cms.etl_run.rows_read IS 'Input rows read.';
COMMENT ON COLUMN cms.etl_run.loaded IS 'Calls written to the outputs.';
COMMENT ON COLUMN cms.etl_run.no_data IS 'Calls for which CC-CMS returned no data.';
COMMENT ON COLUMN cms.etl_run.failed IS 'Calls that failed after their retries.';
COMMENT ON COLUMN cms.etl_run.rejected IS 'Input rows rejected before any request (invalid keys).';
COMMENT ON COLUMN cms.etl_run.duplicate IS 'Input rows skipped as duplicates.';
COMMENT ON COLUMN cms.etl_run.configured_rate IS 'Configured request rate limit, requests per second.';
COMMENT ON COLUMN cms.etl_run.achieved_rate IS 'Achieved request rate, requests per second.';
COMMENT ON COLUMN cms.etl_run.summary IS 'The run summary as JSON (counts per outcome, unknown codes, error classes).';

-- Rows of a run that were not loaded. A rejected row may have ids that do
-- not parse: its typed key columns are then NULL and raw_* keep the text read.
CREATE TABLE cms.call_failure (
    id          bigserial PRIMARY KEY,
    run_id      text NOT NULL,
    line        bigint,
    cc_id       integer,
    vdn         integer,
    call_id     text,
    raw_cc_id   text,
    raw_vdn     text,
    raw_call_id text,
    outcome     text NOT NULL
        CONSTRAINT call_failure_outcome_check CHECK (outcome IN ('failed', 'rejected')),
    reason      text,
    result_code text,
    http_status integer,
    attempts    integer NOT NULL DEFAULT 0,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_failure_run_id_idx ON cms.call_failure (run_id);

COMMENT ON TABLE cms.call_failure IS 'Input rows a run failed to load (failed) or refused before any request (rejected).';
COMMENT ON COLUMN cms.call_failure.id IS 'Surrogate key.';
COMMENT ON COLUMN cms.call_failure.run_id IS 'Run that recorded the row (cms.etl_run.id).';
COMMENT ON COLUMN cms.call_failure.line IS 'Line number in the input file; NULL for queue input.';
COMMENT ON COLUMN cms.call_failure.cc_id IS 'ccId of a valid key; NULL when the row''s key is invalid (see raw_cc_id).';
COMMENT ON COLUMN cms.call_failure.vdn IS 'vdn of a valid key; NULL when the row''s key is invalid (see raw_vdn).';
COMMENT ON COLUMN cms.call_failure.call_id IS 'callId of a valid key; NULL when the row''s key is invalid (see raw_call_id).';
COMMENT ON COLUMN cms.call_failure.raw_cc_id IS 'ccId exactly as read from the input, when there was input text.';
COMMENT ON COLUMN cms.call_failure.raw_vdn IS 'vdn exactly as read from the input, when there was input text.';
COMMENT ON COLUMN cms.call_failure.raw_call_id IS 'callId exactly as read from the input, when there was input text.';
COMMENT ON COLUMN cms.call_failure.outcome IS 'failed (requests did not succeed) or rejected (invalid input, never sent).';
COMMENT ON COLUMN cms.call_failure.reason IS 'Why, in words: the last error or the validation message.';
COMMENT ON COLUMN cms.call_failure.result_code IS 'Last CC-CMS resultCode, when one was received.';
COMMENT ON COLUMN cms.call_failure.http_status IS 'Last HTTP status, when a response was received.';
COMMENT ON COLUMN cms.call_failure.attempts IS 'Requests made for the row.';
COMMENT ON COLUMN cms.call_failure.at IS 'When the failure was recorded.';
