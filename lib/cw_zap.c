/*  =========================================================================
    cw_zap - ZAP handler over a certificate directory; handshake monitor
    =========================================================================
*/
#include "cw_zap.h"
#include "cw_curve.h"
#include "cw_log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define CW_ZAP_VERSION "1.0"        //  RFC 27 version frame
#define CW_ZAP_COUNTERS_MAX 8       //  Counters per actor
#define CW_ZAP_NAME_MAX 64          //  Longest counter name, bytes
#define CW_ZAP_LIMITS_MAX 10000     //  Peers remembered by the rate limit
#define CW_ZAP_FLUSH_MSEC 200       //  Wait for a disconnect, then log
#define CW_ZAP_ERROR_MAX 512        //  Error message buffer, bytes

//  -------------------------------------------------------------------------
//  Counters with one pending WAIT, shared by both actors

typedef struct {
    const char *const *names;       //  Counter names, NULL-terminated
    int64_t values[CW_ZAP_COUNTERS_MAX];    //  Counter values
    bool waiting;                   //  A WAIT is pending
    int wait_index;                 //  Counter the WAIT watches
    int64_t wait_value;             //  Value the WAIT needs
    int64_t wait_deadline;          //  When the WAIT gives up, msec
} s_stats_t;

static int
s_stats_index (s_stats_t *self, const char *name)
{
    for (int index = 0; self->names[index]; index++)
        if (streq (self->names[index], name))
            return index;
    return -1;
}

static void
s_stats_add (s_stats_t *self, const char *name)
{
    int index = s_stats_index (self, name);
    assert (index >= 0);
    self->values[index]++;
}

static void
s_stats_send (s_stats_t *self, zsock_t *pipe)
{
    zmsg_t *reply = zmsg_new ();
    for (int index = 0; self->names[index]; index++) {
        zmsg_addstr (reply, self->names[index]);
        zmsg_addstrf (reply, "%" PRId64, self->values[index]);
    }
    zmsg_send (&reply, pipe);
}

//  Replies to a pending WAIT when it is met or has timed out.
static void
s_stats_check (s_stats_t *self, zsock_t *pipe)
{
    if (!self->waiting)
        return;
    if (self->values[self->wait_index] >= self->wait_value) {
        zstr_send (pipe, "1");
        self->waiting = false;
    }
    else
    if (zclock_mono () >= self->wait_deadline) {
        zstr_send (pipe, "0");
        self->waiting = false;
    }
}

//  WAIT name value msec (frames after the command).
static void
s_stats_wait (s_stats_t *self, zsock_t *pipe, zmsg_t *request)
{
    char *name = zmsg_popstr (request);
    char *value = zmsg_popstr (request);
    char *msec = zmsg_popstr (request);
    int index = name ? s_stats_index (self, name) : -1;
    if (index < 0 || !value || !msec || self->waiting)
        zstr_send (pipe, "0");
    else {
        self->waiting = true;
        self->wait_index = index;
        self->wait_value = strtoll (value, NULL, 10);
        self->wait_deadline = zclock_mono () + strtoll (msec, NULL, 10);
        s_stats_check (self, pipe);
    }
    zstr_free (&name);
    zstr_free (&value);
    zstr_free (&msec);
}

//  Poll timeout: until the pending WAIT's deadline, or forever (-1).
static int
s_stats_timeout (s_stats_t *self)
{
    if (!self->waiting)
        return -1;
    int64_t left = self->wait_deadline - zclock_mono ();
    return left > 0 ? (int) left : 0;
}

//  -------------------------------------------------------------------------
//  Rate limit of log lines per peer address

typedef struct {
    int64_t logged_at;              //  When the last line was written
    int64_t held_back;              //  Lines not written since then
} s_limit_t;

