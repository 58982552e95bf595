/*  =========================================================================
    cw_runner - many HTTP calls at once through one libcurl multi handle

    Each call runs in a slot; a slot keeps its easy handle after the call
    (curl_easy_reset keeps no options but the multi handle keeps the
    connections), so the pool of easy handles never grows beyond
    max_inflight. curl tells us which sockets to watch through
    CURLMOPT_SOCKETFUNCTION and when to call it through
    CURLMOPT_TIMERFUNCTION; the caller polls those with zmq_poll (which
    takes plain file descriptors), so this works wherever ZeroMQ does,
    the BSDs included.
    =========================================================================
*/
#include "cw_runner.h"
#include "cw_log.h"
#include "cw_retry.h"

#include <assert.h>
#include <czmq.h>
#include <curl/curl.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>

#define RETRY_AFTER_MAX 128  //  Retry-After value bytes kept
#define SOCKETS_INITIAL 16   //  Initial socket table size

//  One call slot
typedef struct {
    CURL *easy;                  //  Reused easy handle, owned
    bool busy;                   //  A call is in flight in this slot
    struct curl_slist *headers;  //  Request headers, owned, wiped on free
    void *tag;                   //  Caller's handle
    int64_t started;             //  zclock_mono at start
    int64_t timeout_msec;        //  The call's total timeout
    int64_t connect_msec;        //  The call's connect timeout
    char *body;                  //  Response bytes kept, owned
    size_t body_size;            //  Bytes in body
    bool body_over;              //  Bytes beyond CW_RUNNER_BODY_MAX dropped
    char retry_after[RETRY_AFTER_MAX];  //  Last Retry-After value
    char error[CURL_ERROR_SIZE];        //  CURLOPT_ERRORBUFFER
} s_slot_t;

//  One socket curl asked us to watch
typedef struct {
    curl_socket_t fd;  //  The socket
    short events;      //  ZMQ_POLLIN / ZMQ_POLLOUT
} s_socket_t;

struct _cw_runner_t {
    CURLM *multi;          //  The one multi handle
    s_slot_t *slots;       //  max_inflight slots
    size_t max_inflight;   //  Slot count
    size_t busy;           //  Slots in flight
    s_socket_t *sockets;   //  Sockets curl watches
    size_t sockets_count;  //  Entries used
    size_t sockets_size;   //  Entries allocated
    int64_t timer_at;      //  zclock_mono when curl wants a call, -1
    zlistx_t *done;        //  Finished results, owned
    size_t done_count;     //  Results in done
    uint64_t calls;        //  Calls finished
    uint64_t connections;  //  Connections opened
};

static int
s_socket_cb (CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void) easy;
    (void) socketp;
    cw_runner_t *self = (cw_runner_t *) userp;
    size_t index;
    for (index = 0; index < self->sockets_count; index++)
        if (self->sockets[index].fd == fd)
            break;
    if (what == CURL_POLL_REMOVE) {
        if (index < self->sockets_count)
            self->sockets[index] = self->sockets[--self->sockets_count];
        return 0;
    }
    if (index == self->sockets_count) {
        if (self->sockets_count == self->sockets_size) {
            self->sockets_size *= 2;
            self->sockets = (s_socket_t *) realloc (
                self->sockets, self->sockets_size * sizeof (s_socket_t));
            if (!self->sockets)
                abort ();
        }
        self->sockets[self->sockets_count++].fd = fd;
    }
    short events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= ZMQ_POLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= ZMQ_POLLOUT;
    self->sockets[index].events = events;
    return 0;
}

static int
s_timer_cb (CURLM *multi, long timeout_msec, void *userp)
{
    (void) multi;
    cw_runner_t *self = (cw_runner_t *) userp;
    self->timer_at = timeout_msec < 0 ? -1 : zclock_mono () + timeout_msec;
    return 0;
}

static size_t
s_write_cb (char *data, size_t size, size_t count, void *userp)
{
    s_slot_t *slot = (s_slot_t *) userp;
    size_t bytes = size * count;
    size_t room = CW_RUNNER_BODY_MAX - slot->body_size;
    size_t kept = bytes < room ? bytes : room;
    if (kept < bytes)
        slot->body_over = true;
    if (kept) {
        slot->body = (char *) realloc (slot->body, slot->body_size + kept + 1);
        if (!slot->body)
            abort ();
        memcpy (slot->body + slot->body_size, data, kept);
        slot->body_size += kept;
        slot->body[slot->body_size] = 0;
    }
    return bytes;
}

