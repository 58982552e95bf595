/*  =========================================================================
    cw_worker - the stateless worker: sessions with brokers (CWP/1), jobs
    run through the curl multi runner, results batched back

    Session states: CONNECTED (socket open, READY sent) and WAITING
    (socket closed after the broker was lost or said DISCONNECT; a new
    socket is made at reconnect_at). A job belongs to the session it came
    from; when that session ends its jobs are abandoned (calls cancelled,
    nothing reported: the broker re-dispatches them).
    =========================================================================
*/
#include "cw_worker.h"
#include "cw_wire.h"
#include "cw_curve.h"
#include "cw_flow.h"
#include "cw_flow_http.h"
#include "cw_msg.h"
#include "cw_runner.h"
#include "cw_secret.h"

#include <assert.h>
#include <czmq.h>
#include <sodium.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RESULT_BATCH_BYTES (512 * 1024)  //  Estimated body size per RESULT
#define RESULT_OVERHEAD 1400             //  Estimated bytes per result
#define DISCONNECT_LINGER_MSEC 1000      //  Time to flush DISCONNECT
#define POLL_MAX_MSEC 1000               //  Longest single poll

static const char *const s_auth_choices[] = {"bearer", "api_key", NULL};

static const cw_config_entry_t s_schema[] = {
    {.path = "broker/endpoints",
     .env = "CW_WORKER_BROKER_ENDPOINTS",
     .type = CW_CONFIG_STRING,
     .default_value = "tcp://127.0.0.1:5570",
     .offset = offsetof (cw_worker_config_t, brokers),
     .help = "broker endpoints, comma-separated (one DEALER each)"},
    {.path = "broker/public_key",
     .env = "CW_WORKER_BROKER_PUBLIC_KEY",
     .type = CW_CONFIG_STRING,
     .default_value = NULL,
     .offset = offsetof (cw_worker_config_t, broker_public_key),
     .help = "the brokers' CURVE public key (Z85, 40 characters)"},
    {.path = "security/certificate_file",
     .env = "CW_WORKER_SECURITY_CERTIFICATE_FILE",
     .type = CW_CONFIG_SECRET_FILE,
     .default_value = NULL,
     .offset = offsetof (cw_worker_config_t, certificate),
     .help = "the worker's secret certificate file (mode 0600, role worker)"},
    {.path = "worker/flows",
     .env = "CW_WORKER_FLOWS",
     .type = CW_CONFIG_STRING,
     .default_value = CW_FLOW_HTTP_GENERIC,
     .offset = offsetof (cw_worker_config_t, flows),
     .help = "flows served, comma-separated (http.generic, noop)"},
    {.path = "worker/name",
     .env = "CW_WORKER_NAME",
     .type = CW_CONFIG_STRING,
     .default_value = "",
     .offset = offsetof (cw_worker_config_t, name),
     .help = "informational name sent in READY (empty: host/pid)"},
    {.path = "worker/inflight",
     .env = "CW_WORKER_INFLIGHT",
     .type = CW_CONFIG_INT,
     .default_value = "64",
     .min = 1,
     .max = 4096,
     .offset = offsetof (cw_worker_config_t, inflight),
     .help = "calls in flight at most (credit, split over the brokers)"},
    {.path = "worker/heartbeat",
     .env = "CW_WORKER_HEARTBEAT",
     .type = CW_CONFIG_DURATION,
     .default_value = "1s",
     .min = 10,
     .max = 60000,
     .offset = offsetof (cw_worker_config_t, heartbeat_msec),
     .help = "heartbeat interval (must equal the broker's)"},
    {.path = "worker/liveness",
     .env = "CW_WORKER_LIVENESS",
     .type = CW_CONFIG_INT,
     .default_value = "3",
     .min = 2,
     .max = 100,
     .offset = offsetof (cw_worker_config_t, liveness),
     .help = "silent heartbeat intervals before a broker counts as lost"},
    {.path = "worker/reconnect",
     .env = "CW_WORKER_RECONNECT",
     .type = CW_CONFIG_DURATION,
     .default_value = "1s",
     .min = 10,
     .max = CW_WORKER_RECONNECT_MAX,
     .offset = offsetof (cw_worker_config_t, reconnect_msec),
     .help = "first reconnect delay; doubles up to 30s"},
    {.path = "worker/shutdown_timeout",
     .env = "CW_WORKER_SHUTDOWN_TIMEOUT",
     .type = CW_CONFIG_DURATION,
     .default_value = "10s",
     .min = 0,
     .max = 3600000,
     .offset = offsetof (cw_worker_config_t, shutdown_timeout_msec),
     .help = "on SIGTERM, time to finish calls in flight"},
    {.path = "target/name",
     .env = "CW_WORKER_TARGET_NAME",
     .type = CW_CONFIG_STRING,
     .default_value = "erp",
     .offset = offsetof (cw_worker_config_t, target_name),
     .help = "the target served (JOB \"target\")"},
    {.path = "target/base_url",
     .env = "CW_WORKER_TARGET_BASE_URL",
     .type = CW_CONFIG_STRING,
     .default_value = NULL,
     .offset = offsetof (cw_worker_config_t, target_base_url),
     .help = "base URL of every call (http[s]://host[:port][/prefix])"},
    {.path = "target/credentials_file",
     .env = "CW_WORKER_TARGET_CREDENTIALS_FILE",
     .type = CW_CONFIG_SECRET_FILE,
     .default_value = NULL,
     .offset = offsetof (cw_worker_config_t, target_credentials),
     .help = "file holding the target's API token (mode 0600)"},
    {.path = "target/auth",
     .env = "CW_WORKER_TARGET_AUTH",
     .type = CW_CONFIG_ENUM,
     .default_value = "bearer",
     .choices = s_auth_choices,
     .offset = offsetof (cw_worker_config_t, target_auth),
     .help = "how the credential is sent: bearer or api_key (X-Api-Key)"},
    {.path = "target/connect_timeout",
     .env = "CW_WORKER_TARGET_CONNECT_TIMEOUT",
     .type = CW_CONFIG_DURATION,
     .default_value = "2s",
     .min = 1,
     .max = 600000,
     .offset = offsetof (cw_worker_config_t, connect_timeout_msec),
     .help = "connect timeout per call"},
    {.path = "target/timeout",
     .env = "CW_WORKER_TARGET_TIMEOUT",
     .type = CW_CONFIG_DURATION,
     .default_value = "10s",
     .min = 1,
     .max = 600000,
     .offset = offsetof (cw_worker_config_t, timeout_msec),
     .help = "whole-call timeout (capped by the JOB's deadline_ms)"},
    {.path = "log/level",
     .env = "CW_WORKER_LOG_LEVEL",
     .type = CW_CONFIG_LOG_LEVEL,
     .default_value = "info",
     .offset = offsetof (cw_worker_config_t, log_level),
     .help = "lowest level logged"},
    {.path = NULL}};

