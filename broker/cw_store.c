/*  =========================================================================
    cw_store - all of the broker's SQL, in its own actor thread

    See cw_store.h. Every batch is one statement (unnest of arrays) or one
    transaction of a few statements, never one round trip per row.
    =========================================================================
*/
#include "cw_store.h"
#include "cw_log.h"
#include "cw_msg.h"
#include "cw_pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CW_STORE_LISTEN_RETRY_MSEC 1000     //  Re-LISTEN after a loss
#define CW_STORE_INT_SIZE 32                //  Text of one int64
#define S_WAKE "WAKE"                       //  Store -> broker frame
#define S_GAUGES "GAUGES\x1f"               //  Store -> broker, + JSON
#define CW_STORE_PURGE_BATCH 500            //  Rows per retention batch
#define CW_STORE_PURGE_PACE_MSEC 250        //  Between full batches

//  The statements, prepared once per connection.
//
//  The claim commits synchronously: a lease is durable before its job is
//  sent, so after a PostgreSQL crash no other broker can claim a job that
//  is still running (an asynchronous claim measured +5%, within the noise:
//  not worth that guarantee). Every lease carries the token the broker
//  gave the request ($5, never reused by one lease owner): COMMIT, RENEW
//  and RELEASE act only on the lease of the token they carry, so an
//  older lease of the same job by the same broker is never mistaken for
//  the current one (claims and commits run on separate connections).
static const char s_sql_claim[] =
    "UPDATE erp_mw.jobs j"
    "   SET state = 'leased', lease_owner = $1, lease_token = $5::bigint,"
    "       lease_expires_at = now () + $2::bigint * interval '1 millisecond'"
    " WHERE j.id IN ("
    "   SELECT c.id FROM erp_mw.jobs c"
    "    WHERE c.state = 'ready' AND c.next_run_at <= now ()"
    "      AND c.flow = ANY ($4::text[])"
    "      AND (c.target IS NULL OR c.flow = ANY ($6::text[])"
    "           OR (c.flow, c.target) IN (SELECT w.flow, w.target"
    "                 FROM unnest ($7::text[], $8::text[]) AS w (flow, target)))"
    "      AND (c.ordering_key IS NULL OR NOT EXISTS ("
    "           SELECT 1 FROM erp_mw.jobs p"
    "            WHERE p.ordering_key = c.ordering_key AND p.id < c.id"
    "              AND p.state IN ('ready', 'leased', 'parked', 'dead')))"
    "    ORDER BY c.next_run_at, c.id"
    "    LIMIT $3"
    "    FOR UPDATE SKIP LOCKED)"
    " RETURNING j.id, j.flow, j.target, j.ordering_key, j.attempts,"
    "   j.max_attempts,"
    "   (extract (epoch FROM j.lease_expires_at) * 1000)::bigint,"
    "   j.payload::text, j.tenant, j.idempotency_key, j.correlation_id,"
    "   j.traceparent, to_char (j.created_at AT TIME ZONE 'UTC',"
    "   'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

//  Hands back jobs whose lease ran out (a broker died or lost the
//  database, or let a lease go without a RELEASE): ready again, no
//  attempt spent, so a claim can take them. A late COMMIT, RENEW or
//  RELEASE of that lease is fenced by its token, ours included.
//  jobs_leased_idx finds them. The store sweeps every expire_msec,
//  between requests (never as a round trip in front of a claim), and
//  wakes the broker when it freed any.
static const char s_sql_expire[] =
    "UPDATE erp_mw.jobs"
    "   SET state = 'ready', lease_owner = NULL, lease_token = NULL,"
    "       lease_expires_at = NULL"
    " WHERE state = 'leased' AND lease_expires_at < now ()"
    " RETURNING id";

static const char s_sql_dead_payload[] =
    "UPDATE erp_mw.jobs SET state = 'dead', dead_reason = 'rejected',"
    "   last_error = $3, finished_at = now (), lease_owner = NULL,"
    "   lease_token = NULL, lease_expires_at = NULL"
    " WHERE id = $2::bigint AND lease_owner = $1"
    "   AND lease_token = $4::bigint AND state = 'leased'";

//  Group commit. A transition applies only where this broker still holds
//  the very lease it was computed under (owner and token) AND the job's
//  attempts are the ones it was computed from: a retried COMMIT whose
//  first try landed with its reply lost must not apply again after
//  another broker has run the job since (found by the simulation,
//  tests/sim: docs/simulation.md). A duration is stored clamped to the
//  int column (24.8 days), started_at with it: an int64 from a worker
//  overflowed now () - duration and failed the whole batch at every try.
//  A retry's time is the broker's ($14 is the broker's clock when it sent
//  the COMMIT), made an interval from the database's now (): the two
//  clocks never meet (see s_renew).
static const char s_sql_commit[] =
    "WITH t AS ("
    "  SELECT * FROM unnest ($2::bigint[], $3::text[], $4::bigint[],"
    "      $5::int[], $6::text[], $7::text[], $8::int[], $9::text[],"
    "      $10::int[], $11::text[], $12::bigint[], $13::bigint[])"
    "    AS t (id, state, next_run_ms, attempts, dead_reason, worker,"
    "          attempt, outcome, http_status, error, duration_ms,"
    "          lease_token)),"
    " u AS ("
    "  UPDATE erp_mw.jobs j"
    "     SET state = t.state,"
    "         next_run_at = CASE WHEN t.state = 'ready'"
    "             THEN now () + GREATEST (t.next_run_ms - $14::bigint, 0)"
    "                 * interval '1 millisecond'"
    "             ELSE j.next_run_at END,"
    "         attempts = t.attempts,"
    "         last_error = COALESCE (t.error, j.last_error),"
    "         dead_reason = t.dead_reason,"
    "         finished_at = CASE WHEN t.state IN ('done', 'dead')"
    "             THEN now () END,"
    "         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL"
    "    FROM t"
    "   WHERE j.id = t.id AND j.state = 'leased' AND j.lease_owner = $1"
    "     AND j.lease_token = t.lease_token"
    "     AND j.attempts = t.attempts - 1"
    "  RETURNING j.id),"
    " a AS ("
    "  INSERT INTO erp_mw.job_attempts (job_id, attempt, worker, outcome,"
    "      http_status, error, duration_ms, started_at, finished_at)"
    "  SELECT t.id, t.attempt, t.worker, t.outcome, NULLIF (t.http_status, 0),"
    "      t.error, d.ms::int, now () - d.ms * interval '1 millisecond', now ()"
    "    FROM t JOIN u ON u.id = t.id,"
    "      LATERAL (SELECT LEAST (t.duration_ms, 2147483647) AS ms) d"
    "  ON CONFLICT (job_id, attempt) DO NOTHING)"
    " SELECT id FROM u";

//  The lease runs $3 msec from the database's now (): the broker's clock
//  (monotonic, its own) and the database's (another host's, maybe skewed)
//  never meet. Leases are compared with now () by every broker's expire
//  sweep, so an expiry in the broker's time would make a broker whose
//  clock is behind renew leases that others see as already expired.
static const char s_sql_renew[] =
    "UPDATE erp_mw.jobs j"
    "   SET lease_expires_at = now () + $3::bigint * interval '1 millisecond'"
    "  FROM unnest ($2::bigint[], $4::bigint[]) AS l (id, token)"
    " WHERE j.id = l.id AND j.lease_token = l.token AND j.state = 'leased'"
    "   AND j.lease_owner = $1"
    " RETURNING j.id";

static const char s_sql_release[] =
    "UPDATE erp_mw.jobs j"
    "   SET state = 'ready', lease_owner = NULL, lease_token = NULL,"
    "       lease_expires_at = NULL"
    "  FROM unnest ($2::bigint[], $3::bigint[]) AS l (id, token)"
    " WHERE j.id = l.id AND j.lease_token = l.token AND j.state = 'leased'"
    "   AND j.lease_owner = $1";

static const char s_sql_inbox[] =
    "INSERT INTO erp_mw.inbox (idempotency_key, source, event_type,"
    "    expires_at)"
    " SELECT e.key, $2, e.type, now () + $3::bigint * interval '1 millisecond'"
    "   FROM unnest ($1::text[], $4::text[]) AS e (key, type)"
    " ON CONFLICT (idempotency_key) DO NOTHING"
    " RETURNING idempotency_key";

