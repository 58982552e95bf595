/*  =========================================================================
    cw_relay - publishes an island's outbox to the broker

    Two state variables:
      session: CONNECTED (DEALER open) or WAITING (closed after the broker
               was lost; a new socket is made at reconnect_at);
      batch:   NULL (nothing in flight) or a batch whose PUBLISH was sent
               and whose ACK is awaited until ack_deadline (then the same
               PUBLISH, same batch_id, goes again).
    Rows are read without a lock (docs/relay.md, "Two relays"): a second
    relay publishes the same rows again, which the broker answers as
    duplicates, and the mark only touches rows still unpublished.
    =========================================================================
*/
#include "cw_relay.h"
#include "cw_wire.h"
#include "cw_curve.h"
#include "cw_envelope.h"
#include "cw_msg.h"
#include "cw_pg.h"
#include "cw_secret.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#define BATCH_BYTES_MAX (768 * 1024)    //  Payload JSON bytes per PUBLISH
#define DISCONNECT_LINGER_MSEC 1000     //  Time to flush DISCONNECT
#define POLL_MAX_MSEC 1000              //  Longest single poll
#define ISLAND_MAX 32                   //  As in cw_curve roles
#define SQL_MAX 512                     //  Statement text

static const cw_config_entry_t s_schema[] = {
    {.path = "broker/endpoint",
     .env = "CW_RELAY_BROKER_ENDPOINT",
     .type = CW_CONFIG_STRING,
     .default_value = "tcp://127.0.0.1:5570",
     .offset = offsetof (cw_relay_config_t, broker),
     .help = "the broker's endpoint (tcp:// or ipc://)"},
    {.path = "broker/public_key",
     .env = "CW_RELAY_BROKER_PUBLIC_KEY",
     .type = CW_CONFIG_STRING,
     .default_value = NULL,
     .offset = offsetof (cw_relay_config_t, broker_public_key),
     .help = "the broker's CURVE public key (Z85, 40 characters)"},
    {.path = "broker/heartbeat",
     .env = "CW_RELAY_BROKER_HEARTBEAT",
     .type = CW_CONFIG_DURATION,
     .default_value = "1s",
     .min = 10,
     .max = 60000,
     .offset = offsetof (cw_relay_config_t, heartbeat_msec),
     .help = "heartbeat interval when idle (must equal the broker's)"},
    {.path = "broker/liveness",
     .env = "CW_RELAY_BROKER_LIVENESS",
     .type = CW_CONFIG_INT,
     .default_value = "3",
     .min = 2,
     .max = 100,
     .offset = offsetof (cw_relay_config_t, liveness),
     .help = "silent heartbeat intervals before the broker counts as lost"},
    {.path = "broker/reconnect",
     .env = "CW_RELAY_BROKER_RECONNECT",
     .type = CW_CONFIG_DURATION,
     .default_value = "1s",
     .min = 10,
     .max = CW_RELAY_RETRY_MAX,
     .offset = offsetof (cw_relay_config_t, reconnect_msec),
     .help = "first reconnect / retry delay; doubles up to 30s"},
    {.path = "security/certificate_file",
     .env = "CW_RELAY_SECURITY_CERTIFICATE_FILE",
     .type = CW_CONFIG_SECRET_FILE,
     .default_value = NULL,
     .offset = offsetof (cw_relay_config_t, certificate),
     .help = "the relay's secret certificate file (mode 0600, role "
             "relay:<island>)"},
    {.path = "db/uri",
     .env = "CW_RELAY_DB_URI_FILE",
     .type = CW_CONFIG_SECRET_FILE,
     .default_value = NULL,
     .offset = offsetof (cw_relay_config_t, db_uri_file),
     .help = "file (0600) holding the libpq URI, role cw_relay_<island>"},
    {.path = "db/poll_only",
     .env = "CW_RELAY_DB_POLL_ONLY",
     .type = CW_CONFIG_BOOL,
     .default_value = "false",
     .offset = offsetof (cw_relay_config_t, poll_only),
     .help = "no LISTEN/NOTIFY, poll only (PgBouncer transaction pooling)"},
    {.path = "db/poll",
     .env = "CW_RELAY_DB_POLL",
     .type = CW_CONFIG_DURATION,
     .default_value = "1s",
     .min = 10,
     .max = 3600000,
     .offset = offsetof (cw_relay_config_t, poll_msec),
     .help = "safety-net interval between outbox reads"},
    {.path = "relay/island",
     .env = "CW_RELAY_ISLAND",
     .type = CW_CONFIG_STRING,
     .default_value = "shop",
     .offset = offsetof (cw_relay_config_t, island),
     .help = "the island published for: reads <island>.outbox"},
    {.path = "relay/batch_size",
     .env = "CW_RELAY_BATCH_SIZE",
     .type = CW_CONFIG_INT,
     .default_value = "100",
     .min = 1,
     .max = CW_MSG_EVENTS_MAX,
     .offset = offsetof (cw_relay_config_t, batch_size),
     .help = "outbox rows per PUBLISH at most"},
    {.path = "relay/ack_timeout",
     .env = "CW_RELAY_ACK_TIMEOUT",
     .type = CW_CONFIG_DURATION,
     .default_value = "5s",
     .min = 10,
     .max = 600000,
     .offset = offsetof (cw_relay_config_t, ack_timeout_msec),
     .help = "publish the same batch again when no ACK came in this time"},
    {.path = "relay/shutdown_timeout",
     .env = "CW_RELAY_SHUTDOWN_TIMEOUT",
     .type = CW_CONFIG_DURATION,
     .default_value = "10s",
     .min = 0,
     .max = 3600000,
     .offset = offsetof (cw_relay_config_t, shutdown_timeout_msec),
     .help = "on SIGTERM, time to wait for the ACK of the batch in flight"},
    {.path = "log/level",
     .env = "CW_RELAY_LOG_LEVEL",
     .type = CW_CONFIG_LOG_LEVEL,
     .default_value = "info",
     .offset = offsetof (cw_relay_config_t, log_level),
     .help = "lowest level logged"},
    {.path = NULL}};