typedef enum {
    S_CONNECTED,  //  Socket open, READY sent
    S_WAITING     //  Socket closed, reconnect at reconnect_at
} s_state_t;

//  One broker
typedef struct {
    char *endpoint;        //  tcp://host:port
    s_state_t state;       //  See above
    zsock_t *sock;         //  DEALER while CONNECTED
    int64_t credit;        //  Jobs the broker may still send
    int64_t expires_at;    //  Lost when nothing arrives before this
    int64_t heartbeat_at;  //  Send HEARTBEAT if nothing sent by this
    int64_t reconnect_at;  //  WAITING: when to connect again
    int64_t backoff_msec;  //  Next reconnect delay
    cw_msg_t *results;     //  RESULT being batched this turn, or NULL
    size_t results_bytes;  //  Its estimated size
    bool ready_unseen;     //  READY sent, broker not heard from since
} s_session_t;

//  One job or call in flight (the runner's tag)
typedef struct {
    s_session_t *session;  //  Where it came from, borrowed
    bool is_call;          //  CALL (answered by REPLY), else JOB
    int64_t job_id;        //  As in JOB (0 for a call)
    int64_t attempt;       //  As in JOB (0 for a call)
    int64_t call_id;       //  As in CALL (0 for a job)
    char *flow;            //  As in JOB or CALL
    char *correlation_id;  //  From the envelope
    int64_t started_usec;  //  Wall clock when it started, usec
} s_job_t;

struct _cw_worker_t {
    const cw_worker_config_t *config;  //  Borrowed
    zcert_t *cert;                     //  The worker's certificate
    char *credential;                  //  The target's secret
    cw_flow_target_t target;           //  Where calls go
    cw_flow_t *flows;                  //  Registry; the served flows
    cw_runner_t *runner;               //  curl multi
    s_session_t *sessions;             //  One per broker
    size_t sessions_count;
    zlistx_t *jobs;                  //  s_job_t in flight, owned
    size_t calls;                    //  Calls among them
    char name[CW_MSG_NAME_MAX + 1];  //  READY name
    bool stopping;                   //  SIGTERM seen: no new jobs
    int64_t stop_deadline;           //  When stopping ends
};

const cw_config_entry_t *
cw_worker_schema (void)
{
    return s_schema;
}

static void
s_job_destroy (s_job_t **self_p)
{
    s_job_t *self = *self_p;
    if (self) {
        free (self->flow);
        free (self->correlation_id);
        free (self);
        *self_p = NULL;
    }
}

static void
s_job_destroy_item (void **item)
{
    s_job_destroy ((s_job_t **) item);
}

//  Splits text at commas into trimmed, non-empty words (zlistx of owned
//  strings). Returns NULL if any word is empty.
static zlistx_t *
s_split (const char *text)
{
    zlistx_t *words = zlistx_new ();
    zlistx_set_destructor (words, (zlistx_destructor_fn *) zstr_free);
    const char *start = text;
    while (true) {
        const char *end = strchr (start, ',');
        size_t length = end ? (size_t) (end - start) : strlen (start);
        while (length && (*start == ' ' || *start == '\t')) {
            start++;
            length--;
        }
        while (length
               && (start[length - 1] == ' ' || start[length - 1] == '\t'))
            length--;
        if (length == 0) {
            zlistx_destroy (&words);
            return NULL;
        }
        char *word = (char *) zmalloc (length + 1);
        memcpy (word, start, length);
        zlistx_add_end (words, word);
        if (!end)
            break;
        start = end + 1;
    }
    return words;
}