static void
s_limit_destroy (s_limit_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

//  Returns true if a line about peer may be written now; then sets
//  *held_back to the lines held back since the last one.
static bool
s_limit_allow (zhashx_t *limits, const char *peer, int64_t *held_back)
{
    int64_t now = zclock_mono ();
    s_limit_t *limit = (s_limit_t *) zhashx_lookup (limits, peer);
    if (!limit) {
        if (zhashx_size (limits) >= CW_ZAP_LIMITS_MAX)
            zhashx_purge (limits);
        limit = (s_limit_t *) zmalloc (sizeof (s_limit_t));
        zhashx_insert (limits, peer, limit);
    }
    else
    if (now - limit->logged_at < CW_ZAP_LOG_INTERVAL) {
        limit->held_back++;
        return false;
    }
    *held_back = limit->held_back;
    limit->held_back = 0;
    limit->logged_at = now;
    return true;
}

static zhashx_t *
s_limits_new (void)
{
    zhashx_t *limits = zhashx_new ();
    zhashx_set_destructor (limits, (zhashx_destructor_fn *) s_limit_destroy);
    return limits;
}

//  -------------------------------------------------------------------------
//  The ZAP handler

static const char *const s_zap_counters[] = {
    "keys", "accepted", "refused_unknown_key", "refused_mechanism",
    "refused_domain", "malformed", NULL};

typedef struct {
    char *role;                     //  Role metadata
    char *name;                     //  Name metadata
} s_key_t;

static void
s_key_destroy (s_key_t **self_p)
{
    if (*self_p) {
        free ((*self_p)->role);
        free ((*self_p)->name);
        free (*self_p);
        *self_p = NULL;
    }
}

typedef struct {
    zsock_t *pipe;                  //  Actor command pipe
    zsock_t *handler;               //  REP on CW_ZAP_ENDPOINT, or NULL
    char *bind_error;               //  Why handler is NULL
    char *dir;                      //  Certificate directory
    zhashx_t *keys;                 //  s_key_t by Z85 public key
    zhashx_t *limits;               //  s_limit_t by peer address
    s_stats_t stats;                //  Counters
} s_zap_t;

static bool
s_ends_with (const char *text, const char *suffix)
{
    size_t length = strlen (text);
    size_t suffix_length = strlen (suffix);
    return length >= suffix_length
        && streq (text + length - suffix_length, suffix);
}

//  Reads every *.pub file of the directory into a new key table. Returns
//  the number of keys, or -1 with a message.
static int
s_zap_load (s_zap_t *self, char *error, size_t size)
{
    DIR *dir = opendir (self->dir);
    if (!dir) {
        snprintf (error, size, "could not open certificate directory "
                               "\"%s\": %s", self->dir, strerror (errno));
        return -1;
    }
    zhashx_t *keys = zhashx_new ();
    zhashx_set_destructor (keys, (zhashx_destructor_fn *) s_key_destroy);
    //  Keys listed twice with different roles: refused (which role wins
    //  must not depend on the directory's order)
    zhashx_t *conflicts = zhashx_new ();
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        const char *file = entry->d_name;
        if (*file == '.')
            continue;
        char *path = zsys_sprintf ("%s/%s", self->dir, file);
        if (s_ends_with (file, ".secret"))
            cw_log (CW_LOG_WARN, "cert_secret_in_public_dir",
                    "ignored a secret certificate in the directory of "
                    "allowed keys (move it away)", "path", path, NULL);
        if (!s_ends_with (file, ".pub")) {
            zstr_free (&path);
            continue;
        }
        char problem[CW_ZAP_ERROR_MAX];
        zcert_t *cert = cw_curve_cert_load_public (path, problem,
                                                   sizeof (problem));
        const char *role = cert ? zcert_meta (cert, "role") : NULL;
        if (!cert)
            cw_log (CW_LOG_WARN, "cert_ignored", problem, "path", path, NULL);
        else
        if (!cw_curve_role_valid (role))
            cw_log (CW_LOG_WARN, "cert_ignored",
                    "ignored certificate: metadata role is missing or "
                    "invalid", "path", path, "role", role, NULL);
        else {
            s_key_t *key = (s_key_t *) zmalloc (sizeof (s_key_t));
            key->role = strdup (role);
            const char *name = zcert_meta (cert, "name");
            key->name = strdup (name ? name : "");
            assert (key->role && key->name);
            if (zhashx_insert (keys, zcert_public_txt (cert), key) != 0) {
                s_key_t *listed = (s_key_t *) zhashx_lookup (
                    keys, zcert_public_txt (cert));
                if (!streq (listed->role, key->role)) {
                    cw_log (CW_LOG_ERROR, "cert_conflict",
                            "key listed with two roles: refused until one "
                            "file goes", "path", path, "role", key->role,
                            "other_role", listed->role, NULL);
                    zhashx_insert (conflicts, zcert_public_txt (cert), "");
                }
                else
                    cw_log (CW_LOG_WARN, "cert_duplicate",
                            "ignored certificate: key already listed", "path",
                            path, NULL);
                s_key_destroy (&key);
            }
        }
        zcert_destroy (&cert);
        zstr_free (&path);
    }
    closedir (dir);
    for (void *item = zhashx_first (conflicts); item;
         item = zhashx_next (conflicts))
        zhashx_delete (keys, zhashx_cursor (conflicts));
    zhashx_destroy (&conflicts);
    zhashx_destroy (&self->keys);
    self->keys = keys;
    int count = (int) zhashx_size (keys);
    self->stats.values[s_stats_index (&self->stats, "keys")] = count;
    return count;
}

