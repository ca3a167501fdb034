-- A call both querycalls passes list (internal or consultation calls,
-- cms-discovery.md 6.2) is kept once, as inbound (is_call_in true), with
-- this flag. Numbered 010: 009 is the live-tracking migration of another
-- change. Rows written before it were kept with the direction of the pass
-- that happened to answer first: they read false.
ALTER TABLE cms.call_record
    ADD COLUMN listed_both_directions boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN cms.call_record.listed_both_directions IS 'true when both the inbound and the outbound pass of the same time slice listed the call: it is kept once, as inbound (is_call_in true), and its CDR is asked inbound. false for rows written before this column existed.';
COMMENT ON COLUMN cms.call_record.is_call_in IS 'true when listed by the inbound pass (isCallIn "true"), false by the outbound pass; true for a call both passes listed (listed_both_directions).';