cw_worker_t *
cw_worker_new (const cw_worker_config_t *config, char *error, size_t size)
{
    assert (config);
    assert (error);
    cw_worker_t *self = (cw_worker_t *) zmalloc (sizeof (cw_worker_t));
    self->config = config;
    self->jobs = zlistx_new ();
    zlistx_set_destructor (self->jobs, s_job_destroy_item);
    self->flows = cw_flow_new ();
    char reason[512];

    if (strlen (config->broker_public_key) != CW_CURVE_KEY_TXT) {
        snprintf (error, size,
                  "config key \"broker/public_key\": must be a Z85 key of %d "
                  "characters",
                  CW_CURVE_KEY_TXT);
        goto failed;
    }
    //  Announced in READY: a name the protocol carries (PROTOCOL.md 4.1)
    if (cw_msg_name_check (config->target_name, reason, sizeof (reason))) {
        snprintf (error, size, "config key \"target/name\": %s", reason);
        goto failed;
    }
    //  Sent in READY as it is: cut or not UTF-8, READY would not encode
    size_t name_length = strlen (config->name);
    if (name_length > CW_MSG_NAME_MAX
        || !cw_envelope_utf8_valid (config->name, name_length)) {
        snprintf (error, size,
                  "config key \"worker/name\": must be at most %d bytes of "
                  "UTF-8",
                  CW_MSG_NAME_MAX);
        goto failed;
    }
    uint8_t key[32];
    if (!zmq_z85_decode (key, config->broker_public_key)) {
        snprintf (error, size,
                  "config key \"broker/public_key\": not a Z85 key");
        goto failed;
    }
    self->cert = cw_curve_cert_load_secret (config->certificate, reason,
                                            sizeof (reason));
    if (!self->cert) {
        snprintf (error, size, "config key \"security/certificate_file\": %s",
                  reason);
        goto failed;
    }
    self->credential =
        cw_secret_load (config->target_credentials, reason, sizeof (reason));
    if (!self->credential) {
        snprintf (error, size, "config key \"target/credentials_file\": %s",
                  reason);
        goto failed;
    }
    //  It goes into a header line: a CR or LF would end the header there
    for (const char *at = self->credential; *at; at++)
        if ((unsigned char) *at < 0x20 || *at == 0x7f) {
            snprintf (error, size,
                      "config key \"target/credentials_file\": the "
                      "credential holds a control character (a line "
                      "break?) at byte %zu; one line, no trailing blank "
                      "lines",
                      (size_t) (at - self->credential));
            goto failed;
        }
    const char *base = config->target_base_url;
    size_t base_length = strlen (base);
    if (!(strncmp (base, "http://", 7) == 0
          || strncmp (base, "https://", 8) == 0)
        || base_length < 9 || base[base_length - 1] == '/'
        || strpbrk (base, " ?#{}")) {
        snprintf (error, size,
                  "config key \"target/base_url\": \"%s\" must be an "
                  "http:// or https:// URL without a trailing \"/\", query "
                  "or fragment",
                  base);
        goto failed;
    }
    self->target.name = config->target_name;
    self->target.base_url = base;
    self->target.credential = self->credential;
    self->target.auth = (cw_flow_auth_t) config->target_auth;
    self->target.connect_timeout_msec = config->connect_timeout_msec;
    self->target.timeout_msec = config->timeout_msec;

    //  Flows: each must be one the worker knows
    zlistx_t *flows = s_split (config->flows);
    if (!flows) {
        snprintf (error, size, "config key \"worker/flows\": empty flow name");
        goto failed;
    }
    for (const char *flow = (const char *) zlistx_first (flows); flow;
         flow = (const char *) zlistx_next (flows)) {
        const cw_flow_handler_t *handler =
            streq (flow, CW_FLOW_HTTP_GENERIC) ? cw_flow_http_generic ()
            : streq (flow, CW_FLOW_NOOP)       ? cw_flow_noop ()
                                               : NULL;
        if (!handler) {
            snprintf (error, size,
                      "config key \"worker/flows\": unknown flow \"%s\" "
                      "(known: " CW_FLOW_HTTP_GENERIC ", " CW_FLOW_NOOP ")",
                      flow);
            zlistx_destroy (&flows);
            goto failed;
        }
        if (cw_flow_register (self->flows, flow, handler, reason,
                              sizeof (reason))) {
            snprintf (error, size, "config key \"worker/flows\": %s", reason);
            zlistx_destroy (&flows);
            goto failed;
        }
    }
    zlistx_destroy (&flows);

    zlistx_t *brokers = s_split (config->brokers);
    if (!brokers || zlistx_size (brokers) > CW_WORKER_BROKERS_MAX) {
        snprintf (error, size,
                  "config key \"broker/endpoints\": give 1 to %d endpoints, "
                  "comma-separated",
                  CW_WORKER_BROKERS_MAX);
        zlistx_destroy (&brokers);
        goto failed;
    }
    //  Each broker gets a credit of at least 1: more brokers than
    //  inflight would let in more jobs than inflight (and the runner)
    if ((int64_t) zlistx_size (brokers) > config->inflight) {
        snprintf (error, size,
                  "config key \"worker/inflight\": %" PRId64
                  " is less than the %zu brokers (each needs a credit of 1)",
                  config->inflight, zlistx_size (brokers));
        zlistx_destroy (&brokers);
        goto failed;
    }
    self->sessions_count = zlistx_size (brokers);
    self->sessions =
        (s_session_t *) zmalloc (self->sessions_count * sizeof (s_session_t));
    size_t index = 0;
    for (const char *endpoint = (const char *) zlistx_first (brokers); endpoint;
         endpoint = (const char *) zlistx_next (brokers)) {
        if (strncmp (endpoint, "tcp://", 6) != 0
            && strncmp (endpoint, "ipc://", 6) != 0) {
            snprintf (error, size,
                      "config key \"broker/endpoints\": \"%s\" is not a "
                      "tcp:// or ipc:// endpoint",
                      endpoint);
            zlistx_destroy (&brokers);
            goto failed;
        }
        s_session_t *session = &self->sessions[index++];
        session->endpoint = strdup (endpoint);
        session->state = S_WAITING;
        session->reconnect_at = 0;
        session->backoff_msec = config->reconnect_msec;
    }
    zlistx_destroy (&brokers);

    if (*config->name)
        snprintf (self->name, sizeof (self->name), "%s", config->name);
    else {
        char host[64] = "";
        gethostname (host, sizeof (host) - 1);
        snprintf (self->name, sizeof (self->name), "%s/%d", host,
                  (int) getpid ());
    }
    //  Room for inflight jobs plus inflight calls: a call is admitted
    //  only while jobs + calls < inflight, but the broker may still use
    //  its job credit while the call runs, and a JOB is never refused
    //  for want of a slot
    self->runner = cw_runner_new (2 * (size_t) config->inflight);
    return self;
failed:
    cw_worker_destroy (&self);
    return NULL;
}

