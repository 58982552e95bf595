/*  =========================================================================
    erpsim_validate - request validation for the ERP simulator (pure)
    =========================================================================
*/
#include "erpsim_validate.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX 128                      //  Longest identifier, bytes
#define TENANT_MAX 64                   //  Longest tenant id, bytes
#define TEXT_MAX 200                    //  Longest free text, bytes
#define EMAIL_MAX 254                   //  Longest email address, bytes
#define VERSION_MAX 9007199254740991LL  //  Largest version (2^53 - 1)

static const char *s_statuses[] = {
    "new", "confirmed", "shipped", "delivered", "cancelled", "completed", NULL};

static void
s_problem (erpsim_problem_t *problem,
           int status,
           const char *slug,
           const char *title,
           const char *field,
           const char *format,
           ...)
{
    problem->status = status;
    snprintf (problem->slug, sizeof (problem->slug), "%s", slug);
    snprintf (problem->title, sizeof (problem->title), "%s", title);
    snprintf (problem->field, sizeof (problem->field), "%s", field);
    va_list args;
    va_start (args, format);
    vsnprintf (problem->detail, sizeof (problem->detail), format, args);
    va_end (args);
}

static void
s_missing (erpsim_problem_t *problem, const char *field)
{
    s_problem (problem, 422, "missing-field", "Missing Field", field,
               "field \"%s\" is required", field);
}

static void
s_wrong_type (erpsim_problem_t *problem, const char *field, const char *type)
{
    s_problem (problem, 422, "wrong-type", "Wrong Type", field,
               "field \"%s\" must be %s", field, type);
}

static void
s_invalid (erpsim_problem_t *problem, const char *field, const char *why)
{
    s_problem (problem, 422, "invalid-value", "Invalid Value", field,
               "field \"%s\" %s", field, why);
}

//  Parses body as a JSON object.
static json_t *
s_parse (const char *body, size_t size, erpsim_problem_t *problem)
{
    json_error_t error;
    json_t *json = json_loadb (body, size, JSON_REJECT_DUPLICATES, &error);
    if (!json) {
        s_problem (problem, 400, "invalid-json", "Invalid JSON", "",
                   "invalid JSON at line %d, column %d (byte %d): %s",
                   error.line, error.column, error.position, error.text);
        return NULL;
    }
    if (!json_is_object (json)) {
        s_problem (problem, 422, "wrong-type", "Wrong Type", "",
                   "request body must be a JSON object");
        json_decref (json);
        return NULL;
    }
    return json;
}

static void
s_path (char *path, size_t size, const char *prefix, const char *name)
{
    if (prefix && *prefix)
        snprintf (path, size, "%s.%s", prefix, name);
    else
        snprintf (path, size, "%s", name);
}

//  Copies string member name (length min..max, no control characters)
//  from source to target. Returns 0, or -1 with a problem.
static int
s_string (const json_t *source,
          const char *prefix,
          const char *name,
          bool required,
          size_t min,
          size_t max,
          json_t *target,
          erpsim_problem_t *problem)
{
    char path[128];
    s_path (path, sizeof (path), prefix, name);
    json_t *value = json_object_get (source, name);
    if (!value || json_is_null (value)) {
        if (required) {
            s_missing (problem, path);
            return -1;
        }
        return 0;
    }
    if (!json_is_string (value)) {
        s_wrong_type (problem, path, "a string");
        return -1;
    }
    const char *text = json_string_value (value);
    size_t length = json_string_length (value);
    if (length < min || length > max) {
        char why[64];
        snprintf (why, sizeof (why), "must be %zu to %zu bytes long", min, max);
        s_invalid (problem, path, why);
        return -1;
    }
    for (size_t index = 0; index < length; index++)
        if ((unsigned char) text[index] < 0x20 || text[index] == 0x7f) {
            s_invalid (problem, path, "must not hold control characters");
            return -1;
        }
    json_object_set_new (target, name, json_stringn (text, length));
    return 0;
}