static size_t
s_header_cb (char *data, size_t size, size_t count, void *userp)
{
    s_slot_t *slot = (s_slot_t *) userp;
    size_t bytes = size * count;
    static const char name[] = "retry-after:";
    if (bytes > 5 && strncmp (data, "HTTP/", 5) == 0)
        slot->retry_after[0] = 0;  //  A new response (after 1xx)
    else if (bytes > sizeof (name) - 1
             && strncasecmp (data, name, sizeof (name) - 1) == 0) {
        const char *value = data + sizeof (name) - 1;
        size_t length = bytes - (sizeof (name) - 1);
        while (length && (*value == ' ' || *value == '\t')) {
            value++;
            length--;
        }
        while (length
               && (value[length - 1] == '\r' || value[length - 1] == '\n'
                   || value[length - 1] == ' '))
            length--;
        if (length >= RETRY_AFTER_MAX)
            length = RETRY_AFTER_MAX - 1;
        memcpy (slot->retry_after, value, length);
        slot->retry_after[length] = 0;
    }
    return bytes;
}

static void
s_result_destroy_item (void **item)
{
    cw_runner_result_destroy ((cw_runner_result_t **) item);
}

//  Frees what a slot holds for its call; keeps the easy handle.
static void
s_slot_clear (s_slot_t *slot)
{
    for (struct curl_slist *line = slot->headers; line; line = line->next)
        sodium_memzero (line->data, strlen (line->data));
    curl_slist_free_all (slot->headers);
    slot->headers = NULL;
    free (slot->body);
    slot->body = NULL;
    slot->body_size = 0;
    slot->body_over = false;
    slot->retry_after[0] = 0;
    slot->error[0] = 0;
    slot->tag = NULL;
    slot->busy = false;
}

cw_runner_t *
cw_runner_new (size_t max_inflight)
{
    assert (max_inflight > 0);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    cw_runner_t *self = (cw_runner_t *) zmalloc (sizeof (cw_runner_t));
    self->multi = curl_multi_init ();
    assert (self->multi);
    self->max_inflight = max_inflight;
    self->slots = (s_slot_t *) zmalloc (max_inflight * sizeof (s_slot_t));
    self->sockets_size = SOCKETS_INITIAL;
    self->sockets =
        (s_socket_t *) zmalloc (self->sockets_size * sizeof (s_socket_t));
    self->timer_at = -1;
    self->done = zlistx_new ();
    zlistx_set_destructor (self->done, s_result_destroy_item);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_socket_cb);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_timer_cb);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    //  Keep one idle connection per possible call
    curl_multi_setopt (self->multi, CURLMOPT_MAXCONNECTS, (long) max_inflight);
    return self;
}

void
cw_runner_destroy (cw_runner_t **self_p)
{
    assert (self_p);
    cw_runner_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->max_inflight; index++) {
        s_slot_t *slot = &self->slots[index];
        if (slot->busy)
            curl_multi_remove_handle (self->multi, slot->easy);
        s_slot_clear (slot);
        if (slot->easy)
            curl_easy_cleanup (slot->easy);
    }
    curl_multi_cleanup (self->multi);
    free (self->slots);
    free (self->sockets);
    zlistx_destroy (&self->done);
    free (self);
    curl_global_cleanup ();
    *self_p = NULL;
}