typedef enum {
    S_CONNECTED,  //  Socket open
    S_WAITING     //  Socket closed, reconnect at reconnect_at
} s_state_t;

//  One outbox row of the batch in flight
typedef struct {
    char *id;   //  shop.outbox.id, as text
    char *key;  //  Its idempotency key
} s_row_t;

//  The batch in flight
typedef struct {
    int64_t batch_id;      //  As in PUBLISH and ACK
    cw_msg_t *publish;     //  Kept to send again
    s_row_t *rows;         //  One per event, same order
    size_t rows_count;     //  Events in publish
    int64_t ack_deadline;  //  Publish again after this
    int64_t sends;         //  Times sent
} s_batch_t;

struct _cw_relay_t {
    const cw_relay_config_t *config;  //  Borrowed
    zcert_t *cert;                    //  The relay's certificate
    char *db_uri;                     //  Secret: wiped on destroy
    char table[ISLAND_MAX + 16];      //  "<island>.outbox"
    char channel[ISLAND_MAX + 16];    //  "cw_<island>_outbox"
    cw_pg_t *pg;                      //  Reads and marks
    cw_pg_t *listen;                  //  LISTEN connection, or NULL
    int64_t listen_retry_at;          //  When to LISTEN again
    s_state_t state;                  //  Broker session
    zsock_t *sock;                    //  DEALER while CONNECTED
    int64_t expires_at;               //  Broker lost if silent until this
    int64_t heartbeat_at;             //  HEARTBEAT if nothing sent by this
    int64_t reconnect_at;             //  WAITING: when to connect again
    int64_t backoff_msec;             //  Next reconnect delay
    s_batch_t *batch;                 //  In flight, or NULL
    int64_t next_batch_id;            //  Batch ids grow per process
    bool wake;                        //  NOTIFY (or a full batch) seen
    int64_t read_at;                  //  Next safety-net read
    int64_t retry_msec;               //  Delay after a refusal or failure
    int64_t retry_at;                 //  No read before this
    bool stopping;                    //  SIGTERM seen: no new batch
    int64_t stop_deadline;            //  When waiting for the ACK ends
};

const cw_config_entry_t *
cw_relay_schema (void)
{
    return s_schema;
}

static void
s_batch_destroy (s_batch_t **self_p)
{
    s_batch_t *self = *self_p;
    if (self) {
        for (size_t index = 0; index < self->rows_count; index++) {
            free (self->rows[index].id);
            free (self->rows[index].key);
        }
        free (self->rows);
        cw_msg_destroy (&self->publish);
        free (self);
        *self_p = NULL;
    }
}

static bool
s_island_valid (const char *island)
{
    size_t length = strlen (island);
    if (length == 0 || length > ISLAND_MAX)
        return false;
    for (size_t index = 0; index < length; index++)
        if (!((island[index] >= 'a' && island[index] <= 'z')
              || island[index] == '_'))
            return false;
    return true;
}

