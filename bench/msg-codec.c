/*  =========================================================================
    msg-codec - micro-benchmark of the CWP/1 codec (proto/cw_msg)

    Times cw_msg_encode (+ cw_msg_frames_destroy) and cw_msg_decode (+
    cw_msg_destroy) of two realistic messages: a JOB whose envelope
    carries a ~300-byte customer.upsert payload, and a RESULT of 8
    results as a worker sends them after one poll turn. Each case runs
    ROUNDS rounds of N operations; prints ns/op of every round and the
    median.

        build/plain/bench/msg-codec [-n N] [-r ROUNDS]

    Defaults: N = 20000, ROUNDS = 5 (about a second in all). See
    bench/README.md.
    =========================================================================
*/
#include "cw_msg.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_COUNT_DEFAULT 20000
#define S_ROUNDS_DEFAULT 5
#define S_ROUNDS_MAX 99
#define S_RESULTS 8  //  Results in the RESULT message
#define S_NSEC_PER_SEC 1000000000.0

//  A customer.upsert payload of about 300 bytes (compact JSON)
static const char *s_payload =
    "{\"tenantId\":\"acme\",\"customerId\":\"c-7\",\"version\":3,"
    "\"changedFields\":[\"email\",\"name\",\"phone\"],\"customer\":{"
    "\"name\":\"Ada Lovelace\",\"email\":\"ada@example.org\","
    "\"phone\":\"+44 20 7946 0958\",\"countryCode\":\"GB\","
    "\"address\":{\"street\":\"12 St James's Square\",\"city\":\"London\","
    "\"postalCode\":\"SW1Y 4JH\"},\"vatId\":\"GB123456789\","
    "\"creditLimit\":250000,\"discount\":0.05,\"active\":true}}";

static cw_msg_t *
s_job (void)
{
    cw_envelope_t *envelope = cw_envelope_new ();
    cw_envelope_set_id (envelope, "0b4f6c1e-5d7a-4c1b-9a51-3f2e8d7c6b5a");
    cw_envelope_set_source (envelope, "/webshop/customers");
    cw_envelope_set_type (envelope, "customer.upsert.requested.v1");
    cw_envelope_set_time (envelope, "2025-01-31T10:02:03.123Z");
    cw_envelope_set_tenant_id (envelope, "acme");
    cw_envelope_set_correlation_id (
        envelope, "corr-7d3f2a91-2b4c-4e8f-a1d2-c3b4a5968778");
    cw_envelope_set_traceparent (
        envelope, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    cw_envelope_set_idempotency_key (envelope, "customer:acme:c-7:3");
    json_error_t error;
    json_t *data = json_loads (s_payload, 0, &error);
    assert (data);
    cw_envelope_set_data (envelope, &data);

    cw_msg_t *msg = cw_msg_new (CW_MSG_WORKER, CW_MSG_JOB);
    msg->job.job_id = 1234567;
    msg->job.attempt = 1;
    msg->job.flow = strdup ("customer.upsert");
    msg->job.target = strdup ("erp");
    msg->job.deadline_ms = 30000;
    msg->job.envelope = envelope;
    return msg;
}

static cw_msg_t *
s_result (void)
{
    cw_msg_t *msg = cw_msg_new (CW_MSG_WORKER, CW_MSG_RESULT);
    for (int index = 0; index < S_RESULTS; index++) {
        cw_msg_result_t *result = cw_msg_result_add (msg);
        result->job_id = 1234567 + index;
        result->attempt = 1;
        result->outcome = CW_MSG_OUTCOME_OK;
        result->http_status = 201;
        result->duration_ms = 12 + index;
        char erp_id[32];
        snprintf (erp_id, sizeof (erp_id), "CUST-%06d", 100 + index);
        result->response = json_pack ("{s:s, s:s, s:i}", "id", erp_id, "status",
                                      "created", "version", 3);
    }
    msg->result.credit = S_RESULTS;
    return msg;
}

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec * S_NSEC_PER_SEC + (double) now.tv_nsec;
}

static int
s_compare (const void *left, const void *right)
{
    double a = *(const double *) left;
    double b = *(const double *) right;
    return (a > b) - (a < b);
}

//  Runs rounds of count encodes (decode false) or decodes of msg and
//  prints one line; returns the median ns/op.
static double
s_measure (
    const char *name, const cw_msg_t *msg, bool decode, long count, int rounds)
{
    char reason[CW_MSG_REASON_SIZE];
    cw_msg_frames_t *frames = cw_msg_encode (msg, reason, sizeof (reason));
    if (!frames) {
        fprintf (stderr, "msg-codec: cannot encode %s: %s\n", name, reason);
        exit (1);
    }
    double results[S_ROUNDS_MAX];
    size_t bytes = 0;  //  Keeps the work observable
    for (int round = 0; round < rounds; round++) {
        double start = s_now ();
        for (long index = 0; index < count; index++)
            if (decode) {
                cw_msg_t *copy = cw_msg_decode (frames->frame, frames->count,
                                                NULL, reason, sizeof (reason));
                assert (copy);
                bytes += (size_t) copy->command;
                cw_msg_destroy (&copy);
            }
            else {
                cw_msg_frames_t *out =
                    cw_msg_encode (msg, reason, sizeof (reason));
                assert (out);
                bytes += out->frame[2].size;
                cw_msg_frames_destroy (&out);
            }
        results[round] = (s_now () - start) / (double) count;
    }
    printf ("%-14s body %5zu B  ns/op:", name, frames->frame[2].size);
    for (int round = 0; round < rounds; round++)
        printf (" %.0f", results[round]);
    qsort (results, (size_t) rounds, sizeof (double), s_compare);
    double median = results[rounds / 2];
    if (rounds % 2 == 0)
        median = (results[rounds / 2 - 1] + results[rounds / 2]) / 2;
    printf ("  median %.0f\n", median);
    cw_msg_frames_destroy (&frames);
    if (bytes == 0)
        printf ("(nothing measured)\n");
    return median;
}

static long
s_number (const char *text, long min, long max)
{
    char *end;
    long value = strtol (text, &end, 10);
    if (end == text || *end || value < min || value > max) {
        fprintf (stderr, "msg-codec: %s is not a number %ld to %ld\n", text,
                 min, max);
        exit (2);
    }
    return value;
}

int
main (int argc, char *argv[])
{
    long count = S_COUNT_DEFAULT;
    int rounds = S_ROUNDS_DEFAULT;
    for (int index = 1; index < argc; index++) {
        if (strcmp (argv[index], "-n") == 0 && index + 1 < argc)
            count = s_number (argv[++index], 1, 100000000);
        else if (strcmp (argv[index], "-r") == 0 && index + 1 < argc)
            rounds = (int) s_number (argv[++index], 1, S_ROUNDS_MAX);
        else {
            fprintf (stderr, "usage: msg-codec [-n N] [-r ROUNDS]\n");
            return 2;
        }
    }
    printf ("msg-codec: %ld operations per round, %d rounds\n", count, rounds);
    cw_msg_t *job = s_job ();
    cw_msg_t *result = s_result ();
    s_measure ("JOB encode", job, false, count, rounds);
    s_measure ("JOB decode", job, true, count, rounds);
    s_measure ("RESULT encode", result, false, count, rounds);
    s_measure ("RESULT decode", result, true, count, rounds);
    cw_msg_destroy (&job);
    cw_msg_destroy (&result);
    return 0;
}