static void
s_session_close (cw_worker_t *self, s_session_t *session, int linger_msec);

void
cw_worker_destroy (cw_worker_t **self_p)
{
    assert (self_p);
    cw_worker_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->sessions_count; index++) {
        s_session_close (self, &self->sessions[index], 0);
        free (self->sessions[index].endpoint);
    }
    free (self->sessions);
    cw_runner_destroy (&self->runner);
    zlistx_destroy (&self->jobs);
    cw_flow_destroy (&self->flows);
    cw_secret_destroy (&self->credential);
    cw_curve_cert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

//  Sends msg on session's socket without blocking. Returns 0 or -1.
static int
s_send (s_session_t *session, const cw_msg_t *msg)
{
    return cw_wire_send (session->sock, msg, session->endpoint);
}

//  Sends a command and pushes the session's heartbeat time on.
static int
s_send_msg (cw_worker_t *self, s_session_t *session, cw_msg_t **msg_p)
{
    int rc = s_send (session, *msg_p);
    session->heartbeat_at = zclock_mono () + self->config->heartbeat_msec;
    cw_msg_destroy (msg_p);
    return rc;
}

//  Credit per broker: inflight split evenly, at least 1.
static int64_t
s_credit_share (cw_worker_t *self)
{
    int64_t share = self->config->inflight / (int64_t) self->sessions_count;
    if (share < 1)
        share = 1;
    if (share > CW_MSG_CREDIT_MAX)
        share = CW_MSG_CREDIT_MAX;
    return share;
}

static void
s_send_ready (cw_worker_t *self, s_session_t *session)
{
    cw_msg_t *ready = cw_msg_new (CW_MSG_WORKER, CW_MSG_READY);
    for (size_t index = 0; index < cw_flow_size (self->flows); index++)
        cw_msg_flow_add (ready, cw_flow_name (self->flows, index));
    //  Only jobs of this target (or naming none) are sent here
    cw_msg_target_add (ready, self->target.name);
    //  Credit: the share minus jobs of this session still in flight
    int64_t busy = 0;
    for (s_job_t *job = (s_job_t *) zlistx_first (self->jobs); job;
         job = (s_job_t *) zlistx_next (self->jobs))
        busy += job->session == session && !job->is_call;
    int64_t credit = s_credit_share (self) - busy;
    ready->ready.credit = credit < 1 ? 1 : credit;
    ready->ready.name = strdup (self->name);
    session->credit = ready->ready.credit;
    session->ready_unseen = true;
    s_send_msg (self, session, &ready);
    char credit_text[32];
    snprintf (credit_text, sizeof (credit_text), "%" PRId64, session->credit);
    cw_log (CW_LOG_INFO, "session_ready", "sent READY to broker", "endpoint",
            session->endpoint, "#credit", credit_text, NULL);
}

static void
s_session_open (cw_worker_t *self, s_session_t *session)
{
    assert (session->state == S_WAITING);
    session->sock = zsock_new (ZMQ_DEALER);
    assert (session->sock);
    cw_curve_client_setup (session->sock, self->cert,
                           self->config->broker_public_key);
    zsock_set_linger (session->sock, 0);
    zsock_set_rcvtimeo (session->sock, 0);
    if (zsock_connect (session->sock, "%s", session->endpoint)) {
        cw_log (CW_LOG_ERROR, "connect_failed", "could not connect to broker",
                "endpoint", session->endpoint, "reason",
                zmq_strerror (zmq_errno ()), NULL);
        zsock_destroy (&session->sock);
        session->reconnect_at = zclock_mono () + session->backoff_msec;
        return;
    }
    session->state = S_CONNECTED;
    int64_t now = zclock_mono ();
    session->expires_at =
        now + self->config->heartbeat_msec * self->config->liveness;
    s_send_ready (self, session);
}

static int
s_send_msg (cw_worker_t *self, s_session_t *session, cw_msg_t **msg_p);
static void s_reply (cw_worker_t *self,
                     const s_job_t *call,
                     cw_outcome_t outcome,
                     long http_status,
                     const char *error,
                     int64_t duration_msec,
                     json_t *response);

//  Abandons the session's jobs and calls, or all of them when session
//  is NULL (HTTP calls cancelled). Jobs are not reported (the broker
//  re-dispatches them); calls are answered REPLY transient when
//  reply_calls and their session is still open. Returns how many.
static size_t
s_abandon_jobs (cw_worker_t *self, s_session_t *session, bool reply_calls)
{
    size_t count = 0;
    for (s_job_t *job = (s_job_t *) zlistx_first (self->jobs); job;
         job = (s_job_t *) zlistx_next (self->jobs)) {
        if (session && job->session != session)
            continue;
        if (job->is_call) {
            cw_runner_cancel (self->runner, job);
            if (reply_calls && job->session->sock)
                s_reply (self, job, CW_OUTCOME_TRANSIENT, 0,
                         "worker shutting down: call abandoned", 0, NULL);
            self->calls--;
            zlistx_delete (self->jobs, zlistx_cursor (self->jobs));
            count++;
            continue;
        }
        char job_id[32], attempt[32];
        snprintf (job_id, sizeof (job_id), "%" PRId64, job->job_id);
        snprintf (attempt, sizeof (attempt), "%" PRId64, job->attempt);
        cw_log (CW_LOG_WARN, "job_abandoned", "abandoned job", "#job_id",
                job_id, "flow", job->flow, "correlation_id",
                job->correlation_id, "#attempt", attempt, NULL);
        cw_runner_cancel (self->runner, job);
        //  Moves the cursor back, so the iteration goes on
        zlistx_delete (self->jobs, zlistx_cursor (self->jobs));
        count++;
    }
    return count;
}