//  A published event's job is leased to this broker at once (and goes to
//  its core without a claim) only when it heads its ordering key: no key,
//  or the first of its key in the batch with no earlier job of the key
//  left undone in the table. The others are inserted ready, for a claim
//  to take once the jobs before them are done (a dead one parks them).
static const char s_sql_insert_jobs[] =
    "INSERT INTO erp_mw.jobs (flow, tenant, idempotency_key, ordering_key,"
    "    payload, correlation_id, traceparent, target, state, lease_owner,"
    "    lease_token, lease_expires_at, max_attempts, produced_at)"
    " SELECT e.flow, e.tenant, e.key, e.ordering_key, e.payload::jsonb,"
    "    e.correlation_id, e.traceparent, e.target,"
    "    CASE WHEN e.head THEN 'leased' ELSE 'ready' END,"
    "    CASE WHEN e.head THEN $1 END,"
    "    CASE WHEN e.head THEN $13::bigint END,"
    "    CASE WHEN e.head"
    "        THEN now () + $2::bigint * interval '1 millisecond' END,"
    "    $3::int, e.produced_at::timestamptz"
    "   FROM (SELECT u.*, u.ordering_key IS NULL"
    "            OR (row_number () OVER (PARTITION BY u.ordering_key"
    "                                    ORDER BY u.position) = 1"
    "                AND NOT EXISTS (SELECT 1 FROM erp_mw.jobs p"
    "                     WHERE p.ordering_key = u.ordering_key"
    "                       AND p.state IN ('ready', 'leased', 'parked',"
    "                                       'dead'))) AS head"
    "           FROM unnest ($4::text[], $5::text[], $6::text[], $7::text[],"
    "               $8::text[], $9::text[], $10::text[], $11::text[],"
    "               $12::text[])"
    "             WITH ORDINALITY AS u (flow, tenant, key, ordering_key,"
    "               payload, correlation_id, traceparent, target,"
    "               produced_at, position)) e"
    "  ORDER BY e.position"
    " ON CONFLICT (idempotency_key) DO NOTHING"
    " RETURNING id, idempotency_key, max_attempts,"
    "   (extract (epoch FROM lease_expires_at) * 1000)::bigint, state";

//  Takes the ordering-key locks of a publish batch (the stripes the insert
//  trigger of sql/erp_mw/011 takes), in one order, before the insert: its
//  snapshot then sees every earlier job of those keys, committed by
//  whoever held the lock, when it decides which new job heads its key.
static const char s_sql_lock_keys[] =
    "SELECT count (pg_advisory_xact_lock ("
    "           hashtext ('erp_mw.jobs.ordering_key'), stripe))"
    "  FROM (SELECT DISTINCT hashtext (k) & 255 AS stripe"
    "          FROM unnest ($1::text[]) AS u (k)"
    "         WHERE k IS NOT NULL ORDER BY 1) s";

static const char s_sql_inbox_link[] =
    "UPDATE erp_mw.inbox i SET job_id = x.id"
    "  FROM unnest ($1::text[], $2::bigint[]) AS x (key, id)"
    " WHERE i.idempotency_key = x.key";

//  Retention (sql/erp_mw/003, 008): one short transaction per batch.
static const char s_sql_purge_finished[] =
    "SELECT erp_mw.purge_finished ($1::bigint * interval '1 millisecond',"
    "                              $2::int)";
static const char s_sql_purge_expired[] =
    "SELECT erp_mw.purge_expired ($1::int)";

//  Dead letters of one tenant, selected as PROTOCOL.md §4.9 says (NULL
//  parameters select all), by ascending id, one more than asked for so
//  the caller knows whether more match. The order and customer are the
//  event's data.orderId / data.customerId (or the payload's own, for rows
//  written without an envelope). jobs_dead_idx holds only dead rows.
static const char s_sql_dlq_list[] =
    "SELECT id, flow, tenant, idempotency_key, ordering_key,"
    "   COALESCE (payload -> 'data' ->> 'orderId', payload ->> 'orderId'),"
    "   COALESCE (payload -> 'data' ->> 'customerId',"
    "             payload ->> 'customerId'),"
    "   dead_reason, attempts, last_error,"
    "   to_char (finished_at AT TIME ZONE 'UTC',"
    "            'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    "   correlation_id"
    "  FROM erp_mw.jobs"
    " WHERE state = 'dead' AND tenant = $1"
    "   AND ($2::text IS NULL OR flow = $2)"
    "   AND ($3::text IS NULL OR COALESCE (payload -> 'data' ->> 'orderId',"
    "                                      payload ->> 'orderId') = $3)"
    "   AND ($4::text IS NULL OR COALESCE (payload -> 'data' ->> 'customerId',"
    "                                      payload ->> 'customerId') = $4)"
    "   AND ($5::text IS NULL OR dead_reason = $5)"
    "   AND ($6::timestamptz IS NULL OR finished_at >= $6::timestamptz)"
    "   AND ($7::timestamptz IS NULL OR finished_at < $7::timestamptz)"
    "   AND id > $8::bigint"
    " ORDER BY id"
    " LIMIT $9::int";

//  Replays the listed jobs that are still dead and of the tenant, in
//  place: ready, same id and key, a fresh attempt budget (the flow's
//  max_attempts from $5, else $6, beyond the attempts made), still ahead
//  of the jobs of its ordering key. They fall due $7 per second in id
//  order (the first now; $7 = 0: all now), so a large replay does not
//  reach the ERP at once even where no target cap is set. The audit row
//  commits with them.
static const char s_sql_replay[] =
    "WITH o AS ("
    "  SELECT id, row_number () OVER (ORDER BY id) - 1 AS n"
    "    FROM erp_mw.jobs"
    "   WHERE id = ANY ($2::bigint[]) AND tenant = $1 AND state = 'dead'),"
    " r AS ("
    "  UPDATE erp_mw.jobs j"
    "     SET state = 'ready', dead_reason = NULL, finished_at = NULL,"
    "         next_run_at = now () + CASE WHEN $7::int > 0"
    "             THEN o.n * 1000.0 / $7::int * interval '1 millisecond'"
    "             ELSE interval '0' END,"
    "         max_attempts = j.attempts"
    "             + COALESCE (($5::jsonb ->> j.flow)::int, $6::int)"
    "    FROM o"
    "   WHERE j.id = o.id AND j.state = 'dead'"
    "  RETURNING j.id),"
    " a AS ("
    "  INSERT INTO erp_mw.audit_log (actor, action, target, detail)"
    "  SELECT $3, 'replay', 'tenant:' || $1,"
    "         jsonb_build_object ('reason', $4::text,"
    "           'replayed', (SELECT jsonb_agg (id ORDER BY id) FROM r),"
    "           'skipped', (SELECT COALESCE (jsonb_agg (x ORDER BY x), '[]')"
    "                         FROM unnest ($2::bigint[]) AS x"
    "                        WHERE x NOT IN (SELECT id FROM r)))"
    "   WHERE EXISTS (SELECT 1 FROM r))"
    " SELECT id FROM r ORDER BY id";

//  Discards the listed jobs that are still dead and of the tenant: they
//  leave the dead letters for 'discarded' (migration 012), which blocks
//  no ordering key. The audit row commits with them.
static const char s_sql_discard[] =
    "WITH r AS ("
    "  UPDATE erp_mw.jobs SET state = 'discarded'"
    "   WHERE id = ANY ($2::bigint[]) AND tenant = $1 AND state = 'dead'"
    "  RETURNING id),"
    " a AS ("
    "  INSERT INTO erp_mw.audit_log (actor, action, target, detail)"
    "  SELECT $3, 'discard', 'tenant:' || $1,"
    "         jsonb_build_object ('reason', $4::text,"
    "           'discarded', (SELECT jsonb_agg (id ORDER BY id) FROM r),"
    "           'skipped', (SELECT COALESCE (jsonb_agg (x ORDER BY x), '[]')"
    "                         FROM unnest ($2::bigint[]) AS x"
    "                        WHERE x NOT IN (SELECT id FROM r)))"
    "   WHERE EXISTS (SELECT 1 FROM r))"
    " SELECT id FROM r ORDER BY id";