//  Takes finished transfers off the multi handle into the done list.
static void
s_collect (cw_runner_t *self)
{
    CURLMsg *message;
    int left;
    while ((message = curl_multi_info_read (self->multi, &left))) {
        if (message->msg != CURLMSG_DONE)
            continue;
        CURL *easy = message->easy_handle;
        CURLcode code = message->data.result;
        s_slot_t *slot = NULL;
        curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &slot);
        assert (slot && slot->busy);
        long status = 0;
        curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &status);
        long connects = 0;
        curl_easy_getinfo (easy, CURLINFO_NUM_CONNECTS, &connects);
        cw_runner_result_t *result =
            (cw_runner_result_t *) zmalloc (sizeof (cw_runner_result_t));
        result->tag = slot->tag;
        result->duration_msec = zclock_mono () - slot->started;
        result->new_connections = connects;
        cw_runner_classify (code, slot->error, status,
                            slot->retry_after[0] ? slot->retry_after : NULL,
                            slot->body, slot->body_size, slot->body_over,
                            slot->timeout_msec, zclock_time (), result);
        //  Timed out before the request went out: the connect timeout
        //  (name lookup and TLS included) fired, not the total one
        curl_off_t pretransfer = 0;
        if (code == CURLE_OPERATION_TIMEDOUT
            && curl_easy_getinfo (easy, CURLINFO_PRETRANSFER_TIME_T,
                                  &pretransfer)
                   == CURLE_OK
            && pretransfer == 0)
            snprintf (result->error, sizeof (result->error),
                      "connect timeout after %lld ms",
                      (long long) slot->connect_msec);
        curl_multi_remove_handle (self->multi, easy);
        s_slot_clear (slot);
        self->busy--;
        self->calls++;
        self->connections += (uint64_t) connects;
        zlistx_add_end (self->done, result);
        self->done_count++;
    }
}

//  Runs curl's timeout work (starting added transfers among it) now.
static void
s_timeout (cw_runner_t *self)
{
    int running = 0;
    self->timer_at = -1;
    curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
}

int
cw_runner_start (cw_runner_t *self,
                 const cw_runner_call_t *call,
                 char *error,
                 size_t size)
{
    assert (self);
    assert (call);
    assert (call->method && call->url);
    assert (call->timeout_msec > 0 && call->connect_timeout_msec > 0);
    assert (error);
    bool has_body = true;
    if (streq (call->method, "GET"))
        has_body = false;
    else if (!streq (call->method, "POST") && !streq (call->method, "PUT")
             && !streq (call->method, "PATCH")
             && !streq (call->method, "DELETE")) {
        snprintf (error, size, "method \"%s\" is not supported", call->method);
        return -1;
    }
    if (self->busy + self->done_count >= self->max_inflight) {
        snprintf (error, size, "cannot start call: %zu calls in flight",
                  self->max_inflight);
        return -1;
    }
    s_slot_t *slot = NULL;
    for (size_t index = 0; index < self->max_inflight; index++)
        if (!self->slots[index].busy) {
            slot = &self->slots[index];
            break;
        }
    assert (slot);
    if (slot->easy)
        curl_easy_reset (slot->easy);
    else {
        slot->easy = curl_easy_init ();
        assert (slot->easy);
    }
    CURL *easy = slot->easy;
    for (size_t index = 0; call->headers && call->headers[index]; index++)
        slot->headers = curl_slist_append (slot->headers, call->headers[index]);
    //  No "Expect: 100-continue" round trip for larger bodies
    slot->headers = curl_slist_append (slot->headers, "Expect:");
    curl_easy_setopt (easy, CURLOPT_URL, call->url);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_ERRORBUFFER, slot->error);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long) call->timeout_msec);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS,
                      (long) call->connect_timeout_msec);
    curl_easy_setopt (easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt (easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt (easy, CURLOPT_PROTOCOLS,
                      (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, slot->headers);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_write_cb);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, slot);
    curl_easy_setopt (easy, CURLOPT_HEADERFUNCTION, s_header_cb);
    curl_easy_setopt (easy, CURLOPT_HEADERDATA, slot);
    curl_easy_setopt (easy, CURLOPT_PRIVATE, slot);
    if (has_body) {
        const char *body = call->body ? call->body : "";
        curl_easy_setopt (easy, CURLOPT_POSTFIELDSIZE, (long) strlen (body));
        curl_easy_setopt (easy, CURLOPT_COPYPOSTFIELDS, body);
        if (!streq (call->method, "POST"))
            curl_easy_setopt (easy, CURLOPT_CUSTOMREQUEST, call->method);
    }
    else
        curl_easy_setopt (easy, CURLOPT_HTTPGET, 1L);
    slot->tag = call->tag;
    slot->timeout_msec = call->timeout_msec;
    slot->connect_msec = call->connect_timeout_msec;
    slot->started = zclock_mono ();
    slot->error[0] = 0;
    CURLMcode code = curl_multi_add_handle (self->multi, easy);
    if (code != CURLM_OK) {
        snprintf (error, size, "could not start call: %s",
                  curl_multi_strerror (code));
        s_slot_clear (slot);
        return -1;
    }
    slot->busy = true;
    self->busy++;
    //  Send the request now rather than on the caller's next turn: a batch
    //  of JOBs read in one turn would otherwise wait for the whole batch
    //  to be built first (B3: ~2 ms per call). A transfer that ends at
    //  once (say, connection refused) is in cw_runner_next right away.
    s_timeout (self);
    s_collect (self);
    return 0;
}

