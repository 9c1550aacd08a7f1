-- Book-wide closures (issue 21; docs/SIGNAL.md#closures): how many of the 3 and the 7 complete
-- days ending yesterday the whole book was away (a public holiday). Added at the end (the evaluator names its
-- columns when it inserts); rows written before read 0 until the next pass rewrites them.
ALTER TABLE {db}.account_metrics
    ADD COLUMN book_closures_3d UInt8 DEFAULT 0,
    ADD COLUMN book_closures_7d UInt8 DEFAULT 0;