//  Appends one ZMTP property (name, value) to a metadata buffer.
static void
s_property_add (zchunk_t *metadata, const char *name, const char *value)
{
    size_t name_length = strlen (name);
    size_t value_length = strlen (value);
    assert (name_length < 256);
    byte header = (byte) name_length;
    zchunk_extend (metadata, &header, 1);
    zchunk_extend (metadata, name, name_length);
    byte length[4] = {(byte) (value_length >> 24), (byte) (value_length >> 16),
                      (byte) (value_length >> 8), (byte) value_length};
    zchunk_extend (metadata, length, 4);
    zchunk_extend (metadata, value, value_length);
}

static void
s_zap_reply (s_zap_t *self, const char *request_id, const char *status,
             const char *text, const char *user_id, zchunk_t *metadata)
{
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, CW_ZAP_VERSION);
    zmsg_addstr (reply, request_id ? request_id : "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, user_id ? user_id : "");
    if (metadata)
        zmsg_addmem (reply, zchunk_data (metadata), zchunk_size (metadata));
    else
        zmsg_addmem (reply, NULL, 0);
    zmsg_send (&reply, self->handler);
}

static void
s_zap_refuse_log (s_zap_t *self, const char *msg, const char *address,
                  const char *mechanism, const char *key, const char *domain)
{
    int64_t held_back = 0;
    if (!s_limit_allow (self->limits, address, &held_back))
        return;
    char held[32];
    snprintf (held, sizeof (held), "%" PRId64, held_back);
    cw_log (CW_LOG_WARN, "curve_refused", msg, "peer_address", address,
            "public_key", key, "mechanism", mechanism, "domain", domain,
            "#held_back", held_back ? held : NULL, NULL);
}

