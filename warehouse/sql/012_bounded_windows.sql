-- Small tables that let an evaluation pass read only what its windows need, however long the
-- product has run (issue 13; docs/architecture.md#evaluation-cost). Each is kept up to date by a
-- materialized view as events arrive, and backfilled here from what is already stored. The
-- backfills are idempotent (bit-OR, min, max, argMax) except the CSAT sums: migrate with the
-- aggregators stopped, as for 007.

-- Who was active on which day, as one bit per day. A row covers one 64-day epoch
-- (`intDiv(day number, 64)`) of one member (a user, or a feature) of an account: `active` has
-- bit `day % 64` set for each day of the epoch with activity; `active_prev` holds the previous
-- epoch's bits, written by the same event to the next epoch's row. So the 64 days ending on any
-- day lie in one epoch's rows, and a pass reads one partition: distinct users and features of
-- every window (1 to 63 days, the 9 baseline weeks) are counts of members whose shifted mask
-- meets the window's mask, and user-days are bit counts. Old epochs can be dropped
-- (`ALTER TABLE account_members DROP PARTITION <epoch>`); the pass never reads them.
CREATE TABLE IF NOT EXISTS {db}.account_members
(
    epoch       UInt16,
    account_id  String,
    member_kind Enum8('user' = 1, 'feature' = 2),
    member      String,
    active      AggregateFunction(groupBitOr, UInt64),
    active_prev AggregateFunction(groupBitOr, UInt64),
    login       AggregateFunction(groupBitOr, UInt64),
    login_prev  AggregateFunction(groupBitOr, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY epoch
ORDER BY (epoch, account_id, member_kind, member);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_members_users_mv TO {db}.account_members AS
SELECT
    toUInt16(intDiv(toUInt16(toDate(timestamp, 'UTC')), 64) + carry)                        AS epoch,
    account_id,
    CAST('user' AS Enum8('user' = 1, 'feature' = 2))                                        AS member_kind,
    user_id                                                                                 AS member,
    groupBitOrState(if(carry = 0, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active,
    groupBitOrState(if(carry = 1, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active_prev,
    groupBitOrState(if(carry = 0 AND kind = 'login', bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS login,
    groupBitOrState(if(carry = 1 AND kind = 'login', bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS login_prev
FROM {db}.events
ARRAY JOIN [0, 1] AS carry
WHERE account_id != '' AND user_id != '' AND kind IN ('login', 'feature_used', 'data_volume')
GROUP BY epoch, account_id, member;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_members_features_mv TO {db}.account_members AS
SELECT
    toUInt16(intDiv(toUInt16(toDate(timestamp, 'UTC')), 64) + carry)                        AS epoch,
    account_id,
    CAST('feature' AS Enum8('user' = 1, 'feature' = 2))                                     AS member_kind,
    feature                                                                                 AS member,
    groupBitOrState(if(carry = 0, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active,
    groupBitOrState(if(carry = 1, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active_prev,
    groupBitOrState(toUInt64(0))                                                            AS login,
    groupBitOrState(toUInt64(0))                                                            AS login_prev
FROM {db}.events
ARRAY JOIN [0, 1] AS carry
WHERE account_id != '' AND kind = 'feature_used' AND feature != ''
GROUP BY epoch, account_id, member;

INSERT INTO {db}.account_members
SELECT
    toUInt16(intDiv(toUInt16(toDate(timestamp, 'UTC')), 64) + carry)                        AS epoch,
    account_id,
    CAST('user' AS Enum8('user' = 1, 'feature' = 2))                                        AS member_kind,
    user_id                                                                                 AS member,
    groupBitOrState(if(carry = 0, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active,
    groupBitOrState(if(carry = 1, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active_prev,
    groupBitOrState(if(carry = 0 AND kind = 'login', bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS login,
    groupBitOrState(if(carry = 1 AND kind = 'login', bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS login_prev
FROM {db}.events
ARRAY JOIN [0, 1] AS carry
WHERE account_id != '' AND user_id != '' AND kind IN ('login', 'feature_used', 'data_volume')
  AND timestamp >= now() - 130 * 86400
GROUP BY epoch, account_id, member;

INSERT INTO {db}.account_members
SELECT
    toUInt16(intDiv(toUInt16(toDate(timestamp, 'UTC')), 64) + carry)                        AS epoch,
    account_id,
    CAST('feature' AS Enum8('user' = 1, 'feature' = 2))                                     AS member_kind,
    feature                                                                                 AS member,
    groupBitOrState(if(carry = 0, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active,
    groupBitOrState(if(carry = 1, bitShiftLeft(toUInt64(1), toUInt16(toDate(timestamp, 'UTC')) % 64), toUInt64(0))) AS active_prev,
    groupBitOrState(toUInt64(0))                                                            AS login,
    groupBitOrState(toUInt64(0))                                                            AS login_prev
FROM {db}.events
ARRAY JOIN [0, 1] AS carry
WHERE account_id != '' AND kind = 'feature_used' AND feature != ''
  AND timestamp >= now() - 130 * 86400
GROUP BY epoch, account_id, member;

-- What a pass needs from all of an account's history, in one row per account: the first day
-- with any event, the last activity and login, and the last NPS answer (stored + 1, so that
-- 0 means "never answered": NPS 0 is an answer). `last_stored` is when its last events were
-- stored (the server's clock at the insert): an incremental pass evaluates the accounts stored
-- since the pass before.
CREATE TABLE IF NOT EXISTS {db}.account_lifetime
(
    account_id String,
    first_day  AggregateFunction(min, Date),
    last_seen  AggregateFunction(max, DateTime),
    last_login AggregateFunction(max, DateTime),
    latest_nps AggregateFunction(argMax, UInt8, DateTime),
    last_stored AggregateFunction(max, DateTime)
)
ENGINE = AggregatingMergeTree()
ORDER BY account_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_lifetime_mv TO {db}.account_lifetime AS
SELECT
    account_id,
    minState(toDate(timestamp, 'UTC'))                                                  AS first_day,
    maxStateIf(timestamp, kind IN ('login', 'feature_used', 'data_volume'))             AS last_seen,
    maxStateIf(timestamp, kind = 'login')                                               AS last_login,
    argMaxStateIf(toUInt8(assumeNotNull(nps) + 1), timestamp, kind = 'survey' AND isNotNull(nps)) AS latest_nps,
    maxState(now())                                                                     AS last_stored
FROM {db}.events
WHERE account_id != ''
GROUP BY account_id;

INSERT INTO {db}.account_lifetime (account_id, first_day, last_seen, last_login)
SELECT account_id, minState(day), maxMergeState(last_seen), maxMergeState(last_login)
FROM {db}.account_daily
GROUP BY account_id;

INSERT INTO {db}.account_lifetime (account_id, latest_nps)
SELECT account_id, argMaxStateIf(toUInt8(assumeNotNull(nps) + 1), timestamp, isNotNull(nps))
FROM {db}.events
WHERE kind = 'survey' AND account_id != ''
GROUP BY account_id;

-- CSAT answers per account and day, for the 90-day mean.
CREATE TABLE IF NOT EXISTS {db}.account_csat_daily
(
    account_id String,
    day        Date,
    csat_sum   AggregateFunction(sum, UInt64),
    answers    AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (account_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.account_csat_daily_mv TO {db}.account_csat_daily AS
SELECT account_id, toDate(timestamp, 'UTC') AS day,
    sumState(toUInt64(assumeNotNull(csat))) AS csat_sum, sumState(toUInt64(1)) AS answers
FROM {db}.events
WHERE kind = 'survey' AND isNotNull(csat) AND account_id != ''
GROUP BY account_id, day;

INSERT INTO {db}.account_csat_daily
SELECT account_id, toDate(timestamp, 'UTC') AS day,
    sumState(toUInt64(assumeNotNull(csat))) AS csat_sum, sumState(toUInt64(1)) AS answers
FROM {db}.events
WHERE kind = 'survey' AND isNotNull(csat) AND account_id != ''
GROUP BY account_id, day;

-- The latest status of every support ticket (its last event wins).
CREATE TABLE IF NOT EXISTS {db}.ticket_state
(
    account_id String,
    ticket_id  String,
    status     AggregateFunction(argMax, String, DateTime)
)
ENGINE = AggregatingMergeTree()
ORDER BY (account_id, ticket_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.ticket_state_mv TO {db}.ticket_state AS
SELECT account_id, ticket_id, argMaxState(ticket_status, timestamp) AS status
FROM {db}.events
WHERE kind = 'support_ticket' AND account_id != ''
GROUP BY account_id, ticket_id;

INSERT INTO {db}.ticket_state
SELECT account_id, ticket_id, argMaxState(ticket_status, timestamp) AS status
FROM {db}.events
WHERE kind = 'support_ticket' AND account_id != ''
GROUP BY account_id, ticket_id;