cw_relay_t *
cw_relay_new (const cw_relay_config_t *config, char *error, size_t size)
{
    assert (config);
    assert (error);
    cw_relay_t *self = (cw_relay_t *) zmalloc (sizeof (cw_relay_t));
    self->config = config;
    char reason[512];

    if (strlen (config->broker_public_key) != CW_CURVE_KEY_TXT) {
        snprintf (error, size,
                  "config key \"broker/public_key\": must be a Z85 key of %d "
                  "characters",
                  CW_CURVE_KEY_TXT);
        goto failed;
    }
    uint8_t key[32];
    if (!zmq_z85_decode (key, config->broker_public_key)) {
        snprintf (error, size,
                  "config key \"broker/public_key\": not a Z85 key");
        goto failed;
    }
    if (strncmp (config->broker, "tcp://", 6) != 0
        && strncmp (config->broker, "ipc://", 6) != 0) {
        snprintf (error, size,
                  "config key \"broker/endpoint\": \"%s\" is not a tcp:// or "
                  "ipc:// endpoint",
                  config->broker);
        goto failed;
    }
    if (!s_island_valid (config->island)) {
        snprintf (error, size,
                  "config key \"relay/island\": \"%s\" must be 1 to %d "
                  "characters of a-z and _",
                  config->island, ISLAND_MAX);
        goto failed;
    }
    snprintf (self->table, sizeof (self->table), "%s.outbox", config->island);
    snprintf (self->channel, sizeof (self->channel), "cw_%s_outbox",
              config->island);
    self->cert = cw_curve_cert_load_secret (config->certificate, reason,
                                            sizeof (reason));
    if (!self->cert) {
        snprintf (error, size, "config key \"security/certificate_file\": %s",
                  reason);
        goto failed;
    }
    //  The broker decides the role from its own list; a mismatch here is
    //  only worth a warning (the broker will say "forbidden")
    const char *role = zcert_meta (self->cert, "role");
    char island[ISLAND_MAX + 1];
    if (!role || cw_curve_role_island (role, island, sizeof (island))
        || !streq (island, config->island))
        cw_log (CW_LOG_WARN, "certificate_role",
                "certificate role does not match the island", "role", role,
                "island", config->island, NULL);
    self->db_uri = cw_secret_load (config->db_uri_file, reason, sizeof (reason));
    if (!self->db_uri) {
        snprintf (error, size, "config key \"db/uri\": %s", reason);
        goto failed;
    }
    self->pg = cw_pg_new (self->db_uri);
    self->state = S_WAITING;
    self->backoff_msec = config->reconnect_msec;
    self->retry_msec = config->reconnect_msec;
    self->next_batch_id = 1;
    self->wake = true;  //  Read once at start
    return self;
failed:
    cw_relay_destroy (&self);
    return NULL;
}

static void s_listen_close (cw_relay_t *self);

void
cw_relay_destroy (cw_relay_t **self_p)
{
    assert (self_p);
    cw_relay_t *self = *self_p;
    if (!self)
        return;
    s_batch_destroy (&self->batch);
    zsock_destroy (&self->sock);
    s_listen_close (self);
    cw_pg_destroy (&self->pg);
    cw_secret_destroy (&self->db_uri);
    cw_curve_cert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

//  --- Database ---------------------------------------------------------------

static int
s_prepare (cw_relay_t *self)
{
    char sql[SQL_MAX];
    snprintf (sql, sizeof (sql),
              "SELECT id, idempotency_key, payload::text FROM %s"
              " WHERE published_at IS NULL ORDER BY id LIMIT $1",
              self->table);
    if (cw_pg_prepare (self->pg, "outbox_read", sql, 1))
        return -1;
    //  $1: [{"id": 1, "reason": null}, ...]; the first relay's mark wins
    snprintf (sql, sizeof (sql),
              "UPDATE %s o SET published_at = now(),"
              " rejected_reason = m.reason"
              " FROM jsonb_to_recordset ($1::jsonb) AS m (id bigint,"
              " reason text)"
              " WHERE o.id = m.id AND o.published_at IS NULL",
              self->table);
    return cw_pg_prepare (self->pg, "outbox_mark", sql, 1);
}

//  Marks rows: marks is a JSON array of {id, reason}. Returns 0 or -1.
static int
s_mark (cw_relay_t *self, json_t *marks)
{
    if (json_array_size (marks) == 0)
        return 0;
    char *text = json_dumps (marks, JSON_COMPACT);
    assert (text);
    const char *values[] = {text};
    int rc = cw_pg_exec (self->pg, "outbox_mark", 1, values, NULL);
    free (text);
    if (rc)
        cw_log (CW_LOG_ERROR, "mark_failed", "could not mark outbox rows",
                "table", self->table, "reason", cw_pg_error (self->pg),
                "sqlstate", cw_pg_sqlstate (self->pg), NULL);
    return rc;
}

//  The reason as a JSON string. A decoder's reason may quote a field path
//  cut at a byte count inside a character, which json_string refuses:
//  each byte of a broken character becomes '?'.
static json_t *
s_reason_json (const char *reason)
{
    json_t *string = json_string (reason);
    if (!string) {
        char *repaired = cw_log_utf8_repaired (reason);
        string = json_string (repaired);
        free (repaired);
    }
    assert (string);
    return string;
}

static void
s_mark_add (json_t *marks, const char *id, const char *reason)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll (id, &end, 10);
    assert (errno == 0 && end && *end == '\0');
    json_t *mark = json_pack ("{s:I, s:o}", "id", (json_int_t) value, "reason",
                              reason ? s_reason_json (reason) : json_null ());
    assert (mark);
    json_array_append_new (marks, mark);
}