//  Copies integer member name in [min, max]. Floats are refused.
static int
s_integer (const json_t *source,
           const char *prefix,
           const char *name,
           bool required,
           json_int_t min,
           json_int_t max,
           json_t *target,
           erpsim_problem_t *problem)
{
    char path[128];
    s_path (path, sizeof (path), prefix, name);
    json_t *value = json_object_get (source, name);
    if (!value || json_is_null (value)) {
        if (required) {
            s_missing (problem, path);
            return -1;
        }
        return 0;
    }
    if (!json_is_integer (value)) {
        s_wrong_type (problem, path, "an integer");
        return -1;
    }
    json_int_t number = json_integer_value (value);
    if (number < min || number > max) {
        char why[96];
        snprintf (why, sizeof (why), "must be between %lld and %lld",
                  (long long) min, (long long) max);
        s_invalid (problem, path, why);
        return -1;
    }
    if (target)
        json_object_set_new (target, name, json_integer (number));
    return 0;
}

//  Reads number member name in [min, max] (integers accepted too).
static int
s_number (const json_t *source,
          const char *prefix,
          const char *name,
          double min,
          double max,
          double *result,
          erpsim_problem_t *problem)
{
    char path[128];
    s_path (path, sizeof (path), prefix, name);
    json_t *value = json_object_get (source, name);
    *result = 0;
    if (!value || json_is_null (value))
        return 0;
    if (!json_is_number (value)) {
        s_wrong_type (problem, path, "a number");
        return -1;
    }
    double number = json_number_value (value);
    if (!(number >= min && number <= max)) {
        char why[96];
        snprintf (why, sizeof (why), "must be between %g and %g", min, max);
        s_invalid (problem, path, why);
        return -1;
    }
    *result = number;
    return 0;
}

static int
s_currency (const json_t *source, json_t *target, erpsim_problem_t *problem)
{
    if (s_string (source, "", "currency", true, 3, 3, target, problem))
        return -1;
    const char *code = json_string_value (json_object_get (target, "currency"));
    for (int index = 0; index < 3; index++)
        if (code[index] < 'A' || code[index] > 'Z') {
            s_invalid (problem, "currency",
                       "must be an ISO 4217 code of three capital letters");
            return -1;
        }
    return 0;
}

json_t *
erpsim_validate_customer (const char *body,
                          size_t size,
                          erpsim_problem_t *problem)
{
    assert (body || size == 0);
    assert (problem);
    json_t *source = s_parse (body, size, problem);
    if (!source)
        return NULL;
    json_t *customer = json_object ();
    int rc =
        s_string (source, "", "tenant", true, 1, TENANT_MAX, customer, problem);
    if (!rc)
        rc = s_string (source, "", "customerId", true, 1, ID_MAX, customer,
                       problem);
    if (!rc)
        rc =
            s_string (source, "", "name", true, 1, TEXT_MAX, customer, problem);
    if (!rc)
        rc = s_string (source, "", "email", false, 3, EMAIL_MAX, customer,
                       problem);
    if (!rc && json_object_get (customer, "email")
        && !strchr (json_string_value (json_object_get (customer, "email")),
                    '@')) {
        s_invalid (problem, "email", "must be an email address");
        rc = -1;
    }
    if (!rc)
        rc = s_integer (source, "", "version", false, 0, VERSION_MAX, customer,
                        problem);
    json_t *address = json_object_get (source, "address");
    if (!rc && address && !json_is_null (address)) {
        if (!json_is_object (address)) {
            s_wrong_type (problem, "address", "an object");
            rc = -1;
        }
        else {
            json_t *copy = json_object ();
            const char *fields[] = {"line1", "line2",   "postalCode",
                                    "city",  "country", NULL};
            for (int index = 0; !rc && fields[index]; index++)
                rc = s_string (address, "address", fields[index], false, 0,
                               TEXT_MAX, copy, problem);
            json_object_set_new (customer, "address", copy);
        }
    }
    json_decref (source);
    if (rc)
        json_decref (customer);
    return rc ? NULL : customer;
}

