/*  =========================================================================
    erpsim_validate - request validation for the ERP simulator (pure: no
    I/O, no state; fuzzed by tests/fuzz/fuzz_erpsim_json.c)

    Each function takes a request body (bytes, not NUL-terminated) and
    returns a fresh, normalised JSON object holding only the known fields,
    or NULL with a problem describing the first error: 400 for a body that
    is not JSON (naming the position), 422 for a missing field, a wrong
    type or a value out of range (naming the field, e.g. "lines[1].quantity").
    Money is always an integer number of minor units plus an ISO 4217
    currency code; floats are refused.
    =========================================================================
*/
#ifndef ERPSIM_VALIDATE_H_INCLUDED
#define ERPSIM_VALIDATE_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ERPSIM_LINES_MAX 500            //  Most lines in one order
#define ERPSIM_QUANTITY_MAX 1000000     //  Largest line quantity
#define ERPSIM_MINOR_MAX 1000000000000LL    //  Largest amount, minor units
#define ERPSIM_DELAY_MAX_MSEC 600000    //  Largest injected delay, msec
#define ERPSIM_RATE_MAX 100000.0        //  Largest feed rate, per second
#define ERPSIM_GENERATE_MAX 100000      //  Most items generated at once

typedef struct {
    int status;                 //  400 or 422
    char slug[32];              //  Problem type slug ("missing-field"...)
    char title[64];             //  Problem title
    char field[128];            //  Field at fault, "" when none
    char detail[256];           //  What is wrong
} erpsim_problem_t;

typedef enum {
    ERPSIM_JITTER_UNIFORM,      //  Uniform in [0, jitter_msec]
    ERPSIM_JITTER_EXPONENTIAL   //  Exponential with mean jitter_msec
} erpsim_jitter_t;

//  Fault knobs of one route (rates are probabilities 0..1 per request)
typedef struct {
    double error_rate;              //  5xx before any effect
    double error_after_effect_rate; //  5xx after the effect (lost reply)
    double drop_after_effect_rate;  //  connection closed after the effect
    double conflict_rate;           //  409 before any effect
    double rate_limit_rate;         //  429 with Retry-After, no effect
    int retry_after_seconds;        //  Retry-After value for 429
    int latency_msec;               //  Fixed delay before the effect
    int jitter_msec;                //  Added random delay
    erpsim_jitter_t jitter;         //  Its distribution
    double stall_rate;              //  Hold the request stall_msec
    int stall_msec;                 //  Stall length (longer than timeouts)
    double malformed_rate;          //  Reply with invalid JSON
    double truncated_rate;          //  Reply cut short, connection closed
} erpsim_faults_t;

//  Customer upsert: tenant, customerId, name (required), email, version,
//  address (optional).
json_t *
    erpsim_validate_customer (const char *body, size_t size,
                              erpsim_problem_t *problem);

//  Order create (update false: tenant, orderId, customerId, currency,
//  lines, totalMinor required; status, version optional) or update
//  (update true: customerId, currency, lines, totalMinor required;
//  tenant and orderId ignored). totalMinor must equal the sum of
//  quantity * unitPriceMinor.
json_t *
    erpsim_validate_order (const char *body, size_t size, bool update,
                           erpsim_problem_t *problem);

//  Status change: status (one of erpsim_validate_status_known), version.
json_t *
    erpsim_validate_status (const char *body, size_t size,
                            erpsim_problem_t *problem);

//  True if status is an order status we know.
bool
    erpsim_validate_status_known (const char *status);

//  Fills faults from a JSON object of fault knobs (camelCase names, see
//  docs/erpsim.md); absent knobs are 0. prefix names the object in
//  problems ("" at top level). Returns 0 or -1 with a problem.
int
    erpsim_validate_faults (const json_t *json, const char *prefix,
                            erpsim_faults_t *faults,
                            erpsim_problem_t *problem);

//  Fault configuration: an object whose keys are "*" or "METHOD /path"
//  (a route pattern) and whose values are fault objects. Returns it.
json_t *
    erpsim_validate_fault_config (const char *body, size_t size,
                                  erpsim_problem_t *problem);

//  Feed rates: pricesPerSecond, invoicesPerSecond, paymentsPerSecond
//  (numbers >= 0, all optional).
json_t *
    erpsim_validate_rates (const char *body, size_t size,
                           erpsim_problem_t *problem);

//  Generate now: prices, invoices, payments (integers >= 0, optional).
json_t *
    erpsim_validate_generate (const char *body, size_t size,
                              erpsim_problem_t *problem);

//  Parses query argument text (may be NULL: returns fallback) as an
//  integer in [minimum, maximum]. Returns 0 or -1 with a problem naming
//  name.
int
    erpsim_validate_query_int (const char *name, const char *text,
                               int64_t minimum, int64_t maximum,
                               int64_t fallback, int64_t *value,
                               erpsim_problem_t *problem);

#endif