//  The contract's SLIs over the jobs finished in [$1, $2) (op slo), per
//  flow, then over the contract's sync flows, then over all: jobs done
//  and dead; the p50 / p95 of event produced (or row created) -> done,
//  in msec; jobs that needed more than one attempt, and of those how
//  many ended done (the retry-to-success rate). jobs_finished_idx serves
//  the done rows, jobs_dead_idx the dead ones. Last, the oldest done
//  job left: retention may have deleted the start of a long window.
static const char s_sql_slo[] =
    "WITH j AS ("
    "  SELECT flow, state, attempts,"
    "         extract (epoch FROM finished_at"
    "                  - COALESCE (produced_at, created_at)) * 1000 AS ms"
    "    FROM erp_mw.jobs"
    "   WHERE state IN ('done', 'dead') AND finished_at >= $1::timestamptz"
    "     AND ($2::timestamptz IS NULL OR finished_at < $2::timestamptz)"
    "     AND ($3::text IS NULL OR flow = $3)),"
    " s AS ("
    "  SELECT 'flow' AS kind, flow AS f, state, attempts, ms FROM j"
    "  UNION ALL SELECT 'sync', NULL, state, attempts, ms FROM j"
    "   WHERE flow IN ('customer.upsert', 'order.create', 'order.status')"
    "  UNION ALL SELECT 'all', NULL, state, attempts, ms FROM j)"
    " SELECT kind, f,"
    "   count (*) FILTER (WHERE state = 'done'),"
    "   count (*) FILTER (WHERE state = 'dead'),"
    "   round (percentile_cont (0.5) WITHIN GROUP (ORDER BY ms)"
    "          FILTER (WHERE state = 'done'))::bigint,"
    "   round (percentile_cont (0.95) WITHIN GROUP (ORDER BY ms)"
    "          FILTER (WHERE state = 'done'))::bigint,"
    "   count (*) FILTER (WHERE attempts > 1),"
    "   count (*) FILTER (WHERE attempts > 1 AND state = 'done')"
    "  FROM s"
    " GROUP BY kind, f"
    " UNION ALL"
    " SELECT 'oldest', to_char (min (finished_at) AT TIME ZONE 'UTC',"
    "            'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
    "   NULL, NULL, NULL, NULL, NULL, NULL"
    "  FROM erp_mw.jobs WHERE state = 'done'";

//  What /metrics reports of the table (GAUGES): the age of the oldest
//  job due and not claimed (the lag: jobs_ready_id_idx's first entry),
//  and the dead jobs by flow (jobs_dead_idx holds only those).
static const char s_sql_gauges[] =
    "SELECT '', (SELECT COALESCE ((extract (epoch FROM now ()"
    "                                - min (next_run_at)) * 1000)::bigint, 0)"
    "              FROM erp_mw.jobs"
    "             WHERE state = 'ready' AND next_run_at <= now ())"
    " UNION ALL"
    " SELECT flow, count (*) FROM erp_mw.jobs WHERE state = 'dead'"
    "  GROUP BY flow";

typedef struct {
    const char *name;
    const char *sql;
    int nparams;
} s_statement_t;

static const s_statement_t s_statements[] = {
    {"expire", s_sql_expire, 0},
    {"claim", s_sql_claim, 8},
    {"dead_payload", s_sql_dead_payload, 4},
    {"commit", s_sql_commit, 14},
    {"renew", s_sql_renew, 4},
    {"release", s_sql_release, 3},
    {"inbox", s_sql_inbox, 4},
    {"insert_jobs", s_sql_insert_jobs, 13},
    {"inbox_link", s_sql_inbox_link, 2},
    {"lock_keys", s_sql_lock_keys, 1},
    {"purge_finished", s_sql_purge_finished, 2},
    {"purge_expired", s_sql_purge_expired, 1},
    {"dlq_list", s_sql_dlq_list, 9},
    {"replay", s_sql_replay, 7},
    {"discard", s_sql_discard, 4},
    {"gauges", s_sql_gauges, 0},
    {"slo", s_sql_slo, 3},
    {NULL, NULL, 0}
};

//  A growing text buffer, for array literals.
typedef struct {
    char *data;                 //  NUL-terminated text
    size_t size;                //  Bytes used, without the NUL
    size_t capacity;            //  Bytes allocated
    size_t items;               //  Elements appended
} s_buf_t;

static void
s_buf_put (s_buf_t *buf, const char *text, size_t length)
{
    if (buf->size + length + 1 > buf->capacity) {
        size_t capacity = buf->capacity ? buf->capacity * 2 : 256;
        while (capacity < buf->size + length + 1)
            capacity *= 2;
        buf->data = (char *) realloc (buf->data, capacity);
        assert (buf->data);
        buf->capacity = capacity;
    }
    memcpy (buf->data + buf->size, text, length);
    buf->size += length;
    buf->data [buf->size] = 0;
}

static void
s_buf_begin (s_buf_t *buf)
{
    buf->size = 0;
    buf->items = 0;
    s_buf_put (buf, "{", 1);
}

static void
s_buf_sep (s_buf_t *buf)
{
    if (buf->items++ > 0)
        s_buf_put (buf, ",", 1);
}

static void
s_buf_int (s_buf_t *buf, int64_t value)
{
    char text [CW_STORE_INT_SIZE];
    int length = snprintf (text, sizeof (text), "%" PRId64, value);
    s_buf_sep (buf);
    s_buf_put (buf, text, (size_t) length);
}

//  An array element: NULL, or the text double-quoted with \ and "
//  escaped (the array literal's own quoting, not SQL's).
static void
s_buf_text (s_buf_t *buf, const char *text)
{
    s_buf_sep (buf);
    if (!text) {
        s_buf_put (buf, "NULL", 4);
        return;
    }
    s_buf_put (buf, "\"", 1);
    for (const char *cursor = text; *cursor; cursor++) {
        if (*cursor == '"' || *cursor == '\\')
            s_buf_put (buf, "\\", 1);
        s_buf_put (buf, cursor, 1);
    }
    s_buf_put (buf, "\"", 1);
}

static const char *
s_buf_end (s_buf_t *buf)
{
    s_buf_put (buf, "}", 1);
    return buf->data;
}

//  Arrays of one statement's parameters.
#define CW_STORE_ARRAYS 12
typedef struct {
    s_buf_t buf [CW_STORE_ARRAYS];
} s_arrays_t;

static void
s_arrays_free (s_arrays_t *arrays)
{
    for (int index = 0; index < CW_STORE_ARRAYS; index++)
        free (arrays->buf [index].data);
}

typedef struct {
    zsock_t *pipe;              //  Actor pipe
    cw_pg_t *pg;                //  Statements connection
    cw_pg_t *listen;            //  LISTEN connection, NULL when none
    int64_t listen_retry_at;    //  When to LISTEN again (monotonic msec)
    int64_t notified_usec;      //  When a NOTIFY was last read (epoch usec)
    char *db_uri;               //  Owned copy
    char *broker_id;            //  Owned copy
    bool poll_only;
    int64_t inbox_ttl_msec;
    int64_t expire_msec;        //  Expired-lease sweep interval
    int64_t expire_at;          //  Next sweep (mono msec)
    int64_t retention_msec;     //  Done jobs kept this long (0: for ever)
    int64_t purge_msec;         //  Retention cycle (0: none)
    int64_t purge_at;           //  Next retention batch (mono msec)
    int64_t purged_jobs;        //  Deleted in this cycle so far
    int64_t purged_rows;        //  Inbox/idempotency rows, likewise
    int64_t gauges_msec;        //  GAUGES interval (0: none)
    int64_t gauges_at;          //  Next GAUGES (mono msec)
} s_store_t;

static void
s_int_text (char *text, size_t size, int64_t value)
{
    snprintf (text, size, "%" PRId64, value);
}

static int64_t
s_parse_int (const char *text)
{
    return text ? strtoll (text, NULL, 10) : 0;
}

static char *
s_strdup_or_null (const char *text)
{
    return text ? strdup (text) : NULL;
}

void
cw_store_payload_free (void *payload, size_t size)
{
    (void) size;
    cw_envelope_t *envelope = (cw_envelope_t *) payload;
    cw_envelope_destroy (&envelope);
}

char *
cw_store_payload_json (const cw_envelope_t *envelope, char *reason,
                       size_t size)
{
    return cw_envelope_encode_json (envelope, reason, size);
}

cw_store_req_t *
cw_store_req_new (cw_store_op_t op)
{
    cw_store_req_t *self = (cw_store_req_t *) zmalloc (sizeof (cw_store_req_t));
    self->op = op;
    return self;
}

static void
s_jobs_free (cw_core_job_t *jobs, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        free ((char *) jobs [index].flow);
        free ((char *) jobs [index].target);
        free ((char *) jobs [index].ordering_key);
        if (jobs [index].payload)
            cw_store_payload_free (jobs [index].payload, 0);
    }
    free (jobs);
}