int
cw_runner_cancel (cw_runner_t *self, void *tag)
{
    assert (self);
    for (size_t index = 0; index < self->max_inflight; index++) {
        s_slot_t *slot = &self->slots[index];
        if (slot->busy && slot->tag == tag) {
            curl_multi_remove_handle (self->multi, slot->easy);
            s_slot_clear (slot);
            self->busy--;
            return 0;
        }
    }
    //  Finished but not yet taken
    cw_runner_result_t *result =
        (cw_runner_result_t *) zlistx_first (self->done);
    while (result) {
        if (result->tag == tag) {
            zlistx_delete (self->done, zlistx_cursor (self->done));
            self->done_count--;
            return 0;
        }
        result = (cw_runner_result_t *) zlistx_next (self->done);
    }
    return -1;
}

size_t
cw_runner_inflight (cw_runner_t *self)
{
    assert (self);
    return self->busy + self->done_count;
}

size_t
cw_runner_socket_count (cw_runner_t *self)
{
    assert (self);
    return self->sockets_count;
}

size_t
cw_runner_pollitems (cw_runner_t *self, zmq_pollitem_t *items, size_t max)
{
    assert (self);
    assert (items || max == 0);
    size_t count = 0;
    for (; count < self->sockets_count && count < max; count++) {
        items[count].socket = NULL;
        items[count].fd = self->sockets[count].fd;
        items[count].events = self->sockets[count].events;
        items[count].revents = 0;
    }
    return count;
}

long
cw_runner_timeout (cw_runner_t *self)
{
    assert (self);
    if (self->timer_at < 0)
        return -1;
    int64_t left = self->timer_at - zclock_mono ();
    return left > 0 ? (long) left : 0;
}

void
cw_runner_action (cw_runner_t *self, const zmq_pollitem_t *items, size_t count)
{
    assert (self);
    assert (items || count == 0);
    int running = 0;
    for (size_t index = 0; index < count; index++) {
        int mask = 0;
        if (items[index].revents & ZMQ_POLLIN)
            mask |= CURL_CSELECT_IN;
        if (items[index].revents & ZMQ_POLLOUT)
            mask |= CURL_CSELECT_OUT;
        if (items[index].revents & ZMQ_POLLERR)
            mask |= CURL_CSELECT_ERR;
        if (mask)
            curl_multi_socket_action (self->multi, items[index].fd, mask,
                                      &running);
    }
    if (self->timer_at >= 0 && zclock_mono () >= self->timer_at)
        s_timeout (self);
    s_collect (self);
}

void
cw_runner_wait (cw_runner_t *self, long timeout_msec)
{
    assert (self);
    size_t size = self->sockets_count;
    zmq_pollitem_t *items = (zmq_pollitem_t *) zmalloc (
        (size ? size : 1) * sizeof (zmq_pollitem_t));
    size_t count = cw_runner_pollitems (self, items, size);
    long timer = cw_runner_timeout (self);
    if (timer >= 0 && (timeout_msec < 0 || timer < timeout_msec))
        timeout_msec = timer;
    if (count || timeout_msec != 0)
        zmq_poll (count ? items : NULL, (int) count, timeout_msec);
    cw_runner_action (self, items, count);
    free (items);
}

cw_runner_result_t *
cw_runner_next (cw_runner_t *self)
{
    assert (self);
    cw_runner_result_t *result =
        (cw_runner_result_t *) zlistx_detach (self->done, NULL);
    if (result)
        self->done_count--;
    return result;
}