static void
s_zap_handle (s_zap_t *self)
{
    zmsg_t *request = zmsg_recv (self->handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    char *request_id = zmsg_popstr (request);
    char *domain = zmsg_popstr (request);
    char *address = zmsg_popstr (request);
    char *identity = zmsg_popstr (request);
    char *mechanism = zmsg_popstr (request);
    if (!mechanism || !streq (version, CW_ZAP_VERSION)) {
        s_stats_add (&self->stats, "malformed");
        cw_log (CW_LOG_ERROR, "zap_malformed", "malformed ZAP request",
                "version", version, NULL);
        s_zap_reply (self, request_id, "500", "malformed request", NULL,
                     NULL);
    }
    else
    if (!streq (domain, CW_CURVE_ZAP_DOMAIN)) {
        //  ZAP serves every socket of the process: only sockets set up
        //  by cw_curve_server_setup are ours to let in
        s_stats_add (&self->stats, "refused_domain");
        s_zap_refuse_log (self, "refused client: the socket's ZAP domain "
                                "is not " CW_CURVE_ZAP_DOMAIN,
                          address, mechanism, NULL, domain);
        s_zap_reply (self, request_id, "400", "unknown domain", NULL, NULL);
    }
    else
    if (streq (mechanism, "CURVE")) {
        zframe_t *credential = zmsg_pop (request);
        char key[CW_CURVE_KEY_TXT + 1] = "";
        if (credential && zframe_size (credential) == 32)
            zmq_z85_encode (key, zframe_data (credential), 32);
        zframe_destroy (&credential);
        s_key_t *known = *key ? (s_key_t *) zhashx_lookup (self->keys, key)
                              : NULL;
        if (known) {
            s_stats_add (&self->stats, "accepted");
            zchunk_t *metadata = zchunk_new (NULL, 0);
            s_property_add (metadata, "role", known->role);
            s_property_add (metadata, "name", known->name);
            s_zap_reply (self, request_id, "200", "OK", key, metadata);
            zchunk_destroy (&metadata);
            cw_log (CW_LOG_DEBUG, "curve_accepted", "accepted CURVE client",
                    "peer_address", address, "public_key", key, "role",
                    known->role, "name", known->name, NULL);
        }
        else {
            s_stats_add (&self->stats, "refused_unknown_key");
            s_zap_refuse_log (self, "refused CURVE client: unknown key",
                              address, mechanism, key, domain);
            s_zap_reply (self, request_id, "400", "unknown key", NULL, NULL);
        }
    }
    else {
        s_stats_add (&self->stats, "refused_mechanism");
        s_zap_refuse_log (self, "refused client: mechanism is not CURVE",
                          address, mechanism, NULL, domain);
        s_zap_reply (self, request_id, "400", "CURVE required", NULL, NULL);
    }
    zstr_free (&version);
    zstr_free (&request_id);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&identity);
    zstr_free (&mechanism);
    zmsg_destroy (&request);
}

//  Returns true when the actor must end.
static bool
s_zap_command (s_zap_t *self)
{
    zmsg_t *request = zmsg_recv (self->pipe);
    if (!request)
        return true;
    char *command = zmsg_popstr (request);
    bool terminated = !command || streq (command, "$TERM");
    if (terminated)
        ;
    else
    if (streq (command, "RELOAD")) {
        char error[CW_ZAP_ERROR_MAX];
        int count = -1;
        if (!self->handler)
            snprintf (error, sizeof (error), "%s", self->bind_error);
        else
            count = s_zap_load (self, error, sizeof (error));
        if (count < 0)
            zsock_send (self->pipe, "ss", "-1", error);
        else {
            char text[32];
            snprintf (text, sizeof (text), "%d", count);
            zsock_send (self->pipe, "ss", "0", text);
            cw_log (CW_LOG_INFO, "certs_loaded", "loaded allowed keys",
                    "dir", self->dir, "#keys", text, NULL);
        }
    }
    else
    if (streq (command, "STATS"))
        s_stats_send (&self->stats, self->pipe);
    else
    if (streq (command, "WAIT"))
        s_stats_wait (&self->stats, self->pipe, request);
    else
        cw_log (CW_LOG_ERROR, "zap_bad_command", "invalid ZAP actor command",
                "command", command, NULL);
    zstr_free (&command);
    zmsg_destroy (&request);
    return terminated;
}