static void
s_listen_close (cw_relay_t *self)
{
    cw_pg_destroy (&self->listen);
    self->listen_retry_at = zclock_mono () + self->config->reconnect_msec;
}

//  Opens the LISTEN connection (one attempt; s_timers tries again after
//  reconnect_msec).
static void
s_listen_open (cw_relay_t *self)
{
    self->listen = cw_pg_new (self->db_uri);
    cw_pg_set_retry (self->listen, 1, 0);
    if (cw_pg_listen (self->listen, self->channel) != 0) {
        cw_log (CW_LOG_WARN, "listen_failed", "could not LISTEN", "channel",
                self->channel, "reason", cw_pg_error (self->listen), NULL);
        s_listen_close (self);
        return;
    }
    //  Rows may have arrived while nobody listened
    self->wake = true;
}

//  Reads notifications (coalesced: any number sets one wake).
static void
s_listen_read (cw_relay_t *self)
{
    int count = cw_pg_notifications (self->listen);
    if (count < 0) {
        cw_log (CW_LOG_WARN, "listen_lost", "lost LISTEN connection", "reason",
                cw_pg_error (self->listen), NULL);
        s_listen_close (self);
        self->wake = true;
        return;
    }
    if (count > 0)
        self->wake = true;
}

//  --- Broker session ---------------------------------------------------------

static int
s_send (cw_relay_t *self, const cw_msg_t *msg)
{
    int rc = cw_wire_send (self->sock, msg, self->config->broker);
    self->heartbeat_at = zclock_mono () + self->config->heartbeat_msec;
    return rc;
}

static void
s_send_heartbeat (cw_relay_t *self)
{
    cw_msg_t *heartbeat = cw_msg_new (CW_MSG_RELAY, CW_MSG_HEARTBEAT);
    s_send (self, heartbeat);
    cw_msg_destroy (&heartbeat);
}

//  Sends the batch in flight (again) and sets its ACK deadline.
static void
s_batch_send (cw_relay_t *self)
{
    s_batch_t *batch = self->batch;
    assert (batch);
    batch->ack_deadline = zclock_mono () + self->config->ack_timeout_msec;
    if (self->state != S_CONNECTED)
        return;  //  Sent at reconnect
    batch->sends++;
    char batch_id[32], events[32], sends[32];
    snprintf (batch_id, sizeof (batch_id), "%" PRId64, batch->batch_id);
    snprintf (events, sizeof (events), "%zu", batch->rows_count);
    snprintf (sends, sizeof (sends), "%" PRId64, batch->sends);
    cw_log (batch->sends > 1 ? CW_LOG_WARN : CW_LOG_DEBUG,
            batch->sends > 1 ? "publish_again" : "publish",
            batch->sends > 1 ? "published batch again (no ACK in time)"
                             : "published batch",
            "#batch_id", batch_id, "#events", events, "#sends", sends, NULL);
    s_send (self, batch->publish);
}

static void
s_session_open (cw_relay_t *self)
{
    assert (self->state == S_WAITING);
    self->sock = zsock_new (ZMQ_DEALER);
    assert (self->sock);
    cw_curve_client_setup (self->sock, self->cert,
                           self->config->broker_public_key);
    zsock_set_linger (self->sock, 0);
    zsock_set_rcvtimeo (self->sock, 0);
    if (zsock_connect (self->sock, "%s", self->config->broker)) {
        cw_log (CW_LOG_ERROR, "connect_failed", "could not connect to broker",
                "endpoint", self->config->broker, "reason",
                zmq_strerror (zmq_errno ()), NULL);
        zsock_destroy (&self->sock);
        self->reconnect_at = zclock_mono () + self->backoff_msec;
        return;
    }
    self->state = S_CONNECTED;
    self->expires_at = zclock_mono ()
                       + self->config->heartbeat_msec * self->config->liveness;
    cw_log (CW_LOG_INFO, "broker_connect", "connecting to broker", "endpoint",
            self->config->broker, NULL);
    //  First sign of life: PUBLISH if a batch waits, else HEARTBEAT
    if (self->batch)
        s_batch_send (self);
    else
        s_send_heartbeat (self);
}