void
cw_runner_result_destroy (cw_runner_result_t **self_p)
{
    assert (self_p);
    cw_runner_result_t *self = *self_p;
    if (!self)
        return;
    json_decref (self->response);
    free (self);
    *self_p = NULL;
}

uint64_t
cw_runner_calls (cw_runner_t *self)
{
    assert (self);
    return self->calls;
}

uint64_t
cw_runner_connections (cw_runner_t *self)
{
    assert (self);
    return self->connections;
}

//  True if a problem+json object's "type" ends with (after '/' or ':'),
//  or its "code" is, one of names (NULL-terminated).
static bool
s_problem_is (const json_t *problem, const char *const *names)
{
    const char *fields[] = {"type", "code"};
    for (size_t field = 0; field < 2; field++) {
        const char *value =
            json_string_value (json_object_get (problem, fields[field]));
        if (!value)
            continue;
        size_t length = strlen (value);
        for (size_t index = 0; names[index]; index++) {
            size_t name = strlen (names[index]);
            if (length >= name
                && strcmp (value + length - name, names[index]) == 0
                && (length == name || value[length - name - 1] == '/'
                    || value[length - name - 1] == ':'))
                return true;
        }
    }
    return false;
}

//  True if the problem says the contract version is not supported.
static bool
s_is_version_problem (const json_t *problem)
{
    static const char *const names[] = {CW_RUNNER_CONTRACT_VERSION_TYPE,
                                        "unsupported-contract-version", NULL};
    return s_problem_is (problem, names);
}

//  True if the problem says a request with the same Idempotency-Key is
//  still being processed: its outcome is not known yet (it may still
//  fail without effect), so this is no duplicate but a reason to retry.
static bool
s_is_key_in_flight_problem (const json_t *problem)
{
    static const char *const names[] = {"idempotency-key-in-flight",
                                        "idempotency_key_in_flight", NULL};
    return s_problem_is (problem, names);
}

//  True if the problem says the request was already carried out, or is
//  superseded by what the far side already holds: a create of an object
//  that exists, an update older than the stored version. Only such a 409
//  is a duplicate (done without effect); any other conflict may mean the
//  change was never made, so it must not pass as done.
static bool
s_is_already_done_problem (const json_t *problem)
{
    static const char *const names[] = {
        "already-processed", "already_processed", "duplicate",
        "order-exists",      "order_exists",      "stale-version",
        "stale_version",     NULL};
    return s_problem_is (problem, names);
}

//  Appends the problem's detail (or title) to error.
static void
s_problem_text (const json_t *problem,
                const char *prefix,
                char *error,
                size_t size)
{
    const char *detail =
        json_string_value (json_object_get (problem, "detail"));
    if (!detail)
        detail = json_string_value (json_object_get (problem, "title"));
    if (detail)
        snprintf (error, size, "%s: %s", prefix, detail);
    else
        snprintf (error, size, "%s", prefix);
}

//  Drops the bytes of text that are not whole UTF-8 characters: a
//  character cut by the error's size, stray bytes from curl. RESULT and
//  REPLY carry UTF-8 only, and one bad error would fail the whole
//  message (PROTOCOL.md 3).
static void
s_utf8_clean (char *text)
{
    char *out = text;
    for (const char *at = text; *at;) {
        size_t length = cw_log_utf8_length (at);
        if (length) {
            memmove (out, at, length);
            out += length;
            at += length;
        }
        else
            at++;
    }
    *out = 0;
}