static void
s_session_close (cw_worker_t *self, s_session_t *session, int linger_msec)
{
    cw_msg_destroy (&session->results);
    if (session->sock) {
        zsock_set_linger (session->sock, linger_msec);
        zsock_destroy (&session->sock);
    }
    (void) self;
    session->state = S_WAITING;
    session->credit = 0;
}

//  The broker is gone (silent or DISCONNECT): abandon its jobs and
//  reconnect after the backoff.
static void
s_session_lost (cw_worker_t *self, s_session_t *session, const char *why)
{
    size_t abandoned = s_abandon_jobs (self, session, false);
    s_session_close (self, session, 0);
    int64_t delay = session->backoff_msec;
    //  Jitter: between half and all of the backoff
    delay = delay / 2
            + (int64_t) (randombytes_uniform ((uint32_t) (delay / 2 + 1)));
    session->reconnect_at = zclock_mono () + delay;
    session->backoff_msec *= 2;
    if (session->backoff_msec > CW_WORKER_RECONNECT_MAX)
        session->backoff_msec = CW_WORKER_RECONNECT_MAX;
    char abandoned_text[32], delay_text[32];
    snprintf (abandoned_text, sizeof (abandoned_text), "%zu", abandoned);
    snprintf (delay_text, sizeof (delay_text), "%" PRId64, delay);
    cw_log (CW_LOG_WARN, "broker_lost", "lost broker, will reconnect",
            "endpoint", session->endpoint, "reason", why, "#abandoned",
            abandoned_text, "#reconnect_ms", delay_text, NULL);
}

//  True if value may travel as (part of) a RESULT or REPLY "response"
//  (PROTOCOL.md 3): keys of 1 to 255 bytes, at most 16 levels. A parsed
//  body holds nothing else the wire refuses (jansson: UTF-8, no NUL,
//  int64 integers, finite reals). One value the encoder refused would
//  fail the whole message, every result of the batch with it.
static bool
s_json_carried (const json_t *value, int depth)
{
    if (!json_is_object (value) && !json_is_array (value))
        return true;
    if (depth >= CW_MSG_MAP_DEPTH_MAX)
        return false;
    if (json_is_array (value)) {
        for (size_t index = 0; index < json_array_size (value); index++)
            if (!s_json_carried (json_array_get (value, index), depth + 1))
                return false;
        return true;
    }
    const char *key;
    json_t *member;
    json_object_foreach ((json_t *) value, key, member)
    {
        size_t length = strlen (key);
        if (length == 0 || length > CW_ENVELOPE_KEY_MAX
            || !s_json_carried (member, depth + 1))
            return false;
    }
    return true;
}

//  The response to report, or NULL when it is too large or the wire
//  cannot carry it; its compact size in *size_p.
static json_t *
s_response_reported (json_t *response, size_t *size_p)
{
    *size_p = 0;
    if (!response)
        return NULL;
    char *text = json_dumps (response, JSON_COMPACT);
    *size_p = text ? strlen (text) : 0;
    free (text);
    if (*size_p > CW_WORKER_RESPONSE_MAX || !s_json_carried (response, 0))
        return NULL;
    return response;
}

//  Adds one result to the session's RESULT batch of this turn.
static void
s_result_add (cw_worker_t *self,
              s_session_t *session,
              int64_t job_id,
              int64_t attempt,
              cw_outcome_t outcome,
              long http_status,
              const char *error,
              int64_t duration_msec,
              int64_t retry_after_msec,
              json_t *response)
{
    size_t response_size;
    response = s_response_reported (response, &response_size);
    //  The response's msgpack size, at most 9/4 of its compact JSON: a
    //  real takes 9 bytes, and as little as "0.0," in JSON
    size_t estimate = RESULT_OVERHEAD + (response ? response_size * 9 / 4 : 0);
    if (session->results
        && (session->results->result.results_count == CW_MSG_RESULTS_MAX
            || session->results_bytes + estimate > RESULT_BATCH_BYTES)) {
        //  Flush the full batch first
        cw_msg_t *full = session->results;
        session->results = NULL;
        s_send_msg (self, session, &full);
    }
    if (!session->results) {
        session->results = cw_msg_new (CW_MSG_WORKER, CW_MSG_RESULT);
        session->results_bytes = 0;
    }
    cw_msg_result_t *result = cw_msg_result_add (session->results);
    result->job_id = job_id;
    result->attempt = attempt;
    cw_msg_outcome_parse (cw_outcome_name (outcome), &result->outcome);
    result->http_status =
        http_status >= 0 && http_status <= CW_MSG_HTTP_STATUS_MAX ? http_status
                                                                  : 0;
    if (error && *error)
        result->error = strndup (error, CW_MSG_TEXT_MAX);
    result->duration_ms = duration_msec;
    result->retry_after_ms = retry_after_msec;
    result->response = response ? json_incref (response) : NULL;
    session->results_bytes += estimate;
    if (!self->stopping) {
        //  One credit back per finished job
        if (session->results->result.credit < 0)
            session->results->result.credit = 0;
        session->results->result.credit++;
        session->credit++;
    }
}