static void
s_session_lost (cw_relay_t *self, const char *why)
{
    zsock_destroy (&self->sock);
    self->state = S_WAITING;
    int64_t delay = self->backoff_msec;
    delay = delay / 2
            + (int64_t) (randombytes_uniform ((uint32_t) (delay / 2 + 1)));
    self->reconnect_at = zclock_mono () + delay;
    self->backoff_msec *= 2;
    if (self->backoff_msec > CW_RELAY_RETRY_MAX)
        self->backoff_msec = CW_RELAY_RETRY_MAX;
    char delay_text[32];
    snprintf (delay_text, sizeof (delay_text), "%" PRId64, delay);
    cw_log (CW_LOG_WARN, "broker_lost", "lost broker, will reconnect",
            "endpoint", self->config->broker, "reason", why, "#reconnect_ms",
            delay_text, NULL);
}

//  --- Batches ----------------------------------------------------------------

//  After a failure or refusal: no read for retry_msec, which doubles up
//  to CW_RELAY_RETRY_MAX (reset by the next ACK).
static void
s_retry_later (cw_relay_t *self)
{
    self->retry_at = zclock_mono () + self->retry_msec;
    self->wake = true;  //  Read as soon as the delay has passed
    self->retry_msec *= 2;
    if (self->retry_msec > CW_RELAY_RETRY_MAX)
        self->retry_msec = CW_RELAY_RETRY_MAX;
}

//  Reads up to batch_size unpublished rows; rows that are not valid
//  envelopes are marked rejected at once; the rest become the batch in
//  flight and are published.
static void
s_batch_read (cw_relay_t *self)
{
    if (!cw_pg_connected (self->pg)) {
        if (cw_pg_connect (self->pg) || s_prepare (self)) {
            cw_log (CW_LOG_ERROR, "db_failed", "could not reach the database",
                    "reason", cw_pg_error (self->pg), NULL);
            s_retry_later (self);
            return;
        }
    }
    char limit[32];
    snprintf (limit, sizeof (limit), "%" PRId64, self->config->batch_size);
    const char *values[] = {limit};
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec (self->pg, "outbox_read", 1, values, &rows)) {
        cw_log (CW_LOG_ERROR, "read_failed", "could not read the outbox",
                "table", self->table, "reason", cw_pg_error (self->pg),
                "sqlstate", cw_pg_sqlstate (self->pg), NULL);
        s_retry_later (self);
        return;
    }
    int count = cw_pg_rows_count (rows);
    s_batch_t *batch = (s_batch_t *) zmalloc (sizeof (s_batch_t));
    batch->rows = (s_row_t *) zmalloc ((size_t) (count + 1) * sizeof (s_row_t));
    batch->publish = cw_msg_new (CW_MSG_RELAY, CW_MSG_PUBLISH);
    batch->publish->publish.island = strdup (self->config->island);
    json_t *rejects = json_array ();
    size_t bytes = 0;
    int taken = 0;
    for (; taken < count; taken++) {
        const char *id = cw_pg_rows_value (rows, taken, 0);
        const char *key = cw_pg_rows_value (rows, taken, 1);
        const char *payload = cw_pg_rows_value (rows, taken, 2);
        size_t json_size = strlen (payload);
        char reason[CW_MSG_REASON_SIZE] = "";
        cw_envelope_t *envelope = cw_envelope_decode_json (
            payload, json_size, reason, sizeof (reason));
        //  Its size as sent (msgpack: a float takes 9 bytes however short
        //  its JSON), which is what must fit in one PUBLISH
        size_t size = 0;
        if (envelope && !streq (cw_envelope_idempotency_key (envelope), key)) {
            snprintf (reason, sizeof (reason),
                      "field \"idempotencykey\": \"%.255s\" differs from the "
                      "row's idempotency_key",
                      cw_envelope_idempotency_key (envelope));
            cw_envelope_destroy (&envelope);
        }
        else if (envelope && json_size > BATCH_BYTES_MAX) {
            snprintf (reason, sizeof (reason),
                      "envelope too large: %zu bytes of JSON, at most %d in "
                      "one PUBLISH",
                      json_size, BATCH_BYTES_MAX);
            cw_envelope_destroy (&envelope);
        }
        else if (envelope) {
            void *encoded = cw_envelope_encode_msgpack (envelope, &size, reason,
                                                        sizeof (reason));
            if (!encoded)
                cw_envelope_destroy (&envelope);
            else if (size > BATCH_BYTES_MAX) {
                snprintf (reason, sizeof (reason),
                          "envelope too large: %zu bytes encoded, at most %d "
                          "in one PUBLISH",
                          size, BATCH_BYTES_MAX);
                cw_envelope_destroy (&envelope);
            }
            free (encoded);
        }
        if (envelope && batch->rows_count > 0
            && bytes + size > BATCH_BYTES_MAX) {
            cw_envelope_destroy (&envelope);
            break;  //  The rest go in the next batch
        }
        if (!envelope) {
            cw_log (CW_LOG_ERROR, "row_rejected",
                    "outbox row is not a valid envelope; marked rejected",
                    "table", self->table, "#id", id, "idempotency_key", key,
                    "reason", reason, NULL);
            s_mark_add (rejects, id, reason);
            continue;
        }
        bytes += size;
        batch->rows[batch->rows_count].id = strdup (id);
        batch->rows[batch->rows_count].key = strdup (key);
        batch->rows_count++;
        cw_msg_event_add (batch->publish, &envelope);
    }
    cw_pg_rows_destroy (&rows);
    //  Not marked: they are read (and rejected) again, after a delay
    if (s_mark (self, rejects))
        s_retry_later (self);
    json_decref (rejects);
    //  A full read (or one cut by size) means more may wait
    if (taken < count || count == self->config->batch_size)
        self->wake = true;
    if (batch->rows_count == 0) {
        s_batch_destroy (&batch);
        return;
    }
    batch->batch_id = self->next_batch_id++;
    batch->publish->publish.batch_id = batch->batch_id;
    self->batch = batch;
    s_batch_send (self);
}