void
cw_zap_actor (zsock_t *pipe, void *args)
{
    assert (pipe);
    assert (args);
    s_zap_t self = {.pipe = pipe, .dir = strdup ((const char *) args)};
    assert (self.dir);
    self.stats.names = s_zap_counters;
    self.limits = s_limits_new ();
    self.keys = zhashx_new ();
    self.handler = zsock_new (ZMQ_REP);
    if (zsock_bind (self.handler, CW_ZAP_ENDPOINT) != 0) {
        self.bind_error = zsys_sprintf ("could not bind ZAP handler on "
                                        "%s: %s", CW_ZAP_ENDPOINT,
                                        zmq_strerror (zmq_errno ()));
        zsock_destroy (&self.handler);
    }
    zpoller_t *poller = zpoller_new (pipe, self.handler, NULL);
    //  Only $TERM ends it, not a SIGTERM (zsys_interrupted, or EINTR
    //  below): the broker drains with its socket bound, and with no
    //  handler libzmq accepts every CURVE client.
    zpoller_set_nonstop (poller, true);
    zsock_signal (pipe, 0);
    while (true) {
        zsock_t *which = (zsock_t *) zpoller_wait (
            poller, s_stats_timeout (&self.stats));
        if (which == pipe) {
            if (s_zap_command (&self))
                break;
        }
        else
        if (which && which == self.handler)
            s_zap_handle (&self);
        else
        if (zpoller_terminated (poller) && zmq_errno () != EINTR)
            break;
        s_stats_check (&self.stats, pipe);
    }
    zpoller_destroy (&poller);
    //  Unbinding inproc is synchronous: a new handler can bind at once.
    if (self.handler)
        zsock_unbind (self.handler, CW_ZAP_ENDPOINT);
    zsock_destroy (&self.handler);
    zhashx_destroy (&self.keys);
    zhashx_destroy (&self.limits);
    zstr_free (&self.bind_error);
    free (self.dir);
}

zactor_t *
cw_zap_new (const char *certs_dir, char *error, size_t size)
{
    assert (certs_dir);
    zactor_t *zap = zactor_new (cw_zap_actor, (void *) certs_dir);
    if (cw_zap_reload (zap, error, size) < 0) {
        zactor_destroy (&zap);
        return NULL;
    }
    return zap;
}

int
cw_zap_reload (zactor_t *zap, char *error, size_t size)
{
    assert (zap);
    zstr_send (zap, "RELOAD");
    char *status = NULL;
    char *text = NULL;
    if (zsock_recv (zap, "ss", &status, &text) != 0) {
        snprintf (error, size, "could not reload certificates: interrupted");
        return -1;
    }
    int rc = -1;
    if (streq (status, "0"))
        rc = (int) strtol (text, NULL, 10);
    else
        snprintf (error, size, "%s", text);
    zstr_free (&status);
    zstr_free (&text);
    return rc;
}

//  -------------------------------------------------------------------------
//  The handshake monitor

static const char *const s_monitor_counters[] = {
    "accepted", "disconnected", "handshake_succeeded", "handshake_failed",
    "handshake_failed_no_detail", "handshake_failed_protocol",
    "handshake_failed_auth", NULL};

typedef struct {
    char host[NI_MAXHOST];          //  Numeric peer address
    char port[NI_MAXSERV];          //  Numeric peer port
} s_peer_t;