static int
s_lines (const json_t *source, json_t *order, erpsim_problem_t *problem)
{
    json_t *lines = json_object_get (source, "lines");
    if (!lines || json_is_null (lines)) {
        s_missing (problem, "lines");
        return -1;
    }
    if (!json_is_array (lines)) {
        s_wrong_type (problem, "lines", "an array");
        return -1;
    }
    size_t count = json_array_size (lines);
    if (count < 1 || count > ERPSIM_LINES_MAX) {
        char why[64];
        snprintf (why, sizeof (why), "must hold 1 to %d lines",
                  ERPSIM_LINES_MAX);
        s_invalid (problem, "lines", why);
        return -1;
    }
    json_t *copies = json_array ();
    json_object_set_new (order, "lines", copies);
    long long total = 0;
    for (size_t index = 0; index < count; index++) {
        char prefix[32];
        snprintf (prefix, sizeof (prefix), "lines[%zu]", index);
        json_t *line = json_array_get (lines, index);
        if (!json_is_object (line)) {
            s_wrong_type (problem, prefix, "an object");
            return -1;
        }
        json_t *copy = json_object ();
        json_array_append_new (copies, copy);
        if (s_string (line, prefix, "articleNumber", true, 1, ID_MAX, copy,
                      problem)
            || s_integer (line, prefix, "quantity", true, 1,
                          ERPSIM_QUANTITY_MAX, copy, problem)
            || s_integer (line, prefix, "unitPriceMinor", true, 0,
                          ERPSIM_MINOR_MAX, copy, problem))
            return -1;
        //  Keep the running total within ERPSIM_MINOR_MAX (no overflow)
        long long quantity =
            (long long) json_integer_value (json_object_get (copy, "quantity"));
        long long unit = (long long) json_integer_value (
            json_object_get (copy, "unitPriceMinor"));
        if (unit != 0 && quantity > (ERPSIM_MINOR_MAX - total) / unit) {
            s_invalid (problem, prefix, "makes the order total too large");
            return -1;
        }
        total += quantity * unit;
    }
    if (s_integer (source, "", "totalMinor", true, 0, ERPSIM_MINOR_MAX, order,
                   problem))
        return -1;
    long long given =
        (long long) json_integer_value (json_object_get (order, "totalMinor"));
    if (given != total) {
        char why[96];
        snprintf (why, sizeof (why), "is %lld but the lines add up to %lld",
                  given, total);
        s_invalid (problem, "totalMinor", why);
        return -1;
    }
    return 0;
}

bool
erpsim_validate_status_known (const char *status)
{
    assert (status);
    for (int index = 0; s_statuses[index]; index++)
        if (strcmp (status, s_statuses[index]) == 0)
            return true;
    return false;
}

static int
s_status (const json_t *source,
          bool required,
          json_t *target,
          erpsim_problem_t *problem)
{
    if (s_string (source, "", "status", required, 1, 32, target, problem))
        return -1;
    json_t *status = json_object_get (target, "status");
    if (status && !erpsim_validate_status_known (json_string_value (status))) {
        s_invalid (problem, "status",
                   "must be one of new, confirmed, shipped, delivered, "
                   "cancelled, completed");
        return -1;
    }
    return 0;
}

json_t *
erpsim_validate_order (const char *body,
                       size_t size,
                       bool update,
                       erpsim_problem_t *problem)
{
    assert (body || size == 0);
    assert (problem);
    json_t *source = s_parse (body, size, problem);
    if (!source)
        return NULL;
    json_t *order = json_object ();
    int rc = 0;
    if (!update) {
        rc = s_string (source, "", "tenant", true, 1, TENANT_MAX, order,
                       problem);
        if (!rc)
            rc = s_string (source, "", "orderId", true, 1, ID_MAX, order,
                           problem);
    }
    if (!rc)
        rc = s_string (source, "", "customerId", true, 1, ID_MAX, order,
                       problem);
    if (!rc)
        rc = s_currency (source, order, problem);
    if (!rc)
        rc = s_lines (source, order, problem);
    if (!rc && !update)
        rc = s_status (source, false, order, problem);
    if (!rc)
        rc = s_integer (source, "", "version", false, 0, VERSION_MAX, order,
                        problem);
    json_decref (source);
    if (rc)
        json_decref (order);
    return rc ? NULL : order;
}