//  Looks a key up in the batch; returns its row or NULL.
static s_row_t *
s_batch_row (s_batch_t *batch, const char *key)
{
    for (size_t index = 0; index < batch->rows_count; index++)
        if (batch->rows[index].key && streq (batch->rows[index].key, key))
            return &batch->rows[index];
    return NULL;
}

//  The ACK of the batch in flight: mark accepted and duplicate rows
//  published, rejected rows published with the reason.
static void
s_handle_ack (cw_relay_t *self, cw_msg_ack_t *ack)
{
    s_batch_t *batch = self->batch;
    char batch_id[32];
    snprintf (batch_id, sizeof (batch_id), "%" PRId64, ack->batch_id);
    if (!batch || batch->batch_id != ack->batch_id) {
        cw_log (CW_LOG_DEBUG, "ack_stale", "ignored ACK of an older batch",
                "#batch_id", batch_id, NULL);
        return;
    }
    json_t *marks = json_array ();
    for (size_t index = 0; index < ack->accepted_count; index++) {
        s_row_t *row = s_batch_row (batch, ack->accepted[index]);
        if (row) {
            s_mark_add (marks, row->id, NULL);
            zstr_free (&row->key);  //  Counted once
        }
    }
    for (size_t index = 0; index < ack->duplicates_count; index++) {
        s_row_t *row = s_batch_row (batch, ack->duplicates[index]);
        if (row) {
            s_mark_add (marks, row->id, NULL);
            zstr_free (&row->key);
        }
    }
    for (size_t index = 0; index < ack->rejected_count; index++) {
        s_row_t *row = s_batch_row (batch, ack->rejected[index].key);
        if (!row)
            continue;
        cw_log (CW_LOG_ERROR, "event_rejected",
                "broker rejected event; marked rejected", "table", self->table,
                "#id", row->id, "idempotency_key", row->key, "reason",
                ack->rejected[index].reason, NULL);
        s_mark_add (marks, row->id, ack->rejected[index].reason);
        zstr_free (&row->key);
    }
    size_t missing = 0;
    for (size_t index = 0; index < batch->rows_count; index++)
        if (batch->rows[index].key) {
            cw_log (CW_LOG_WARN, "ack_missing",
                    "ACK did not mention an event; it stays unpublished",
                    "#id", batch->rows[index].id, "idempotency_key",
                    batch->rows[index].key, NULL);
            missing++;
        }
    char accepted[32], duplicates[32], rejected[32];
    snprintf (accepted, sizeof (accepted), "%zu", ack->accepted_count);
    snprintf (duplicates, sizeof (duplicates), "%zu", ack->duplicates_count);
    snprintf (rejected, sizeof (rejected), "%zu", ack->rejected_count);
    int marked = s_mark (self, marks);
    if (marked == 0)
        cw_log (CW_LOG_INFO, "batch_published", "published batch",
                "#batch_id", batch_id, "#accepted", accepted, "#duplicates",
                duplicates, "#rejected", rejected, NULL);
    json_decref (marks);
    s_batch_destroy (&self->batch);
    if (missing || marked)
        s_retry_later (self);
    else
        self->retry_msec = self->config->reconnect_msec;
}