void
cw_store_req_destroy (cw_store_req_t **self_p)
{
    assert (self_p);
    cw_store_req_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->flow_count; index++) {
        free (self->flows [index]);
        if (self->flow_targets)
            free (self->flow_targets [index]);
    }
    free (self->flows);
    free (self->flow_targets);
    for (size_t index = 0; index < self->transition_count; index++) {
        free ((char *) self->transitions [index].worker);
        free ((char *) self->transitions [index].error);
    }
    free (self->transitions);
    free (self->job_ids);
    free (self->lease_tokens);
    for (size_t index = 0; index < self->event_count; index++) {
        cw_envelope_destroy (&self->events [index].envelope);
        free (self->events [index].flow);
        free (self->events [index].target);
        free (self->events [index].ordering_key);
        free (self->events [index].payload);
    }
    free (self->events);
    free (self->source);
    zframe_destroy (&self->peer);
    cw_msg_t *rejections = (cw_msg_t *) self->rejections;
    cw_msg_destroy (&rejections);
    s_jobs_free (self->jobs, self->jobs_count);
    free (self->lost);
    free (self->admin_op);
    json_decref (self->admin_args);
    free (self->admin_actor);
    free (self->admin_policy);
    json_decref (self->admin_result);
    json_decref (self->gauges);
    free (self);
    *self_p = NULL;
}

int
cw_store_send (zactor_t *store, cw_store_req_t **req_p)
{
    assert (req_p && *req_p);
    int rc = zsock_send (store, "p", *req_p);
    if (rc == 0)
        *req_p = NULL;
    else
        cw_store_req_destroy (req_p);
    return rc;
}

cw_store_req_t *
cw_store_recv (zactor_t *store)
{
    zframe_t *frame = zframe_recv (store);
    if (!frame)
        return NULL;
    cw_store_req_t *req = NULL;
    size_t gauges_size = strlen (S_GAUGES);
    if (zframe_streq (frame, S_WAKE))
        req = cw_store_req_new (CW_STORE_WAKE);
    else
    if (zframe_size (frame) >= gauges_size
    &&  memcmp (zframe_data (frame), S_GAUGES, gauges_size) == 0) {
        req = cw_store_req_new (CW_STORE_GAUGES);
        req->status = -1;
        if (zframe_size (frame) > gauges_size) {
            req->gauges = json_loadb ((const char *) zframe_data (frame)
                                          + gauges_size,
                                      zframe_size (frame) - gauges_size, 0,
                                      NULL);
            req->status = json_is_object (req->gauges) ? 0 : -1;
        }
    }
    else
    if (zframe_size (frame) == sizeof (void *))
        memcpy (&req, zframe_data (frame), sizeof (void *));
    zframe_destroy (&frame);
    return req;
}

//  --- Requests ------------------------------------------------------------

static void
s_fail (cw_store_req_t *req, s_store_t *self, const char *what)
{
    req->status = -1;
    snprintf (req->error, sizeof (req->error), "%s: %s", what,
              cw_pg_error (self->pg));
    cw_log (CW_LOG_WARN, "store_failed", "store request failed",
            "op", what, "failure", cw_pg_failure_name (cw_pg_failure (self->pg)),
            "sqlstate", cw_pg_sqlstate (self->pg), "error", cw_pg_error (self->pg),
            NULL);
}

//  The envelope of a claimed row: its payload when that is an envelope,
//  else one built from the row around the payload as data.
static cw_envelope_t *
s_row_envelope (cw_pg_rows_t *rows, int row, char *reason, size_t size)
{
    const char *payload = cw_pg_rows_value (rows, row, 7);
    cw_envelope_t *envelope = NULL;
    if (payload)
        envelope = cw_envelope_decode_json (payload, strlen (payload),
                                            reason, size);
    if (envelope)
        return envelope;
    json_error_t json_error;
    json_t *data = payload ? json_loads (payload, 0, &json_error) : NULL;
    if (!json_is_object (data)) {
        json_decref (data);
        snprintf (reason, size, "payload: not a JSON object");
        return NULL;
    }
    const char *flow = cw_pg_rows_value (rows, row, 1);
    const char *key = cw_pg_rows_value (rows, row, 9);
    const char *correlation = cw_pg_rows_value (rows, row, 10);
    char type [CW_ENVELOPE_TYPE_MAX + 1];
    snprintf (type, sizeof (type), "%s.v1", flow);
    envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, key);
    cw_envelope_set_source (envelope, "erp_mw");
    cw_envelope_set_type (envelope, type);
    cw_envelope_set_time (envelope, cw_pg_rows_value (rows, row, 12));
    cw_envelope_set_tenant_id (envelope, cw_pg_rows_value (rows, row, 8));
    cw_envelope_set_correlation_id (envelope, correlation ? correlation : key);
    cw_envelope_set_traceparent (envelope, cw_pg_rows_value (rows, row, 11));
    cw_envelope_set_idempotency_key (envelope, key);
    cw_envelope_set_data (envelope, &data);
    if (cw_envelope_validate (envelope, reason, size) != 0)
        cw_envelope_destroy (&envelope);
    return envelope;
}

static int
s_job_compare (const void *left, const void *right)
{
    int64_t a = ((const cw_core_job_t *) left)->id;
    int64_t b = ((const cw_core_job_t *) right)->id;
    return (a > b) - (a < b);
}

static int
s_id_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left;
    int64_t b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

//  The ids of rows (column 0), sorted, for s_ids_has. Caller frees.
static int64_t *
s_rows_ids (cw_pg_rows_t *rows, int *count_p)
{
    int count = cw_pg_rows_count (rows);
    int64_t *ids = (int64_t *) malloc (((size_t) count + 1) * sizeof (int64_t));
    assert (ids);
    for (int row = 0; row < count; row++)
        ids [row] = s_parse_int (cw_pg_rows_value (rows, row, 0));
    qsort (ids, (size_t) count, sizeof (int64_t), s_id_compare);
    *count_p = count;
    return ids;
}

static bool
s_ids_has (const int64_t *ids, int count, int64_t id)
{
    return count > 0
        && bsearch (&id, ids, (size_t) count, sizeof (int64_t), s_id_compare);
}

static void
s_claim (s_store_t *self, cw_store_req_t *req)
{
    //  $4 every flow wanted; $6 flows wanted at any target; $7, $8 the
    //  (flow, target) pairs wanted at one target (a job naming no target
    //  goes with any pair of its flow)
    s_buf_t flows = {0}, any = {0}, pair_flows = {0}, pair_targets = {0};
    s_buf_begin (&flows);
    s_buf_begin (&any);
    s_buf_begin (&pair_flows);
    s_buf_begin (&pair_targets);
    for (size_t index = 0; index < req->flow_count; index++) {
        const char *target = req->flow_targets ? req->flow_targets [index]
                                               : NULL;
        s_buf_text (&flows, req->flows [index]);
        if (!target)
            s_buf_text (&any, req->flows [index]);
        else {
            s_buf_text (&pair_flows, req->flows [index]);
            s_buf_text (&pair_targets, target);
        }
    }
    char lease [CW_STORE_INT_SIZE], limit [CW_STORE_INT_SIZE];
    char token [CW_STORE_INT_SIZE];
    s_int_text (lease, sizeof (lease), req->lease_msec);
    s_int_text (limit, sizeof (limit), req->limit);
    s_int_text (token, sizeof (token), req->lease_token);
    const char *values [] = {
        self->broker_id, lease, limit, s_buf_end (&flows), token,
        s_buf_end (&any), s_buf_end (&pair_flows), s_buf_end (&pair_targets)
    };
    cw_pg_rows_t *rows = NULL;
    int rc = cw_pg_exec (self->pg, "claim", 8, values, &rows);
    free (flows.data);
    free (any.data);
    free (pair_flows.data);
    free (pair_targets.data);
    if (rc != 0) {
        s_fail (req, self, "claim");
        return;
    }
    int count = cw_pg_rows_count (rows);
    req->jobs = (cw_core_job_t *) calloc ((size_t) count + 1,
                                          sizeof (cw_core_job_t));
    assert (req->jobs);
    for (int row = 0; row < count; row++) {
        char reason [CW_STORE_ERROR_SIZE];
        int64_t id = s_parse_int (cw_pg_rows_value (rows, row, 0));
        cw_envelope_t *envelope = s_row_envelope (rows, row, reason,
                                                  sizeof (reason));
        if (!envelope) {
            char id_text [CW_STORE_INT_SIZE];
            s_int_text (id_text, sizeof (id_text), id);
            const char *dead [] = { self->broker_id, id_text, reason, token };
            cw_log (CW_LOG_ERROR, "job_payload_invalid",
                    "job payload is not an envelope; job is dead",
                    "#job_id", id_text, "reason", reason, NULL);
            if (cw_pg_exec (self->pg, "dead_payload", 4, dead, NULL) != 0)
                s_fail (req, self, "dead_payload");
            req->dead_payloads++;
            continue;
        }
        cw_core_job_t *job = &req->jobs [req->jobs_count++];
        job->id = id;
        job->flow = strdup (cw_pg_rows_value (rows, row, 1));
        job->target = s_strdup_or_null (cw_pg_rows_value (rows, row, 2));
        job->ordering_key = s_strdup_or_null (cw_pg_rows_value (rows, row, 3));
        job->attempts = (uint32_t) s_parse_int (cw_pg_rows_value (rows, row, 4));
        job->max_attempts = (uint32_t) s_parse_int (cw_pg_rows_value (rows, row, 5));
        //  In the broker's clock: the lease began no earlier than the
        //  request was sent, so it ends no earlier than this
        job->lease_expires_at = req->now + req->lease_msec;
        job->lease_token = req->lease_token;
        job->payload = envelope;
        job->payload_size = 1;
    }
    cw_pg_rows_destroy (&rows);
    qsort (req->jobs, req->jobs_count, sizeof (cw_core_job_t), s_job_compare);
    req->status = 0;
}

