-- The work queue. Contract for producers: insert the call keys only,
--   INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES (...) ON CONFLICT DO NOTHING;
-- every other column belongs to the job and has a default.
CREATE TABLE cms.call_queue (
    cc_id            integer     NOT NULL,
    vdn              integer     NOT NULL,
    call_id          text        NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
        CONSTRAINT call_queue_status_check CHECK (status IN ('pending', 'running', 'done', 'no_data', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    available_at     timestamptz NOT NULL DEFAULT now(),
    locked_by        text,
    locked_until     timestamptz,
    last_error       text,
    last_result_code text,
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT call_queue_pkey PRIMARY KEY (cc_id, vdn, call_id)
);

-- Claims read live rows in due order (status IN (pending, running) AND
-- available_at <= now(); a running row's available_at is its lease end), and
-- finished rows, the bulk of the table over time, stay out of the index.
CREATE INDEX call_queue_claimable_idx ON cms.call_queue (available_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX call_queue_failed_idx ON cms.call_queue (last_result_code)
    WHERE status = 'failed';

COMMENT ON TABLE cms.call_queue IS
    'Calls waiting to be fetched. Producers insert (cc_id, vdn, call_id) with ON CONFLICT DO NOTHING; the job owns the other columns. A row is claimable when pending and available_at <= now(), or running with locked_until in the past (its worker died).';
COMMENT ON COLUMN cms.call_queue.cc_id IS 'Call center ID (ccId, 1..65535).';
COMMENT ON COLUMN cms.call_queue.vdn IS 'VDN ID (vdn, 1..5000).';
COMMENT ON COLUMN cms.call_queue.call_id IS 'Call ID (callId), "digits-digits", at most 20 characters.';
COMMENT ON COLUMN cms.call_queue.status IS 'pending: waiting (possibly until available_at); running: claimed by locked_by until locked_until; done: stored in cms.call_info; no_data: CC-CMS had no data for the call; failed: gave up (see last_error, last_result_code).';
COMMENT ON COLUMN cms.call_queue.attempts IS 'Number of claims since the row was enqueued or last requeued.';
COMMENT ON COLUMN cms.call_queue.available_at IS 'Earliest time the row may be claimed: for a pending row, now or after a retry backoff; for a running row, the end of its lease (equal to locked_until).';
COMMENT ON COLUMN cms.call_queue.locked_by IS 'Worker holding a running row: host:pid:run_id.';
COMMENT ON COLUMN cms.call_queue.locked_until IS 'End of the claim''s lease; after it another worker may claim the row.';
COMMENT ON COLUMN cms.call_queue.last_error IS 'Error of the last attempt that did not succeed.';
COMMENT ON COLUMN cms.call_queue.last_result_code IS 'Last CC-CMS resultCode (or HTTP status) that explains the outcome, when there was one.';
COMMENT ON COLUMN cms.call_queue.enqueued_at IS 'When the row was inserted.';
COMMENT ON COLUMN cms.call_queue.updated_at IS 'When the job last changed the row.';