void
cw_runner_classify (int curl_code,
                    const char *curl_error,
                    long http_status,
                    const char *retry_after,
                    const char *body,
                    size_t body_size,
                    bool body_over,
                    int64_t timeout_msec,
                    int64_t now_msec,
                    cw_runner_result_t *result)
{
    assert (result);
    assert (body || body_size == 0);
    result->http_status = http_status;
    result->retry_after_msec = -1;
    result->error[0] = 0;
    json_decref (result->response);
    result->response = NULL;
    char *error = result->error;
    size_t size = sizeof (result->error);

    if (curl_code != CURLE_OK) {
        result->outcome = CW_OUTCOME_TRANSIENT;
        if (curl_code == CURLE_OPERATION_TIMEDOUT)
            snprintf (error, size, "timeout after %lld ms",
                      (long long) timeout_msec);
        else
            snprintf (error, size, "could not complete call: %s",
                      curl_error && *curl_error
                          ? curl_error
                          : curl_easy_strerror ((CURLcode) curl_code));
        s_utf8_clean (error);
        return;
    }
    if (retry_after) {
        int64_t delay;
        char reason[128];
        if (cw_retry_after_parse (retry_after, now_msec, &delay, reason,
                                  sizeof (reason))
            == 0)
            result->retry_after_msec = delay;
    }
    //  The body, when it is JSON
    json_t *parsed = NULL;
    json_error_t json_error = {.text = ""};
    if (body_size && !body_over) {
        parsed = json_loadb (body, body_size, JSON_DECODE_ANY, &json_error);
        //  Valid JSON with an integer beyond 64 bits (jansson's limit):
        //  read again with every number as a double, rather than call a
        //  done call malformed
        if (!parsed)
            parsed = json_loadb (body, body_size,
                                 JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
                                 NULL);
    }
    if (json_is_object (parsed))
        result->response = json_incref (parsed);
    bool malformed = body_size && !body_over && !parsed;
    json_decref (parsed);

    if (http_status >= 200 && http_status < 300) {
        if (malformed) {
            result->outcome = CW_OUTCOME_TRANSIENT;
            snprintf (error, size, "malformed response (status %ld): %s",
                      http_status, json_error.text);
        }
        else
            result->outcome = CW_OUTCOME_OK;
    }
    else if (http_status == 409 && result->response
             && s_is_key_in_flight_problem (result->response)) {
        result->outcome = CW_OUTCOME_TRANSIENT;
        s_problem_text (result->response, "key in flight (409)", error, size);
    }
    else if (http_status == 409 && result->response
             && s_is_already_done_problem (result->response)) {
        result->outcome = CW_OUTCOME_DUPLICATE;
        s_problem_text (result->response, "conflict (409)", error, size);
    }
    else if (http_status == 409) {
        //  A conflict that does not say "already done" (a closed order,
        //  a lock, no problem body at all): the effect may never have
        //  happened, so it is a dead letter an operator sees, not a
        //  silent success
        result->outcome = CW_OUTCOME_REJECTED;
        s_problem_text (result->response, "rejected (409)", error, size);
    }
    else if (http_status == 429) {
        result->outcome = CW_OUTCOME_TRANSIENT;
        snprintf (error, size, "rate limited (429)");
    }
    else if (http_status == 408) {
        result->outcome = CW_OUTCOME_TRANSIENT;
        snprintf (error, size, "request timeout (408)");
    }
    else if (http_status == 400 && result->response
             && s_is_version_problem (result->response)) {
        result->outcome = CW_OUTCOME_VERSION;
        s_problem_text (result->response,
                        "contract version not supported (400)", error, size);
    }
    else if (http_status >= 400 && http_status < 500) {
        char prefix[64];
        snprintf (prefix, sizeof (prefix), "rejected (%ld)", http_status);
        result->outcome = CW_OUTCOME_REJECTED;
        s_problem_text (result->response, prefix, error, size);
    }
    else if (http_status >= 500 && http_status < 600) {
        char prefix[64];
        snprintf (prefix, sizeof (prefix), "server error (%ld)", http_status);
        result->outcome = CW_OUTCOME_TRANSIENT;
        s_problem_text (result->response, prefix, error, size);
    }
    else {
        result->outcome = CW_OUTCOME_TRANSIENT;
        snprintf (error, size, "unexpected HTTP status %ld", http_status);
    }
    s_utf8_clean (error);
}

const char *
cw_outcome_name (cw_outcome_t outcome)
{
    switch (outcome) {
        case CW_OUTCOME_OK:
            return "ok";
        case CW_OUTCOME_REJECTED:
            return "rejected";
        case CW_OUTCOME_DUPLICATE:
            return "duplicate";
        case CW_OUTCOME_TRANSIENT:
            return "transient";
        case CW_OUTCOME_VERSION:
            return "version";
    }
    return "?";
}