static const char *
s_state_name (cw_core_state_t state)
{
    switch (state) {
        case CW_CORE_STATE_DONE:  return "done";
        case CW_CORE_STATE_READY: return "ready";
        case CW_CORE_STATE_DEAD:  return "dead";
    }
    return "ready";
}

static const char *
s_dead_name (cw_core_dead_reason_t reason)
{
    switch (reason) {
        case CW_CORE_DEAD_REJECTED:  return "rejected";
        case CW_CORE_DEAD_EXHAUSTED: return "exhausted";
        case CW_CORE_DEAD_VERSION:   return "version_rejected";
        case CW_CORE_DEAD_NONE:      return NULL;
    }
    return NULL;
}

static const char *
s_outcome_name (cw_core_outcome_t outcome)
{
    switch (outcome) {
        case CW_CORE_OK:        return "ok";
        case CW_CORE_TRANSIENT: return "retry";
        case CW_CORE_REJECTED:  return "reject";
        case CW_CORE_VERSION:   return "reject";
        case CW_CORE_DUPLICATE: return "duplicate";
    }
    return "retry";
}

static void
s_commit (s_store_t *self, cw_store_req_t *req)
{
    s_arrays_t arrays;
    memset (&arrays, 0, sizeof (arrays));
    for (int index = 0; index < 12; index++)
        s_buf_begin (&arrays.buf [index]);
    for (size_t index = 0; index < req->transition_count; index++) {
        const cw_core_transition_t *t = &req->transitions [index];
        s_buf_int (&arrays.buf [0], t->job_id);
        s_buf_text (&arrays.buf [1], s_state_name (t->state));
        s_buf_int (&arrays.buf [2], t->next_run_at);
        s_buf_int (&arrays.buf [3], t->attempts);
        s_buf_text (&arrays.buf [4], t->state == CW_CORE_STATE_DEAD
                                     ? s_dead_name (t->dead_reason) : NULL);
        s_buf_text (&arrays.buf [5], t->worker ? t->worker : "unknown");
        s_buf_int (&arrays.buf [6], t->attempt);
        s_buf_text (&arrays.buf [7], s_outcome_name (t->outcome));
        s_buf_int (&arrays.buf [8], t->http_status);
        s_buf_text (&arrays.buf [9], t->error);
        s_buf_int (&arrays.buf [10], t->duration_msec < 0 ? 0 : t->duration_msec);
        s_buf_int (&arrays.buf [11], t->lease_token);
    }
    char sent [CW_STORE_INT_SIZE];
    s_int_text (sent, sizeof (sent), req->now);
    const char *values [14] = { self->broker_id };
    for (int index = 0; index < 12; index++)
        values [index + 1] = s_buf_end (&arrays.buf [index]);
    values [13] = sent;
    cw_pg_rows_t *rows = NULL;
    int rc = cw_pg_exec (self->pg, "commit", 14, values, &rows);
    s_arrays_free (&arrays);
    if (rc != 0) {
        s_fail (req, self, "commit");
        return;
    }
    //  Jobs not updated had lost their lease: report them
    int count = 0;
    int64_t *updated = s_rows_ids (rows, &count);
    req->lost = (int64_t *) calloc (req->transition_count + 1, sizeof (int64_t));
    assert (req->lost);
    for (size_t index = 0; index < req->transition_count; index++) {
        int64_t id = req->transitions [index].job_id;
        if (!s_ids_has (updated, count, id))
            req->lost [req->lost_count++] = id;
    }
    free (updated);
    cw_pg_rows_destroy (&rows);
    req->status = 0;
}

static void
s_ids_array (s_buf_t *buf, const int64_t *ids, size_t count)
{
    s_buf_begin (buf);
    for (size_t index = 0; index < count; index++)
        s_buf_int (buf, ids [index]);
    s_buf_end (buf);
}

static void
s_renew (s_store_t *self, cw_store_req_t *req)
{
    s_buf_t ids = {0}, tokens = {0};
    s_ids_array (&ids, req->job_ids, req->job_count);
    s_ids_array (&tokens, req->lease_tokens, req->job_count);
    //  What is left of the lease the core asked for, from the moment the
    //  request was sent: run from the database's now (), later, the lease
    //  ends no earlier than the core believes
    char expires [CW_STORE_INT_SIZE];
    int64_t left = req->lease_expires_at - req->now;
    s_int_text (expires, sizeof (expires), left > 0 ? left : 0);
    const char *values [] = { self->broker_id, ids.data, expires,
                              tokens.data };
    cw_pg_rows_t *rows = NULL;
    int rc = cw_pg_exec (self->pg, "renew", 4, values, &rows);
    free (ids.data);
    free (tokens.data);
    if (rc != 0) {
        s_fail (req, self, "renew");
        return;
    }
    int count = 0;
    int64_t *renewed = s_rows_ids (rows, &count);
    req->lost = (int64_t *) calloc (req->job_count + 1, sizeof (int64_t));
    assert (req->lost);
    for (size_t index = 0; index < req->job_count; index++)
        if (!s_ids_has (renewed, count, req->job_ids [index]))
            req->lost [req->lost_count++] = req->job_ids [index];
    free (renewed);
    cw_pg_rows_destroy (&rows);
    req->status = 0;
}

static void
s_release (s_store_t *self, cw_store_req_t *req)
{
    s_buf_t ids = {0}, tokens = {0};
    s_ids_array (&ids, req->job_ids, req->job_count);
    s_ids_array (&tokens, req->lease_tokens, req->job_count);
    const char *values [] = { self->broker_id, ids.data, tokens.data };
    int rc = cw_pg_exec (self->pg, "release", 3, values, NULL);
    free (ids.data);
    free (tokens.data);
    if (rc != 0)
        s_fail (req, self, "release");
    else
        req->status = 0;
}