//  The broker refused the PUBLISH: the rows stay unpublished and are
//  read again after a growing delay.
static void
s_handle_error (cw_relay_t *self, cw_msg_error_body_t *error)
{
    bool refused_publish =
        self->batch && (error->command == CW_MSG_PUBLISH || error->command < 0);
    cw_log (streq (error->code, "forbidden") ? CW_LOG_ERROR : CW_LOG_WARN,
            "broker_error", "broker refused a command", "endpoint",
            self->config->broker, "code", error->code, "detail",
            error->message, NULL);
    if (!refused_publish)
        return;
    s_batch_destroy (&self->batch);
    char delay[32];
    snprintf (delay, sizeof (delay), "%" PRId64, self->retry_msec);
    cw_log (CW_LOG_WARN, "publish_refused",
            "batch refused; rows stay unpublished", "code", error->code,
            "#retry_ms", delay, NULL);
    s_retry_later (self);
}

static void
s_session_read (cw_relay_t *self)
{
    while (self->sock) {
        zmsg_t *msg = zmsg_recv (self->sock);
        if (!msg)
            break;
        self->expires_at = zclock_mono ()
                           + self->config->heartbeat_msec * self->config->liveness;
        self->backoff_msec = self->config->reconnect_msec;
        char reason[CW_MSG_REASON_SIZE];
        cw_msg_t *decoded =
            cw_wire_decode (msg, 0, NULL, reason, sizeof (reason));
        zmsg_destroy (&msg);
        if (!decoded || decoded->protocol != CW_MSG_RELAY
            || cw_msg_direction (decoded->command) == CW_MSG_TO_BROKER) {
            cw_log (CW_LOG_WARN, "malformed_message",
                    "dropped malformed message from broker", "endpoint",
                    self->config->broker, "reason",
                    decoded ? "not a broker-to-relay command" : reason, NULL);
            cw_msg_destroy (&decoded);
            continue;
        }
        switch (decoded->command) {
            case CW_MSG_ACK:
                s_handle_ack (self, &decoded->ack);
                break;
            case CW_MSG_ERROR:
                s_handle_error (self, &decoded->error);
                break;
            case CW_MSG_DISCONNECT:
                cw_log (CW_LOG_INFO, "broker_disconnect",
                        "broker ended the session", "endpoint",
                        self->config->broker, "reason",
                        decoded->disconnect.reason, NULL);
                s_session_lost (self, "broker sent DISCONNECT");
                break;
            default:  //  HEARTBEAT: a sign of life, nothing more
                break;
        }
        cw_msg_destroy (&decoded);
    }
}

//  --- Loop -------------------------------------------------------------------

static void
s_timers (cw_relay_t *self)
{
    int64_t now = zclock_mono ();
    if (!self->config->poll_only && !self->listen && !self->stopping
        && now >= self->listen_retry_at)
        s_listen_open (self);
    if (self->state == S_WAITING) {
        if (now >= self->reconnect_at)
            s_session_open (self);
    }
    else if (now >= self->expires_at)
        s_session_lost (self, "no message for liveness intervals");
    if (self->batch && now >= self->batch->ack_deadline)
        s_batch_send (self);
    if (self->state == S_CONNECTED && now >= self->heartbeat_at)
        s_send_heartbeat (self);
    if (!self->batch && !self->stopping && self->state == S_CONNECTED
        && now >= self->retry_at && (self->wake || now >= self->read_at)) {
        self->wake = false;
        self->read_at = now + self->config->poll_msec;
        s_batch_read (self);
    }
}