static void
s_log_result (const s_job_t *job,
              cw_outcome_t outcome,
              long http_status,
              int64_t duration_msec,
              const char *error)
{
    char job_id[32], attempt[32], status[32], duration[32];
    char started[CW_LOG_TIME_SIZE];
    snprintf (job_id, sizeof (job_id), "%" PRId64, job->job_id);
    //  When the job started, to the microsecond (bench/b2)
    cw_log_time_usec (job->started_usec, started, sizeof (started));
    snprintf (attempt, sizeof (attempt), "%" PRId64, job->attempt);
    snprintf (status, sizeof (status), "%ld", http_status);
    snprintf (duration, sizeof (duration), "%" PRId64, duration_msec);
    cw_log (outcome == CW_OUTCOME_OK || outcome == CW_OUTCOME_DUPLICATE
                ? CW_LOG_INFO
                : CW_LOG_WARN,
            "job_finished", "finished job", "#job_id", job_id, "flow",
            job->flow, "correlation_id", job->correlation_id, "#attempt",
            attempt, "outcome", cw_outcome_name (outcome), "#http_status",
            status, "#duration_ms", duration, "started_at", started,
            "error", error && *error ? error : NULL, NULL);
}

//  Logs a finished call and answers it with REPLY on its session.
static void
s_reply (cw_worker_t *self,
         const s_job_t *call,
         cw_outcome_t outcome,
         long http_status,
         const char *error,
         int64_t duration_msec,
         json_t *response)
{
    char call_id[32], status[32], duration[32];
    snprintf (call_id, sizeof (call_id), "%" PRId64, call->call_id);
    snprintf (status, sizeof (status), "%ld", http_status);
    snprintf (duration, sizeof (duration), "%" PRId64, duration_msec);
    cw_log (outcome == CW_OUTCOME_OK || outcome == CW_OUTCOME_DUPLICATE
                ? CW_LOG_INFO
                : CW_LOG_WARN,
            "call_finished", "finished call", "#call_id", call_id, "flow",
            call->flow, "correlation_id", call->correlation_id, "outcome",
            cw_outcome_name (outcome), "#http_status", status,
            "#duration_ms", duration, "error", error && *error ? error : NULL,
            NULL);
    if (!call->session->sock)
        return;  //  Session gone: the broker already failed the call
    size_t response_size;
    response = s_response_reported (response, &response_size);
    cw_msg_t *reply = cw_msg_new (CW_MSG_WORKER, CW_MSG_REPLY);
    reply->reply.call_id = call->call_id;
    cw_msg_outcome_parse (cw_outcome_name (outcome), &reply->reply.outcome);
    reply->reply.http_status =
        http_status >= 0 && http_status <= CW_MSG_HTTP_STATUS_MAX ? http_status
                                                                  : 0;
    if (error && *error)
        reply->reply.error = strndup (error, CW_MSG_TEXT_MAX);
    reply->reply.duration_ms = duration_msec;
    reply->reply.response = response ? json_incref (response) : NULL;
    s_send_msg (self, call->session, &reply);
}

//  Reports a job or call that finished (or never started).
static void
s_finish (cw_worker_t *self,
          const s_job_t *job,
          cw_outcome_t outcome,
          long http_status,
          const char *error,
          int64_t duration_msec,
          int64_t retry_after_msec,
          json_t *response)
{
    if (job->is_call)
        s_reply (self, job, outcome, http_status, error, duration_msec,
                 response);
    else {
        s_log_result (job, outcome, http_status, duration_msec, error);
        s_result_add (self, job->session, job->job_id, job->attempt, outcome,
                      http_status, error, duration_msec, retry_after_msec,
                      response);
    }
}

//  Builds and starts the HTTP call of a job or call (same flows, same
//  headers, same outcome mapping; deadline_msec caps the timeout).
//  Returns 0 when it runs (job now in self->jobs) or -1 when it was
//  answered at once (job still the caller's).
static int
s_start (cw_worker_t *self,
         s_job_t *job,
         const char *target,
         int64_t deadline_msec,
         const cw_envelope_t *envelope)
{
    char reason[512] = "";
    cw_outcome_t outcome = CW_OUTCOME_REJECTED;
    struct timespec wall;
    clock_gettime (CLOCK_REALTIME, &wall);
    job->started_usec = (int64_t) wall.tv_sec * 1000000 + wall.tv_nsec / 1000;
    const cw_flow_handler_t *handler = cw_flow_lookup (self->flows, job->flow);
    cw_flow_request_t request = {0};
    char **headers = NULL;
    int rc = -1;
    if (!handler)
        snprintf (reason, sizeof (reason),
                  "flow \"%s\" is not served by this worker", job->flow);
    else if (target && !streq (target, self->target.name)) {
        outcome = CW_OUTCOME_TRANSIENT;
        snprintf (reason, sizeof (reason),
                  "target \"%s\" is not configured on this worker", target);
    }
    else if (handler->no_call)
        outcome = CW_OUTCOME_OK;  //  noop: done at once, no HTTP
    else if ((headers = cw_flow_headers (envelope, &self->target, reason,
                                         sizeof (reason)))
             && handler->build (envelope, &self->target, &request, reason,
                                sizeof (reason))
                    == 0) {
        int64_t timeout = self->target.timeout_msec;
        if (deadline_msec > 0 && deadline_msec < timeout)
            timeout = deadline_msec;
        int64_t connect = self->target.connect_timeout_msec;
        if (connect > timeout)
            connect = timeout;
        cw_runner_call_t call = {.method = request.method,
                                 .url = request.url,
                                 .body = request.body,
                                 .headers = (const char *const *) headers,
                                 .connect_timeout_msec = connect,
                                 .timeout_msec = timeout,
                                 .tag = job};
        if (cw_runner_start (self->runner, &call, reason, sizeof (reason))
            == 0) {
            zlistx_add_end (self->jobs, job);
            if (job->is_call)
                self->calls++;
            rc = 0;
        }
        else
            outcome = CW_OUTCOME_TRANSIENT;  //  Full: broker overran
    }
    cw_flow_request_reset (&request);
    cw_flow_headers_destroy (&headers);
    if (rc)
        s_finish (self, job, outcome, 0, reason, 0, -1, NULL);
    return rc;
}