//  One transaction: inbox keys (duplicates skipped), the new events' jobs
//  leased to us, the inbox rows linked to their job.
static int
s_publish_once (s_store_t *self, cw_store_req_t *req)
{
    s_arrays_t arrays;
    memset (&arrays, 0, sizeof (arrays));
    s_buf_begin (&arrays.buf [0]);
    s_buf_begin (&arrays.buf [1]);
    for (size_t index = 0; index < req->event_count; index++) {
        cw_store_event_t *event = &req->events [index];
        event->duplicate = true;
        s_buf_text (&arrays.buf [0],
                    cw_envelope_idempotency_key (event->envelope));
        s_buf_text (&arrays.buf [1], cw_envelope_type (event->envelope));
    }
    char ttl [CW_STORE_INT_SIZE], lease [CW_STORE_INT_SIZE];
    s_int_text (ttl, sizeof (ttl), self->inbox_ttl_msec);
    s_int_text (lease, sizeof (lease), req->lease_msec);
    const char *inbox [] = {
        s_buf_end (&arrays.buf [0]), req->source, ttl, s_buf_end (&arrays.buf [1])
    };
    cw_pg_rows_t *rows = NULL;
    int rc = -1;
    if (cw_pg_begin (self->pg) != 0
    ||  cw_pg_exec (self->pg, "inbox", 4, inbox, &rows) != 0)
        goto done;

    //  New keys: the first event carrying each returned key
    for (int index = 0; index < 9; index++)
        s_buf_begin (&arrays.buf [2 + index]);
    size_t fresh = 0;
    int count = cw_pg_rows_count (rows);
    for (int row = 0; row < count; row++) {
        const char *key = cw_pg_rows_value (rows, row, 0);
        for (size_t index = 0; index < req->event_count; index++) {
            cw_store_event_t *event = &req->events [index];
            if (strcmp (cw_envelope_idempotency_key (event->envelope), key))
                continue;
            event->duplicate = false;
            fresh++;
            s_buf_text (&arrays.buf [2], event->flow);
            s_buf_text (&arrays.buf [3], cw_envelope_tenant_id (event->envelope));
            s_buf_text (&arrays.buf [4], key);
            s_buf_text (&arrays.buf [5], event->ordering_key);
            s_buf_text (&arrays.buf [6], event->payload);
            s_buf_text (&arrays.buf [7],
                        cw_envelope_correlation_id (event->envelope));
            s_buf_text (&arrays.buf [8], cw_envelope_traceparent (event->envelope));
            s_buf_text (&arrays.buf [9], event->target);
            s_buf_text (&arrays.buf [10], cw_envelope_time (event->envelope));
            break;
        }
    }
    cw_pg_rows_destroy (&rows);
    //  Ordering keys locked first, so the insert's head decision sees
    //  every earlier job of them (a statement's snapshot is taken when
    //  it starts, before a lock its trigger would wait for)
    s_buf_t ordering = {0};
    s_buf_begin (&ordering);
    bool keyed = false;
    for (size_t index = 0; index < req->event_count; index++)
        if (!req->events [index].duplicate && req->events [index].ordering_key) {
            s_buf_text (&ordering, req->events [index].ordering_key);
            keyed = true;
        }
    const char *keys [] = { s_buf_end (&ordering) };
    int lock_rc = keyed ? cw_pg_exec (self->pg, "lock_keys", 1, keys, NULL)
                        : 0;
    free (ordering.data);
    if (lock_rc != 0)
        goto done;
    if (fresh > 0) {
        //  $3 max_attempts: NULL, the broker's policy for the flow decides
        char token [CW_STORE_INT_SIZE];
        s_int_text (token, sizeof (token), req->lease_token);
        const char *jobs [13] = { self->broker_id, lease, NULL };
        for (int index = 0; index < 9; index++)
            jobs [3 + index] = s_buf_end (&arrays.buf [2 + index]);
        jobs [12] = token;
        if (cw_pg_exec (self->pg, "insert_jobs", 13, jobs, &rows) != 0)
            goto done;
        count = cw_pg_rows_count (rows);
        s_buf_t keys = {0}, ids = {0};
        s_buf_begin (&keys);
        s_buf_begin (&ids);
        s_jobs_free (req->jobs, req->jobs_count);
        req->jobs = (cw_core_job_t *) calloc ((size_t) count + 1,
                                              sizeof (cw_core_job_t));
        assert (req->jobs);
        req->jobs_count = 0;
        for (int row = 0; row < count; row++) {
            const char *key = cw_pg_rows_value (rows, row, 1);
            s_buf_text (&keys, key);
            s_buf_int (&ids, s_parse_int (cw_pg_rows_value (rows, row, 0)));
            //  Only a key's head is leased to us; the rest wait, ready
            if (strcmp (cw_pg_rows_value (rows, row, 4), "leased"))
                continue;
            for (size_t index = 0; index < req->event_count; index++) {
                cw_store_event_t *event = &req->events [index];
                if (event->duplicate
                ||  strcmp (cw_envelope_idempotency_key (event->envelope), key))
                    continue;
                cw_core_job_t *job = &req->jobs [req->jobs_count++];
                job->id = s_parse_int (cw_pg_rows_value (rows, row, 0));
                job->flow = strdup (event->flow);
                job->target = s_strdup_or_null (event->target);
                job->ordering_key = s_strdup_or_null (event->ordering_key);
                job->max_attempts = (uint32_t) s_parse_int (
                    cw_pg_rows_value (rows, row, 2));
                job->lease_expires_at = req->now + req->lease_msec;
                job->lease_token = req->lease_token;
                job->payload = cw_envelope_dup (event->envelope);
                job->payload_size = 1;
                break;
            }
        }
        cw_pg_rows_destroy (&rows);
        const char *link [] = { s_buf_end (&keys), s_buf_end (&ids) };
        int link_rc = cw_pg_exec (self->pg, "inbox_link", 2, link, NULL);
        free (keys.data);
        free (ids.data);
        if (link_rc != 0)
            goto done;
    }
    if (cw_pg_commit (self->pg) != 0)
        goto done;
    rc = 0;
    if (req->jobs_count > 1)
        qsort (req->jobs, req->jobs_count, sizeof (cw_core_job_t), s_job_compare);
done:
    cw_pg_rows_destroy (&rows);
    if (rc != 0) {
        cw_pg_rollback (self->pg);
        s_jobs_free (req->jobs, req->jobs_count);
        req->jobs = NULL;
        req->jobs_count = 0;
    }
    s_arrays_free (&arrays);
    return rc;
}

static void
s_publish (s_store_t *self, cw_store_req_t *req)
{
    //  A serialization failure or a lost connection re-runs the whole
    //  transaction once; nothing was acknowledged yet.
    int rc = s_publish_once (self, req);
    if (rc == -1) {
        cw_pg_failure_t failure = cw_pg_failure (self->pg);
        if (failure == CW_PG_SERIALIZATION || failure == CW_PG_CONNECTION
        ||  failure == CW_PG_UNIQUE)
            rc = s_publish_once (self, req);
    }
    if (rc != 0)
        s_fail (req, self, "publish");
    else
        req->status = 0;
}

//  --- LISTEN ----------------------------------------------------------------

static void
s_listen_close (s_store_t *self)
{
    cw_pg_destroy (&self->listen);
    self->listen_retry_at = zclock_mono () + CW_STORE_LISTEN_RETRY_MSEC;
}

//  Opens the LISTEN connection (one attempt; the loop tries again after
//  CW_STORE_LISTEN_RETRY_MSEC).
static void
s_listen_open (s_store_t *self)
{
    self->listen = cw_pg_new (self->db_uri);
    cw_pg_set_retry (self->listen, 1, 0);
    if (cw_pg_listen (self->listen, CW_STORE_CHANNEL) != 0) {
        cw_log (CW_LOG_WARN, "listen_failed", "cannot LISTEN",
                "error", cw_pg_error (self->listen), NULL);
        s_listen_close (self);
    }
}

//  Reads notifications; returns true if any arrived.
static bool
s_listen_read (s_store_t *self)
{
    int count = cw_pg_notifications (self->listen);
    if (count < 0) {
        cw_log (CW_LOG_WARN, "listen_lost", "LISTEN connection lost",
                "error", cw_pg_error (self->listen), NULL);
        s_listen_close (self);
        return true;            //  Something may have been missed
    }
    if (count > 0) {
        struct timespec wall;
        clock_gettime (CLOCK_REALTIME, &wall);
        self->notified_usec = (int64_t) wall.tv_sec * 1000000
                            + wall.tv_nsec / 1000;
    }
    return count > 0;
}

//  Logs (debug) when the last NOTIFY was read, to the microsecond, after
//  the broker has been woken (bench/b2 measures wake to start from it).
static void
s_log_notified (s_store_t *self)
{
    char at[CW_LOG_TIME_SIZE];
    cw_log_time_usec (self->notified_usec, at, sizeof (at));
    cw_log (CW_LOG_DEBUG, "jobs_notified", "woken by NOTIFY", "at", at, NULL);
}

//  --- Expired leases -------------------------------------------------------

//  Runs the sweep when due; true if it handed jobs back.
static bool
s_expire (s_store_t *self)
{
    if (self->expire_msec <= 0 || zclock_mono () < self->expire_at)
        return false;
    cw_pg_rows_t *rows = NULL;
    bool freed = false;
    if (cw_pg_exec (self->pg, "expire", 0, NULL, &rows) == 0)
        freed = cw_pg_rows_count (rows) > 0;
    else
        cw_log (CW_LOG_WARN, "expire_failed",
                "cannot hand back expired leases", "error",
                cw_pg_error (self->pg), NULL);
    cw_pg_rows_destroy (&rows);
    self->expire_at = zclock_mono () + self->expire_msec;
    return freed;
}

//  --- Retention ---------------------------------------------------------------

//  One purge function call; returns the rows it deleted, -1 on failure.
static int64_t
s_purge_call (s_store_t *self, const char *name, int nparams,
              const char *const *values)
{
    cw_pg_rows_t *rows = NULL;
    int64_t deleted = -1;
    if (cw_pg_exec (self->pg, name, nparams, values, &rows) == 0
    &&  cw_pg_rows_count (rows) == 1)
        deleted = s_parse_int (cw_pg_rows_value (rows, 0, 0));
    else
        cw_log (CW_LOG_WARN, "purge_failed", "retention batch failed",
                "function", name, "error", cw_pg_error (self->pg), NULL);
    cw_pg_rows_destroy (&rows);
    return deleted;
}