json_t *
erpsim_validate_status (const char *body,
                        size_t size,
                        erpsim_problem_t *problem)
{
    assert (body || size == 0);
    assert (problem);
    json_t *source = s_parse (body, size, problem);
    if (!source)
        return NULL;
    json_t *status = json_object ();
    int rc = s_status (source, true, status, problem);
    if (!rc)
        rc = s_integer (source, "", "version", false, 0, VERSION_MAX, status,
                        problem);
    json_decref (source);
    if (rc)
        json_decref (status);
    return rc ? NULL : status;
}

static int
s_delay (const json_t *source,
         const char *prefix,
         const char *name,
         int *result,
         erpsim_problem_t *problem)
{
    json_t *holder = json_object ();
    int rc = s_integer (source, prefix, name, false, 0, ERPSIM_DELAY_MAX_MSEC,
                        holder, problem);
    json_t *value = json_object_get (holder, name);
    *result = value ? (int) json_integer_value (value) : 0;
    json_decref (holder);
    return rc;
}

int
erpsim_validate_faults (const json_t *json,
                        const char *prefix,
                        erpsim_faults_t *faults,
                        erpsim_problem_t *problem)
{
    assert (prefix);
    assert (faults);
    assert (problem);
    memset (faults, 0, sizeof (*faults));
    if (!json_is_object (json)) {
        s_wrong_type (problem, *prefix ? prefix : "faults", "an object");
        return -1;
    }
    const char *known[] = {"errorRate",
                           "errorAfterEffectRate",
                           "dropAfterEffectRate",
                           "conflictRate",
                           "rateLimitRate",
                           "retryAfterSeconds",
                           "latencyMs",
                           "jitterMs",
                           "jitter",
                           "stallRate",
                           "stallMs",
                           "malformedRate",
                           "truncatedRate",
                           NULL};
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) json, key, value)
    {
        bool found = false;
        for (int index = 0; known[index] && !found; index++)
            found = strcmp (key, known[index]) == 0;
        if (!found) {
            char path[128];
            s_path (path, sizeof (path), prefix, key);
            s_problem (problem, 422, "unknown-field", "Unknown Field", path,
                       "unknown fault knob \"%s\"", path);
            return -1;
        }
    }
    if (s_number (json, prefix, "errorRate", 0, 1, &faults->error_rate, problem)
        || s_number (json, prefix, "errorAfterEffectRate", 0, 1,
                     &faults->error_after_effect_rate, problem)
        || s_number (json, prefix, "dropAfterEffectRate", 0, 1,
                     &faults->drop_after_effect_rate, problem)
        || s_number (json, prefix, "conflictRate", 0, 1, &faults->conflict_rate,
                     problem)
        || s_number (json, prefix, "rateLimitRate", 0, 1,
                     &faults->rate_limit_rate, problem)
        || s_number (json, prefix, "stallRate", 0, 1, &faults->stall_rate,
                     problem)
        || s_number (json, prefix, "malformedRate", 0, 1,
                     &faults->malformed_rate, problem)
        || s_number (json, prefix, "truncatedRate", 0, 1,
                     &faults->truncated_rate, problem)
        || s_delay (json, prefix, "latencyMs", &faults->latency_msec, problem)
        || s_delay (json, prefix, "jitterMs", &faults->jitter_msec, problem)
        || s_delay (json, prefix, "stallMs", &faults->stall_msec, problem))
        return -1;
    json_t *holder = json_object ();
    int rc = s_integer (json, prefix, "retryAfterSeconds", false, 0, 86400,
                        holder, problem);
    json_t *retry = json_object_get (holder, "retryAfterSeconds");
    faults->retry_after_seconds = retry ? (int) json_integer_value (retry) : 1;
    if (!rc)
        rc = s_string (json, prefix, "jitter", false, 1, 16, holder, problem);
    json_t *jitter = json_object_get (holder, "jitter");
    if (!rc && jitter) {
        if (strcmp (json_string_value (jitter), "exponential") == 0)
            faults->jitter = ERPSIM_JITTER_EXPONENTIAL;
        else if (strcmp (json_string_value (jitter), "uniform") == 0)
            faults->jitter = ERPSIM_JITTER_UNIFORM;
        else {
            char path[128];
            s_path (path, sizeof (path), prefix, "jitter");
            s_invalid (problem, path, "must be \"uniform\" or \"exponential\"");
            rc = -1;
        }
    }
    json_decref (holder);
    return rc;
}

