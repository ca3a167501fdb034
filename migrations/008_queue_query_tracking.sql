-- The queue carries what to ask (issue 13) and follows live calls (issue
-- 12). The producer contract is unchanged:
--   INSERT INTO cms.call_queue (cc_id, vdn, call_id) VALUES (...) ON CONFLICT DO NOTHING;
-- means "ask querybasiccallinfo". etl discover enqueues CDR work with its
-- direction. A call may be queued once per query.
ALTER TABLE cms.call_queue
    ADD COLUMN query text NOT NULL DEFAULT 'basic'
        CONSTRAINT call_queue_query_check CHECK (query IN ('basic', 'cdr')),
    ADD COLUMN is_call_in boolean,
    ADD COLUMN no_data_answers integer NOT NULL DEFAULT 0,
    ADD COLUMN live_since timestamptz,
    ADD COLUMN last_answer jsonb,
    ADD COLUMN last_answer_at timestamptz;

ALTER TABLE cms.call_queue DROP CONSTRAINT call_queue_pkey;
ALTER TABLE cms.call_queue ADD CONSTRAINT call_queue_pkey PRIMARY KEY (cc_id, vdn, call_id, query);

-- Claims read one query's live rows, new calls before tracked calls' next
-- polls, each in due order (the claim's ORDER BY); a stopping worker hands
-- back its running rows by owner.
DROP INDEX cms.call_queue_claimable_idx;
CREATE INDEX call_queue_claimable_idx ON cms.call_queue (query, (live_since IS NOT NULL), available_at)
    WHERE status IN ('pending', 'running');
CREATE INDEX call_queue_owner_idx ON cms.call_queue (locked_by)
    WHERE status = 'running';

-- One notification per inserting statement wakes followers (etl run --input
-- queue --follow); a bulk insert is one wake-up, not a flood. Followers also
-- poll, so a notification lost while one was disconnected delays nothing
-- for long.
CREATE FUNCTION cms.call_queue_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cms_call_queue', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER call_queue_notify AFTER INSERT ON cms.call_queue
    FOR EACH STATEMENT EXECUTE FUNCTION cms.call_queue_notify();

COMMENT ON FUNCTION cms.call_queue_notify() IS 'Sends NOTIFY cms_call_queue once per statement that inserts queue rows.';
COMMENT ON COLUMN cms.call_queue.status IS 'pending: waiting (possibly until available_at; a call being tracked waits for its next poll); running: claimed by locked_by until locked_until; done: stored (or, for a tracked call, its tracking ended); no_data: CC-CMS had no data for the call after the no-data retries; failed: gave up (see last_error, last_result_code).';
COMMENT ON COLUMN cms.call_queue.query IS 'What to ask: basic (querybasiccallinfo, while the call is live; the default) or cdr (querycalldetailbyid, the CDR of a finished call).';
COMMENT ON COLUMN cms.call_queue.is_call_in IS 'The call''s direction, asked by the cdr query (isCallin): true = inbound; NULL = unknown (etl run --direction decides).';
COMMENT ON COLUMN cms.call_queue.no_data_answers IS '"No data" answers so far: a call asked too early (just started) is asked again a few times while it is recent.';
COMMENT ON COLUMN cms.call_queue.live_since IS 'When the call first answered live, for a call being tracked (etl run --track-every); NULL otherwise.';
COMMENT ON COLUMN cms.call_queue.last_answer IS 'The last live answer of a tracked call (the result object), from which its final row is written when tracking ends.';
COMMENT ON COLUMN cms.call_queue.last_answer_at IS 'When last_answer arrived.';