//  Runs one retention batch when due, between requests: done jobs
//  finished longer than retention_msec ago (with their attempts), then
//  inbox and idempotency rows past their expiry. A full batch brings the
//  next one CW_STORE_PURGE_PACE_MSEC later, so a backlog drains without
//  holding the connection the commits need; a cycle ends with a short
//  batch, logged once (`purged`), and the next starts purge_msec later.
static void
s_purge (s_store_t *self)
{
    if (self->purge_msec <= 0 || zclock_mono () < self->purge_at)
        return;
    char batch [CW_STORE_INT_SIZE], older [CW_STORE_INT_SIZE];
    s_int_text (batch, sizeof (batch), CW_STORE_PURGE_BATCH);
    s_int_text (older, sizeof (older), self->retention_msec);
    int64_t jobs = 0, rows = 0;
    if (self->retention_msec > 0) {
        const char *values [] = { older, batch };
        jobs = s_purge_call (self, "purge_finished", 2, values);
    }
    if (jobs >= 0 && jobs < CW_STORE_PURGE_BATCH) {
        const char *values [] = { batch };
        rows = s_purge_call (self, "purge_expired", 1, values);
    }
    bool failed = jobs < 0 || rows < 0;
    bool more = !failed && (jobs == CW_STORE_PURGE_BATCH
                            || rows == CW_STORE_PURGE_BATCH);
    if (!failed) {
        self->purged_jobs += jobs;
        self->purged_rows += rows;
    }
    if (!more && self->purged_jobs + self->purged_rows > 0) {
        char jobs_text [CW_STORE_INT_SIZE], rows_text [CW_STORE_INT_SIZE];
        s_int_text (jobs_text, sizeof (jobs_text), self->purged_jobs);
        s_int_text (rows_text, sizeof (rows_text), self->purged_rows);
        cw_log (CW_LOG_INFO, "purged", "retention deleted finished rows",
                "#jobs", jobs_text, "#inbox_rows", rows_text, NULL);
    }
    if (!more)
        self->purged_jobs = self->purged_rows = 0;
    self->purge_at = zclock_mono ()
                   + (more ? CW_STORE_PURGE_PACE_MSEC : self->purge_msec);
}

//  --- Operator requests -------------------------------------------------------

//  A string member of args, or NULL when absent (the broker checked it).
static const char *
s_arg (const json_t *args, const char *name)
{
    return json_string_value (json_object_get (args, name));
}

//  A row's column as a JSON string, or null.
static json_t *
s_column (cw_pg_rows_t *rows, int row, int column)
{
    const char *value = cw_pg_rows_value (rows, row, column);
    return value ? json_string (value) : json_null ();
}

//  An integer column as JSON (0 when NULL).
static json_t *
s_count_column (cw_pg_rows_t *rows, int row, int column)
{
    return json_integer (s_parse_int (cw_pg_rows_value (rows, row, column)));
}

//  dlq.list and replay.preview: one SELECT with the selection.
static void
s_dlq_select (s_store_t *self, cw_store_req_t *req, bool preview)
{
    const json_t *args = req->admin_args;
    char after [CW_STORE_INT_SIZE], limit [CW_STORE_INT_SIZE];
    json_int_t wanted = json_integer_value (json_object_get (args, "limit"));
    s_int_text (after, sizeof (after),
                json_integer_value (json_object_get (args, "after_id")));
    s_int_text (limit, sizeof (limit), wanted + 1);
    const char *values [] = {
        s_arg (args, "tenant"), s_arg (args, "flow"), s_arg (args, "order"),
        s_arg (args, "customer"), s_arg (args, "reason"),
        s_arg (args, "since"), s_arg (args, "until"), after, limit };
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec (self->pg, "dlq_list", 9, values, &rows)) {
        s_fail (req, self, req->admin_op);
        return;
    }
    int count = cw_pg_rows_count (rows);
    bool more = count > wanted;
    if (more)
        count = (int) wanted;
    json_t *list = json_array ();
    for (int row = 0; row < count; row++) {
        if (preview) {
            json_array_append_new (list, s_count_column (rows, row, 0));
            continue;
        }
        json_t *job = json_object ();
        json_object_set_new (job, "id", s_count_column (rows, row, 0));
        json_object_set_new (job, "flow", s_column (rows, row, 1));
        json_object_set_new (job, "tenant", s_column (rows, row, 2));
        json_object_set_new (job, "idempotency_key", s_column (rows, row, 3));
        json_object_set_new (job, "ordering_key", s_column (rows, row, 4));
        json_object_set_new (job, "order", s_column (rows, row, 5));
        json_object_set_new (job, "customer", s_column (rows, row, 6));
        json_object_set_new (job, "reason", s_column (rows, row, 7));
        json_object_set_new (job, "attempts", s_count_column (rows, row, 8));
        json_object_set_new (job, "last_error", s_column (rows, row, 9));
        json_object_set_new (job, "died_at", s_column (rows, row, 10));
        json_object_set_new (job, "correlation_id", s_column (rows, row, 11));
        json_array_append_new (list, job);
    }
    cw_pg_rows_destroy (&rows);
    req->admin_result = json_pack ("{s:o, s:b}", preview ? "job_ids" : "jobs",
                                   list, "more", more);
    req->status = 0;
}

//  replay.confirm (the ids still dead go back to ready) or dlq.discard
//  (they become discarded), with the audit row, in one statement (one
//  transaction).
static void
s_replay (s_store_t *self, cw_store_req_t *req)
{
    bool discard = streq (req->admin_op, "dlq.discard");
    const json_t *ids = json_object_get (req->admin_args, "job_ids");
    s_buf_t array = {0};
    s_buf_begin (&array);
    for (size_t index = 0; index < json_array_size (ids); index++)
        s_buf_int (&array, json_integer_value (json_array_get (ids, index)));
    s_buf_end (&array);
    char max_attempts [CW_STORE_INT_SIZE], rate [CW_STORE_INT_SIZE];
    s_int_text (max_attempts, sizeof (max_attempts), req->admin_max_attempts);
    s_int_text (rate, sizeof (rate), req->admin_rate);
    const char *values [] = {
        s_arg (req->admin_args, "tenant"), array.data, req->admin_actor,
        s_arg (req->admin_args, "reason"), req->admin_policy, max_attempts,
        rate };
    cw_pg_rows_t *rows = NULL;
    int rc = discard ? cw_pg_exec (self->pg, "discard", 4, values, &rows)
                     : cw_pg_exec (self->pg, "replay", 7, values, &rows);
    free (array.data);
    if (rc) {
        s_fail (req, self, req->admin_op);
        return;
    }
    int count = 0;
    int64_t *replayed = s_rows_ids (rows, &count);
    cw_pg_rows_destroy (&rows);
    json_t *done = json_array ();
    json_t *skipped = json_array ();
    for (size_t index = 0; index < json_array_size (ids); index++) {
        json_int_t id = json_integer_value (json_array_get (ids, index));
        json_array_append_new (s_ids_has (replayed, count, id) ? done : skipped,
                               json_integer (id));
    }
    free (replayed);
    req->admin_result = json_pack ("{s:o, s:o}",
                                   discard ? "discarded" : "replayed", done,
                                   "skipped", skipped);
    req->status = 0;
}

//  A msec column as JSON, null when NULL (no job done).
static json_t *
s_msec_column (cw_pg_rows_t *rows, int row, int column)
{
    const char *value = cw_pg_rows_value (rows, row, column);
    return value ? json_integer (s_parse_int (value)) : json_null ();
}