//  True if key is "*" or "METHOD /path" with a known method.
static bool
s_route_key (const char *key)
{
    if (strcmp (key, "*") == 0)
        return true;
    const char *methods[] = {"GET ", "POST ", "PUT ", "DELETE ", "* ", NULL};
    for (int index = 0; methods[index]; index++) {
        size_t length = strlen (methods[index]);
        if (strncmp (key, methods[index], length) == 0)
            return key[length] == '/' && !strchr (key + length, ' ');
    }
    return false;
}

json_t *
erpsim_validate_fault_config (const char *body,
                              size_t size,
                              erpsim_problem_t *problem)
{
    assert (body || size == 0);
    assert (problem);
    json_t *source = s_parse (body, size, problem);
    if (!source)
        return NULL;
    const char *key;
    json_t *value;
    int rc = 0;
    json_object_foreach (source, key, value)
    {
        if (strlen (key) > 96 || !s_route_key (key)) {
            s_problem (problem, 422, "invalid-value", "Invalid Value", "",
                       "fault route \"%.96s\" must be \"*\" or \"METHOD "
                       "/path/pattern\"",
                       key);
            rc = -1;
            break;
        }
        erpsim_faults_t faults;
        if (erpsim_validate_faults (value, key, &faults, problem)) {
            rc = -1;
            break;
        }
    }
    if (rc) {
        json_decref (source);
        return NULL;
    }
    return source;
}

json_t *
erpsim_validate_rates (const char *body, size_t size, erpsim_problem_t *problem)
{
    assert (body || size == 0);
    assert (problem);
    json_t *source = s_parse (body, size, problem);
    if (!source)
        return NULL;
    json_t *rates = json_object ();
    const char *names[] = {"pricesPerSecond", "invoicesPerSecond",
                           "paymentsPerSecond", NULL};
    int rc = 0;
    for (int index = 0; !rc && names[index]; index++) {
        double rate;
        rc = s_number (source, "", names[index], 0, ERPSIM_RATE_MAX, &rate,
                       problem);
        if (!rc && json_object_get (source, names[index]))
            json_object_set_new (rates, names[index], json_real (rate));
    }
    json_decref (source);
    if (rc)
        json_decref (rates);
    return rc ? NULL : rates;
}

json_t *
erpsim_validate_generate (const char *body,
                          size_t size,
                          erpsim_problem_t *problem)
{
    assert (body || size == 0);
    assert (problem);
    json_t *source = s_parse (body, size, problem);
    if (!source)
        return NULL;
    json_t *counts = json_object ();
    const char *names[] = {"prices", "invoices", "payments", NULL};
    int rc = 0;
    for (int index = 0; !rc && names[index]; index++)
        rc = s_integer (source, "", names[index], false, 0, ERPSIM_GENERATE_MAX,
                        counts, problem);
    json_decref (source);
    if (rc)
        json_decref (counts);
    return rc ? NULL : counts;
}

int
erpsim_validate_query_int (const char *name,
                           const char *text,
                           int64_t minimum,
                           int64_t maximum,
                           int64_t fallback,
                           int64_t *value,
                           erpsim_problem_t *problem)
{
    assert (name);
    assert (value);
    assert (problem);
    if (!text) {
        *value = fallback;
        return 0;
    }
    char *end;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno || end == text || *end != '\0' || number < minimum
        || number > maximum) {
        s_problem (problem, 400, "invalid-query", "Invalid Query Argument",
                   name,
                   "query argument \"%s\" must be an integer between %lld "
                   "and %lld",
                   name, (long long) minimum, (long long) maximum);
        return -1;
    }
    *value = number;
    return 0;
}