//  A JOB arrived: build and start its call, or answer at once.
static void
s_handle_job (cw_worker_t *self, s_session_t *session, cw_msg_job_t *body)
{
    s_job_t *job = (s_job_t *) zmalloc (sizeof (s_job_t));
    job->session = session;
    job->job_id = body->job_id;
    job->attempt = body->attempt;
    job->flow = strdup (body->flow);
    const char *correlation = cw_envelope_correlation_id (body->envelope);
    job->correlation_id = correlation ? strdup (correlation) : NULL;
    session->credit--;
    if (self->stopping) {
        //  Not started: the broker re-dispatches it after DISCONNECT
        char job_id[32];
        snprintf (job_id, sizeof (job_id), "%" PRId64, job->job_id);
        cw_log (CW_LOG_INFO, "job_abandoned",
                "abandoned job received while stopping", "#job_id", job_id,
                "flow", job->flow, "correlation_id", job->correlation_id, NULL);
        s_job_destroy (&job);
        return;
    }
    if (s_start (self, job, body->target, body->deadline_ms, body->envelope))
        s_job_destroy (&job);
}

//  A CALL arrived: served like a JOB on a free slot of inflight (no job
//  credit used), else answered REPLY transient at once.
static void
s_handle_call (cw_worker_t *self, s_session_t *session, cw_msg_call_t *body)
{
    s_job_t *call = (s_job_t *) zmalloc (sizeof (s_job_t));
    call->session = session;
    call->is_call = true;
    call->call_id = body->call_id;
    call->flow = strdup (body->flow);
    const char *correlation = cw_envelope_correlation_id (body->envelope);
    call->correlation_id = correlation ? strdup (correlation) : NULL;
    if (self->stopping)
        s_reply (self, call, CW_OUTCOME_TRANSIENT, 0, "worker stopping", 0,
                 NULL);
    else if (zlistx_size (self->jobs) >= (size_t) self->config->inflight)
        s_reply (self, call, CW_OUTCOME_TRANSIENT, 0, "busy", 0, NULL);
    else if (s_start (self, call, NULL, body->deadline_ms, body->envelope)
             == 0)
        call = NULL;  //  Runs; now in self->jobs
    s_job_destroy (&call);
}

//  Reads every message waiting on a session's socket.
static void
s_session_read (cw_worker_t *self, s_session_t *session)
{
    //  Nothing arrived for liveness intervals (the worker was frozen, a
    //  suspended VM): the broker has forgotten this session and given its
    //  jobs away, so what waits in the socket is stale. Lost, whichever
    //  of the timer and the socket woke the loop first.
    if (session->sock && zclock_mono () >= session->expires_at) {
        s_session_lost (self, session, "no message for liveness intervals");
        return;
    }
    while (session->sock) {
        zmsg_t *msg = zmsg_recv (session->sock);
        if (!msg)
            break;
        session->expires_at =
            zclock_mono ()
            + self->config->heartbeat_msec * self->config->liveness;
        char reason[CW_MSG_REASON_SIZE];
        cw_msg_error_t error;
        cw_msg_t *decoded =
            cw_wire_decode (msg, 0, &error, reason, sizeof (reason));
        zmsg_destroy (&msg);
        if (!decoded || decoded->protocol != CW_MSG_WORKER
            || cw_msg_direction (decoded->command) == CW_MSG_TO_BROKER) {
            cw_log (CW_LOG_WARN, "malformed_message",
                    "dropped malformed message from broker", "endpoint",
                    session->endpoint, "reason",
                    decoded ? "not a broker-to-worker command" : reason, NULL);
            cw_msg_destroy (&decoded);
            continue;
        }
        //  The broker sends these only on a session it knows: it has
        //  seen our READY, and the next loss starts the reconnect delay
        //  afresh. A DISCONNECT or ERROR does not: a broker that turns
        //  every session away is reconnected to ever more slowly.
        if (decoded->command == CW_MSG_JOB
            || decoded->command == CW_MSG_HEARTBEAT
            || decoded->command == CW_MSG_CALL) {
            session->ready_unseen = false;
            session->backoff_msec = self->config->reconnect_msec;
        }
        switch (decoded->command) {
            case CW_MSG_JOB:
                s_handle_job (self, session, &decoded->job);
                break;
            case CW_MSG_HEARTBEAT:
                break;
            case CW_MSG_DISCONNECT:
                cw_log (CW_LOG_INFO, "broker_disconnect",
                        "broker ended the session", "endpoint",
                        session->endpoint, "reason", decoded->disconnect.reason,
                        NULL);
                s_session_lost (self, session, "broker sent DISCONNECT");
                break;
            case CW_MSG_ERROR:
                cw_log (CW_LOG_WARN, "broker_error", "broker refused a command",
                        "endpoint", session->endpoint, "code",
                        decoded->error.code, "detail", decoded->error.message,
                        NULL);
                //  One READY for all the ERRORs of messages sent before
                //  it: each READY would replace the credit again
                if (streq (decoded->error.code, "unknown_session")
                    && !self->stopping && !session->ready_unseen)
                    s_send_ready (self, session);
                break;
            case CW_MSG_CALL:
                s_handle_call (self, session, &decoded->call);
                break;
            default:
                break;
        }
        cw_msg_destroy (&decoded);
    }
}