static long
s_next_timeout (cw_relay_t *self)
{
    int64_t now = zclock_mono ();
    int64_t next = now + POLL_MAX_MSEC;
    if (self->state == S_WAITING) {
        if (self->reconnect_at < next)
            next = self->reconnect_at;
    }
    else {
        if (self->expires_at < next)
            next = self->expires_at;
        if (self->heartbeat_at < next)
            next = self->heartbeat_at;
        if (!self->batch && !self->stopping) {
            int64_t read = self->wake ? now : self->read_at;
            if (read < self->retry_at)
                read = self->retry_at;
            if (read < next)
                next = read;
        }
    }
    if (self->batch && self->batch->ack_deadline < next)
        next = self->batch->ack_deadline;
    //  As s_timers: no LISTEN again once stopping
    if (!self->config->poll_only && !self->listen && !self->stopping
        && self->listen_retry_at < next)
        next = self->listen_retry_at;
    if (self->stopping && self->stop_deadline < next)
        next = self->stop_deadline;
    return next > now ? (long) (next - now) : 0;
}

int
cw_relay_run (cw_relay_t *self, int signal_fd)
{
    assert (self);
    if (cw_pg_connect (self->pg) || s_prepare (self)) {
        cw_log (CW_LOG_FATAL, "db_failed", "could not reach the database",
                "reason", cw_pg_error (self->pg), NULL);
        return 1;
    }
    //  From now on one attempt per reconnect: the loop's own backoff
    //  (s_retry_later) spaces them, and signals and the broker are served
    //  in between instead of waiting out cw_pg's sleeps
    cw_pg_set_retry (self->pg, 1, 0);
    int signals = 0;
    bool failed = false;
    while (true) {
        if (self->stopping
            && (!self->batch || zclock_mono () >= self->stop_deadline))
            break;
        zmq_pollitem_t items[3];
        size_t count = 0;
        size_t signal_item = SIZE_MAX, sock_item = SIZE_MAX,
               listen_item = SIZE_MAX;
        if (signal_fd >= 0) {
            signal_item = count;
            items[count++] = (zmq_pollitem_t){NULL, signal_fd, ZMQ_POLLIN, 0};
        }
        if (self->sock) {
            sock_item = count;
            items[count++] = (zmq_pollitem_t){zsock_resolve (self->sock), -1,
                                              ZMQ_POLLIN, 0};
        }
        if (self->listen && cw_pg_socket (self->listen) >= 0) {
            listen_item = count;
            items[count++] = (zmq_pollitem_t){NULL, cw_pg_socket (self->listen),
                                              ZMQ_POLLIN, 0};
        }
        int rc = zmq_poll (items, (int) count, s_next_timeout (self));
        if (rc < 0 && zmq_errno () != EINTR) {
            cw_log (CW_LOG_ERROR, "poll_failed", "could not poll", "reason",
                    zmq_strerror (zmq_errno ()), NULL);
            failed = true;
            break;
        }
        if (rc > 0 && signal_item != SIZE_MAX
            && (items[signal_item].revents & ZMQ_POLLIN)) {
            char bytes[16];
            ssize_t got = read (signal_fd, bytes, sizeof (bytes));
            if (got > 0)
                signals += (int) got;
            if (signals >= 2) {
                cw_log (CW_LOG_WARN, "exit_now",
                        "second signal: exiting at once", NULL);
                return 1;
            }
            if (!self->stopping) {
                self->stopping = true;
                self->stop_deadline =
                    zclock_mono () + self->config->shutdown_timeout_msec;
                cw_log (CW_LOG_INFO, "stopping",
                        "stopping: no new batch, waiting for the ACK in "
                        "flight",
                        "in_flight", self->batch ? "true" : "false", NULL);
            }
        }
        if (rc > 0 && listen_item != SIZE_MAX
            && (items[listen_item].revents & ZMQ_POLLIN))
            s_listen_read (self);
        if (rc > 0 && sock_item != SIZE_MAX
            && (items[sock_item].revents & ZMQ_POLLIN))
            s_session_read (self);
        s_timers (self);
    }
    if (self->batch) {
        char batch_id[32];
        snprintf (batch_id, sizeof (batch_id), "%" PRId64,
                  self->batch->batch_id);
        cw_log (CW_LOG_WARN, "batch_abandoned",
                "no ACK before the shutdown timeout; rows stay unpublished",
                "#batch_id", batch_id, NULL);
        s_batch_destroy (&self->batch);
    }
    if (self->state == S_CONNECTED) {
        cw_msg_t *disconnect = cw_msg_new (CW_MSG_RELAY, CW_MSG_DISCONNECT);
        disconnect->disconnect.reason = strdup ("relay shutting down");
        s_send (self, disconnect);
        cw_msg_destroy (&disconnect);
        zsock_set_linger (self->sock, DISCONNECT_LINGER_MSEC);
        zsock_destroy (&self->sock);
        self->state = S_WAITING;
    }
    cw_log (CW_LOG_INFO, "stopped", "relay stopped", NULL);
    return failed ? 1 : 0;      //  A runtime failure is not a clean exit
}