static void
s_peer_destroy (s_peer_t **self_p)
{
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

typedef struct {
    zsock_t *pipe;                  //  Actor command pipe
    zsock_t *events;                //  PAIR connected to the monitor
    zhashx_t *peers;                //  s_peer_t by file descriptor text
    zhashx_t *limits;               //  s_limit_t by peer host
    s_stats_t stats;                //  Counters
    bool pending;                   //  A failure waits for its disconnect
    char reason[CW_ZAP_NAME_MAX];   //  The pending failure's reason
    uint32_t error_code;            //  The pending failure's error value
    char *endpoint;                 //  The pending failure's local endpoint
    int64_t pending_until;          //  When to log it without a peer
} s_monitor_t;

//  Writes the pending failure's log line (peer may be NULL).
static void
s_monitor_flush (s_monitor_t *self, const s_peer_t *peer)
{
    if (!self->pending)
        return;
    self->pending = false;
    const char *host = peer ? peer->host : "unknown";
    int64_t held_back = 0;
    if (s_limit_allow (self->limits, host, &held_back)) {
        char code[32];
        char held[32];
        snprintf (code, sizeof (code), "%u", (unsigned) self->error_code);
        snprintf (held, sizeof (held), "%" PRId64, held_back);
        cw_log (CW_LOG_WARN, "handshake_failed",
                "refused connection: security handshake failed",
                "peer_address", host, "peer_port", peer ? peer->port : NULL,
                "endpoint", self->endpoint, "reason", self->reason,
                "#error_code", code, "#held_back", held_back ? held : NULL,
                NULL);
    }
    zstr_free (&self->endpoint);
}

static void
s_monitor_event (s_monitor_t *self)
{
    zmsg_t *msg = zmsg_recv (self->events);
    if (!msg)
        return;
    zframe_t *frame = zmsg_first (msg);
    char *endpoint = NULL;
    if (zmsg_size (msg) < 2 || zframe_size (frame) != 6) {
        zmsg_destroy (&msg);
        return;
    }
    uint16_t event;
    uint32_t value;
    memcpy (&event, zframe_data (frame), 2);
    memcpy (&value, zframe_data (frame) + 2, 4);
    endpoint = zframe_strdup (zmsg_next (msg));
    char fd[16];
    snprintf (fd, sizeof (fd), "%u", (unsigned) value);
    const char *failure = NULL;
    if (event == ZMQ_EVENT_ACCEPTED || event == ZMQ_EVENT_CONNECTED) {
        if (event == ZMQ_EVENT_ACCEPTED)
            s_stats_add (&self->stats, "accepted");
        struct sockaddr_storage address;
        socklen_t length = sizeof (address);
        //  Best effort: libzmq 4.3's stable events carry no peer address,
        //  so it is read from the descriptor, which a quickly failed
        //  handshake may already have closed (then "unknown").
        s_peer_t *peer = (s_peer_t *) zmalloc (sizeof (s_peer_t));
        if (getpeername ((int) value, (struct sockaddr *) &address, &length)
                == 0
            && getnameinfo ((struct sockaddr *) &address, length, peer->host,
                            sizeof (peer->host), peer->port,
                            sizeof (peer->port),
                            NI_NUMERICHOST | NI_NUMERICSERV) == 0)
            zhashx_update (self->peers, fd, peer);
        else
            s_peer_destroy (&peer);
    }
    else
    if (event == ZMQ_EVENT_DISCONNECTED) {
        s_stats_add (&self->stats, "disconnected");
        s_monitor_flush (self, (s_peer_t *) zhashx_lookup (self->peers, fd));
        zhashx_delete (self->peers, fd);
    }
    else
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        s_stats_add (&self->stats, "handshake_succeeded");
    else
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        failure = "no_detail";
    else
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        failure = "protocol";
    else
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        failure = "auth";
    if (failure) {
        //  libzmq reports the disconnect (with the descriptor that leads
        //  to the peer address) right after the failure.
        s_monitor_flush (self, NULL);
        char counter[CW_ZAP_NAME_MAX];
        snprintf (counter, sizeof (counter), "handshake_failed_%s", failure);
        s_stats_add (&self->stats, "handshake_failed");
        s_stats_add (&self->stats, counter);
        self->pending = true;
        snprintf (self->reason, sizeof (self->reason), "%s", failure);
        self->error_code = value;
        self->endpoint = endpoint;
        endpoint = NULL;
        self->pending_until = zclock_mono () + CW_ZAP_FLUSH_MSEC;
    }
    zstr_free (&endpoint);
    zmsg_destroy (&msg);
}

static bool
s_monitor_command (s_monitor_t *self)
{
    zmsg_t *request = zmsg_recv (self->pipe);
    if (!request)
        return true;
    char *command = zmsg_popstr (request);
    bool terminated = !command || streq (command, "$TERM");
    if (terminated)
        ;
    else
    if (streq (command, "STATS"))
        s_stats_send (&self->stats, self->pipe);
    else
    if (streq (command, "WAIT"))
        s_stats_wait (&self->stats, self->pipe, request);
    else
        cw_log (CW_LOG_ERROR, "monitor_bad_command",
                "invalid monitor actor command", "command", command, NULL);
    zstr_free (&command);
    zmsg_destroy (&request);
    return terminated;
}

void
cw_zap_monitor_actor (zsock_t *pipe, void *args)
{
    assert (pipe);
    assert (args);
    s_monitor_t self = {.pipe = pipe};
    self.stats.names = s_monitor_counters;
    self.limits = s_limits_new ();
    self.peers = zhashx_new ();
    zhashx_set_destructor (self.peers,
                           (zhashx_destructor_fn *) s_peer_destroy);
    self.events = zsock_new (ZMQ_PAIR);
    int rc = zsock_connect (self.events, "%s", (const char *) args);
    assert (rc == 0);
    zpoller_t *poller = zpoller_new (pipe, self.events, NULL);
    //  Only $TERM ends it, not a SIGTERM (zsys_interrupted, or EINTR
    //  below): with no reader, libzmq's I/O thread blocks on the
    //  socket's next event.
    zpoller_set_nonstop (poller, true);
    zsock_signal (pipe, 0);
    while (true) {
        int timeout = s_stats_timeout (&self.stats);
        if (self.pending) {
            int64_t left = self.pending_until - zclock_mono ();
            int flush = left > 0 ? (int) left : 0;
            timeout = timeout < 0 || flush < timeout ? flush : timeout;
        }
        zsock_t *which = (zsock_t *) zpoller_wait (poller, timeout);
        if (which == pipe) {
            if (s_monitor_command (&self))
                break;
        }
        else
        if (which == self.events)
            s_monitor_event (&self);
        else
        if (zpoller_terminated (poller) && zmq_errno () != EINTR)
            break;
        if (self.pending && zclock_mono () >= self.pending_until)
            s_monitor_flush (&self, NULL);
        s_stats_check (&self.stats, pipe);
    }
    s_monitor_flush (&self, NULL);
    zpoller_destroy (&poller);
    zsock_destroy (&self.events);
    zhashx_destroy (&self.peers);
    zhashx_destroy (&self.limits);
}

zactor_t *
cw_zap_monitor_new (zsock_t *sock)
{
    assert (sock);
    char *endpoint = zsys_sprintf ("inproc://cw-zap-monitor-%p-%08x",
                                   (void *) sock, randombytes_random ());
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED
               | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED
               | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL
               | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
               | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    int rc = zmq_socket_monitor (zsock_resolve (sock), endpoint, events);
    assert (rc == 0);
    zactor_t *monitor = zactor_new (cw_zap_monitor_actor, endpoint);
    zstr_free (&endpoint);
    return monitor;
}

//  -------------------------------------------------------------------------
//  Reading counters

int64_t
cw_zap_stat (zactor_t *actor, const char *name)
{
    assert (actor);
    assert (name);
    zstr_send (actor, "STATS");
    zmsg_t *reply = zmsg_recv (actor);
    int64_t value = -1;
    while (reply && zmsg_size (reply) >= 2) {
        char *key = zmsg_popstr (reply);
        char *text = zmsg_popstr (reply);
        if (streq (key, name))
            value = strtoll (text, NULL, 10);
        zstr_free (&key);
        zstr_free (&text);
    }
    zmsg_destroy (&reply);
    return value;
}

bool
cw_zap_wait (zactor_t *actor, const char *name, int64_t value,
             int timeout_msec)
{
    assert (actor);
    assert (name);
    zmsg_t *request = zmsg_new ();
    zmsg_addstr (request, "WAIT");
    zmsg_addstr (request, name);
    zmsg_addstrf (request, "%" PRId64, value);
    zmsg_addstrf (request, "%d", timeout_msec);
    zmsg_send (&request, actor);
    char *reply = zstr_recv (actor);
    bool met = reply && streq (reply, "1");
    zstr_free (&reply);
    return met;
}