//  Takes finished calls from the runner into per-session batches, then
//  sends each session's batch.
static void
s_collect_results (cw_worker_t *self)
{
    cw_runner_result_t *result;
    while ((result = cw_runner_next (self->runner))) {
        s_job_t *job = (s_job_t *) result->tag;
        s_finish (self, job, result->outcome, result->http_status,
                  result->error, result->duration_msec,
                  result->retry_after_msec, result->response);
        if (job->is_call)
            self->calls--;
        void *handle = zlistx_find (self->jobs, job);
        assert (handle);
        zlistx_delete (self->jobs, handle);
        cw_runner_result_destroy (&result);
    }
    for (size_t index = 0; index < self->sessions_count; index++) {
        s_session_t *session = &self->sessions[index];
        if (session->results) {
            if (session->results->result.credit == 0)
                session->results->result.credit = -1;
            s_send_msg (self, session, &session->results);
        }
    }
}

//  Heartbeats, liveness and reconnects.
static void
s_timers (cw_worker_t *self)
{
    int64_t now = zclock_mono ();
    for (size_t index = 0; index < self->sessions_count; index++) {
        s_session_t *session = &self->sessions[index];
        if (session->state == S_WAITING) {
            if (!self->stopping && now >= session->reconnect_at)
                s_session_open (self, session);
            continue;
        }
        if (now >= session->expires_at) {
            s_session_lost (self, session, "no message for liveness intervals");
            continue;
        }
        if (now >= session->heartbeat_at) {
            cw_msg_t *heartbeat = cw_msg_new (CW_MSG_WORKER, CW_MSG_HEARTBEAT);
            s_send_msg (self, session, &heartbeat);
        }
    }
}

//  Milliseconds until the next timer of any kind.
static long
s_next_timeout (cw_worker_t *self)
{
    int64_t now = zclock_mono ();
    int64_t next = now + POLL_MAX_MSEC;
    for (size_t index = 0; index < self->sessions_count; index++) {
        s_session_t *session = &self->sessions[index];
        if (session->state == S_WAITING) {
            if (!self->stopping && session->reconnect_at < next)
                next = session->reconnect_at;
        }
        else {
            if (session->expires_at < next)
                next = session->expires_at;
            if (session->heartbeat_at < next)
                next = session->heartbeat_at;
        }
    }
    if (self->stopping && self->stop_deadline < next)
        next = self->stop_deadline;
    long timeout = next > now ? (long) (next - now) : 0;
    long runner = cw_runner_timeout (self->runner);
    if (runner >= 0 && runner < timeout)
        timeout = runner;
    return timeout;
}

static void
s_begin_stop (cw_worker_t *self)
{
    self->stopping = true;
    self->stop_deadline = zclock_mono () + self->config->shutdown_timeout_msec;
    char inflight[32];
    char calls[32];
    snprintf (inflight, sizeof (inflight), "%zu", zlistx_size (self->jobs));
    snprintf (calls, sizeof (calls), "%zu", self->calls);
    cw_log (CW_LOG_INFO, "stopping",
            "stopping: no new jobs, finishing calls in flight", "#inflight",
            inflight, "#calls", calls, NULL);
}

int
cw_worker_run (cw_worker_t *self, int signal_fd)
{
    assert (self);
    int signals = 0;
    bool failed = false;
    size_t items_size = 0;
    zmq_pollitem_t *items = NULL;
    while (true) {
        if (self->stopping
            && (zlistx_size (self->jobs) == 0
                || zclock_mono () >= self->stop_deadline))
            break;
        size_t needed =
            1 + self->sessions_count + cw_runner_socket_count (self->runner);
        if (needed > items_size) {
            items_size = needed * 2;
            items = (zmq_pollitem_t *) realloc (items,
                                                items_size * sizeof (*items));
            assert (items);
        }
        size_t count = 0;
        size_t signal_item = SIZE_MAX;
        if (signal_fd >= 0) {
            signal_item = count;
            items[count++] = (zmq_pollitem_t){NULL, signal_fd, ZMQ_POLLIN, 0};
        }
        size_t first_session = count;
        for (size_t index = 0; index < self->sessions_count; index++) {
            s_session_t *session = &self->sessions[index];
            void *handle = session->sock ? zsock_resolve (session->sock) : NULL;
            //  A closed session polls nothing (fd -1 is ignored)
            items[count++] =
                (zmq_pollitem_t){handle, -1, handle ? ZMQ_POLLIN : 0, 0};
        }
        size_t first_curl = count;
        count += cw_runner_pollitems (self->runner, items + count,
                                      items_size - count);
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
            if (signals >= 2 || (signals == 1 && self->stopping)) {
                cw_log (CW_LOG_WARN, "exit_now",
                        "second signal: exiting at once", NULL);
                free (items);
                return 1;
            }
            if (!self->stopping)
                s_begin_stop (self);
        }
        cw_runner_action (self->runner, items + first_curl,
                          rc > 0 ? count - first_curl : 0);
        for (size_t index = 0; index < self->sessions_count; index++)
            if (rc > 0 && (items[first_session + index].revents & ZMQ_POLLIN))
                s_session_read (self, &self->sessions[index]);
        s_collect_results (self);
        s_timers (self);
    }
    free (items);
    //  Abandon what did not finish in time, then say goodbye
    s_abandon_jobs (self, NULL, true);
    for (size_t index = 0; index < self->sessions_count; index++) {
        s_session_t *session = &self->sessions[index];
        if (session->state != S_CONNECTED)
            continue;
        cw_msg_t *disconnect = cw_msg_new (CW_MSG_WORKER, CW_MSG_DISCONNECT);
        disconnect->disconnect.reason = strdup ("worker shutting down");
        s_send_msg (self, session, &disconnect);
        s_session_close (self, session, DISCONNECT_LINGER_MSEC);
    }
    cw_log (CW_LOG_INFO, "stopped", "worker stopped", NULL);
    return failed ? 1 : 0;      //  A runtime failure is not a clean exit
}