//  slo: the rows of s_sql_slo as {flows: [...], sync: {...}, all: {...},
//  oldest_done_at}.
static void
s_slo (s_store_t *self, cw_store_req_t *req)
{
    const json_t *args = req->admin_args;
    const char *values [] = {
        s_arg (args, "since"), s_arg (args, "until"), s_arg (args, "flow") };
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec (self->pg, "slo", 3, values, &rows)) {
        s_fail (req, self, "slo");
        return;
    }
    json_t *result = json_pack ("{s:[], s:n}", "flows", "oldest_done_at");
    for (int row = 0; row < cw_pg_rows_count (rows); row++) {
        const char *kind = cw_pg_rows_value (rows, row, 0);
        if (streq (kind, "oldest")) {
            json_object_set_new (result, "oldest_done_at",
                                 s_column (rows, row, 1));
            continue;
        }
        json_t *figures = json_pack (
            "{s:o, s:o, s:o, s:o, s:o, s:o}",
            "done", s_count_column (rows, row, 2),
            "dead", s_count_column (rows, row, 3),
            "latency_p50_ms", s_msec_column (rows, row, 4),
            "latency_p95_ms", s_msec_column (rows, row, 5),
            "retried", s_count_column (rows, row, 6),
            "retried_done", s_count_column (rows, row, 7));
        if (streq (kind, "flow")) {
            json_object_set_new (figures, "flow", s_column (rows, row, 1));
            json_array_append_new (json_object_get (result, "flows"), figures);
        }
        else
            json_object_set_new (result, kind, figures);
    }
    cw_pg_rows_destroy (&rows);
    //  Over no jobs, an aggregate row still comes for "all" and "sync"
    //  only when some job matched: make both always there
    const char *kinds [] = { "sync", "all" };
    for (size_t index = 0; index < 2; index++)
        if (!json_object_get (result, kinds [index]))
            json_object_set_new (result, kinds [index], json_pack (
                "{s:i, s:i, s:n, s:n, s:i, s:i}", "done", 0, "dead", 0,
                "latency_p50_ms", "latency_p95_ms", "retried", 0,
                "retried_done", 0));
    //  The contract's targets these figures answer to (its "SLO / SLI
    //  Targets": customer/order sync p95 < 2 minutes, retry-to-success
    //  before the DLQ >= 98%)
    json_object_set_new (result, "targets", json_pack (
        "{s:i, s:f}", "sync_latency_p95_ms", 120000,
        "retry_to_success", 0.98));
    req->admin_result = result;
    req->status = 0;
}

static void
s_admin (s_store_t *self, cw_store_req_t *req)
{
    if (streq (req->admin_op, "slo"))
        s_slo (self, req);
    else
    if (streq (req->admin_op, "replay.confirm")
    ||  streq (req->admin_op, "dlq.discard"))
        s_replay (self, req);
    else
        s_dlq_select (self, req, streq (req->admin_op, "replay.preview"));
}

//  --- Gauges ----------------------------------------------------------------

//  Every gauges_msec, between requests: one short query, its answer sent
//  to the broker as a GAUGES it did not ask for (status -1 when the
//  database did not answer, which the broker's /healthz shows).
static void
s_gauges (s_store_t *self)
{
    if (self->gauges_msec <= 0 || zclock_mono () < self->gauges_at)
        return;
    self->gauges_at = zclock_mono () + self->gauges_msec;
    //  Sent as text, like a WAKE: a GAUGES nobody reads (the broker
    //  stopping) leaks nothing
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec (self->pg, "gauges", 0, NULL, &rows)) {
        cw_store_req_t *failed = cw_store_req_new (CW_STORE_GAUGES);
        s_fail (failed, self, "gauges");
        cw_store_req_destroy (&failed);
        zstr_send (self->pipe, S_GAUGES);
        return;
    }
    json_t *dead = json_object ();
    int64_t oldest = 0;
    for (int row = 0; row < cw_pg_rows_count (rows); row++) {
        const char *flow = cw_pg_rows_value (rows, row, 0);
        int64_t value = s_parse_int (cw_pg_rows_value (rows, row, 1));
        if (flow && *flow)
            json_object_set_new (dead, flow, json_integer (value));
        else
            oldest = value;
    }
    cw_pg_rows_destroy (&rows);
    json_t *gauges = json_pack ("{s:I, s:o}", "oldest_due_msec",
                                (json_int_t) oldest, "dead", dead);
    char *text = json_dumps (gauges, JSON_COMPACT);
    json_decref (gauges);
    assert (text);
    zstr_sendf (self->pipe, "%s%s", S_GAUGES, text);
    free (text);
}

//  --- Actor -----------------------------------------------------------------

//  Tells the broker that jobs may be waiting (NOTIFY, LISTEN back, sweep):
//  a plain frame, made into a request by cw_store_recv, so a WAKE nobody
//  reads (the broker stopping) leaks nothing.
static void
s_wake (zsock_t *pipe)
{
    zstr_send (pipe, S_WAKE);
}

static void
s_run (s_store_t *self, cw_store_req_t *req)
{
    switch (req->op) {
        case CW_STORE_CLAIM:   s_claim (self, req); break;
        case CW_STORE_COMMIT:  s_commit (self, req); break;
        case CW_STORE_RENEW:   s_renew (self, req); break;
        case CW_STORE_RELEASE: s_release (self, req); break;
        case CW_STORE_PUBLISH: s_publish (self, req); break;
        case CW_STORE_WAKE:    req->status = 0; break;
        case CW_STORE_ADMIN:   s_admin (self, req); break;
        case CW_STORE_GAUGES:  req->status = 0; break;
    }
}

void
cw_store_actor (zsock_t *pipe, void *args)
{
    const cw_store_config_t *config = (const cw_store_config_t *) args;
    s_store_t self;
    memset (&self, 0, sizeof (self));
    self.pipe = pipe;
    self.db_uri = strdup (config->db_uri);
    self.broker_id = strdup (config->broker_id);
    self.poll_only = config->poll_only;
    self.inbox_ttl_msec = config->inbox_ttl_msec;
    self.expire_msec = config->expire_msec;
    self.expire_at = zclock_mono ();
    self.retention_msec = config->retention_msec;
    self.purge_msec = config->purge_msec;
    self.purge_at = zclock_mono () + config->purge_msec;
    self.gauges_msec = config->gauges_msec;
    self.gauges_at = zclock_mono ();
    self.pg = cw_pg_new (self.db_uri);
    bool ok = cw_pg_connect (self.pg) == 0;
    for (const s_statement_t *statement = s_statements;
         ok && statement->name; statement++)
        ok = cw_pg_prepare (self.pg, statement->name, statement->sql,
                            statement->nparams) == 0;
    if (!ok) {
        cw_log (CW_LOG_ERROR, "store_failed", "cannot start the store",
                "error", cw_pg_error (self.pg), NULL);
        cw_pg_destroy (&self.pg);
        free (self.db_uri);
        free (self.broker_id);
        zsock_signal (pipe, 1);
        return;
    }
    if (!self.poll_only)
        s_listen_open (&self);
    zsock_signal (pipe, 0);

    while (true) {
        zmq_pollitem_t items [2] = {
            { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
            { NULL, -1, ZMQ_POLLIN, 0 }
        };
        int count = 1;
        long timeout = -1;
        if (self.listen) {
            items [1].fd = cw_pg_socket (self.listen);
            count = 2;
        }
        else
        if (!self.poll_only) {
            int64_t wait = self.listen_retry_at - zclock_mono ();
            timeout = wait > 0 ? (long) wait : 0;
        }
        if (self.expire_msec > 0) {
            int64_t wait = self.expire_at - zclock_mono ();
            if (wait < 0)
                wait = 0;
            if (timeout < 0 || wait < timeout)
                timeout = (long) wait;
        }
        if (self.purge_msec > 0) {
            int64_t wait = self.purge_at - zclock_mono ();
            if (wait < 0)
                wait = 0;
            if (timeout < 0 || wait < timeout)
                timeout = (long) wait;
        }
        if (self.gauges_msec > 0) {
            int64_t wait = self.gauges_at - zclock_mono ();
            if (wait < 0)
                wait = 0;
            if (timeout < 0 || wait < timeout)
                timeout = (long) wait;
        }
        int rc = zmq_poll (items, count, timeout);
        if (rc == -1 && zmq_errno () != EINTR)
            break;
        if (!self.listen && !self.poll_only
        &&  zclock_mono () >= self.listen_retry_at) {
            s_listen_open (&self);
            if (self.listen) {
                //  Jobs may have come while not listening
                s_wake (pipe);
            }
        }
        if (count == 2 && (items [1].revents & ZMQ_POLLIN) && self.listen
        &&  s_listen_read (&self)) {
            s_wake (pipe);
            s_log_notified (&self);
        }
        if (s_expire (&self)) {
            s_wake (pipe);
        }
        s_purge (&self);
        s_gauges (&self);
        if (items [0].revents & ZMQ_POLLIN) {
            zmsg_t *msg = zmsg_recv (pipe);
            if (!msg)
                break;
            zframe_t *frame = zmsg_first (msg);
            if (zframe_streq (frame, "$TERM")) {
                zmsg_destroy (&msg);
                break;
            }
            if (zframe_size (frame) == sizeof (void *)) {
                cw_store_req_t *req = NULL;
                memcpy (&req, zframe_data (frame), sizeof (void *));
                s_run (&self, req);
                zsock_send (pipe, "p", req);
            }
            zmsg_destroy (&msg);
        }
    }
    cw_pg_destroy (&self.listen);
    cw_pg_destroy (&self.pg);
    free (self.db_uri);
    free (self.broker_id);
}
