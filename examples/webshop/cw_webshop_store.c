/*  =========================================================================
    cw_webshop_store - all SQL of the reference webshop (schema shop)
    =========================================================================
*/
#include "cw_webshop_store.h"
#include "cw_log.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_INT_SIZE 24  //  Room for an int64 as text

struct _cw_webshop_store_t {
    cw_pg_t **connections;  //  All connections, owned
    bool *busy;             //  busy[i]: connections[i] is lent out
    int size;               //  Number of connections
    pthread_mutex_t mutex;  //  Guards busy
    pthread_cond_t freed;   //  Signalled when one is released
};

typedef struct {
    const char *name;  //  Statement name
    const char *sql;   //  Its text
    int nparams;       //  Parameters
} s_statement_t;

static const s_statement_t s_statements[] = {
    {"inbox_claim",
     "INSERT INTO shop.inbox (idempotency_key, event_type, response_status, "
     "request_sha256, correlation_id) VALUES ($1, $2, 0, $3, $4) "
     "ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1",
     4},
    {"inbox_finish",
     "UPDATE shop.inbox SET response_status = $2, response_body = $3, "
     "processed_at = now() WHERE idempotency_key = $1",
     3},
    {"inbox_get",
     "SELECT response_status, response_body, request_sha256 "
     "FROM shop.inbox WHERE idempotency_key = $1",
     1},
    {"outbox_add",
     "INSERT INTO shop.outbox (event_type, tenant, idempotency_key, "
     "correlation_id, payload) VALUES ($1, $2, $3, $4, $5::jsonb)",
     5},
    {"customer_lock",
     "SELECT email, name, version FROM shop.customers "
     "WHERE tenant = $1 AND customer_id = $2 FOR UPDATE",
     2},
    {"customer_insert",
     "INSERT INTO shop.customers (tenant, customer_id, email, name, version) "
     "VALUES ($1, $2, $3, $4, 1)",
     4},
    {"customer_update",
     "UPDATE shop.customers SET email = $3, name = $4, version = version + 1, "
     "updated_at = now() WHERE tenant = $1 AND customer_id = $2 "
     "RETURNING version",
     4},
    {"customer_synced",
     "UPDATE shop.customers SET erp_customer_id = $3, updated_at = now() "
     "WHERE tenant = $1 AND customer_id = $2",
     3},
    {"order_tenant", "SELECT tenant FROM shop.orders WHERE order_id = $1", 1},
    {"order_id_lock",
     "SELECT pg_advisory_xact_lock (hashtext ('shop.orders'), hashtext ($1))",
     1},
    {"order_create",
     "INSERT INTO shop.orders (tenant, order_id, customer_id, currency, "
     "total_minor, status, version) VALUES ($1, $2, $3, $4, $5, $6, 1) "
     "ON CONFLICT (tenant, order_id) DO NOTHING RETURNING 1",
     6},
    {"order_line_add",
     "INSERT INTO shop.order_lines (tenant, order_id, line_no, "
     "article_number, quantity, unit_price_minor, line_total_minor) "
     "VALUES ($1, $2, $3, $4, $5, $6, $7)",
     7},
    {"order_lock",
     "SELECT tenant, status FROM shop.orders WHERE order_id = $1 FOR UPDATE",
     1},
    {"order_set_status",
     "UPDATE shop.orders SET status = $3, version = version + 1, "
     "updated_at = now() WHERE tenant = $1 AND order_id = $2 "
     "RETURNING version",
     3},
    {"order_synced",
     "UPDATE shop.orders SET erp_order_id = $3, updated_at = now() "
     "WHERE tenant = $1 AND order_id = $2",
     3},
    {"payment_apply",
     "INSERT INTO shop.payments AS p (tenant, order_id, status, "
     "external_version, amount_minor, currency) "
     "SELECT tenant, order_id, $3, $4, COALESCE ($5::bigint, total_minor), "
     "CASE WHEN $5::bigint IS NULL THEN currency ELSE $6::char(3) END "
     "FROM shop.orders "
     "WHERE tenant = $1 AND order_id = $2 "
     "ON CONFLICT (tenant, order_id) DO UPDATE SET status = EXCLUDED.status, "
     "external_version = EXCLUDED.external_version, amount_minor = "
     "EXCLUDED.amount_minor, currency = EXCLUDED.currency, updated_at = now() "
     "WHERE p.external_version < EXCLUDED.external_version RETURNING 1",
     6},
    {"payment_order",
     "UPDATE shop.orders SET payment_status = $3, payment_version = $4, "
     "updated_at = now() WHERE tenant = $1 AND order_id = $2",
     4},
    {"payment_version",
     "SELECT external_version FROM shop.payments "
     "WHERE tenant = $1 AND order_id = $2",
     2},
    {"invoice_apply",
     "INSERT INTO shop.order_documents AS d (tenant, order_id, "
     "invoice_number, invoice_id, external_version, document_url, "
     "document_token) VALUES ($1, $2, $3, $4, $5, $6, $7) "
     "ON CONFLICT (tenant, order_id, invoice_number) DO UPDATE SET "
     "invoice_id = EXCLUDED.invoice_id, external_version = "
     "EXCLUDED.external_version, document_url = EXCLUDED.document_url, "
     "document_token = EXCLUDED.document_token, pdf = NULL, "
     "linked_at = now() "
     "WHERE d.external_version < EXCLUDED.external_version RETURNING 1",
     7},
    {"price_apply",
     "INSERT INTO shop.product_prices AS p (article_number, price_list, "
     "external_version, amount_minor, currency, effective_at) "
     "VALUES ($1, $2, $3, $4, $5, COALESCE ($6::timestamptz, now())) "
     "ON CONFLICT (article_number, price_list) DO UPDATE SET "
     "external_version = EXCLUDED.external_version, amount_minor = "
     "EXCLUDED.amount_minor, currency = EXCLUDED.currency, effective_at = "
     "EXCLUDED.effective_at "
     "WHERE p.external_version < EXCLUDED.external_version RETURNING 1",
     6},
    {"price_version",
     "SELECT external_version FROM shop.product_prices "
     "WHERE article_number = $1 AND price_list = $2",
     2},
    {"invoices",
     "SELECT invoice_number, invoice_id, external_version, "
     "to_char (linked_at AT TIME ZONE 'UTC', "
     "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), pdf IS NOT NULL "
     "FROM shop.order_documents WHERE tenant = $1 AND order_id = $2 "
     "ORDER BY invoice_number",
     2},
    {"document_get",
     "SELECT encode (pdf, 'hex'), document_url, document_token, "
     "external_version FROM shop.order_documents "
     "WHERE tenant = $1 AND order_id = $2 AND invoice_number = $3",
     3},
    {"document_put",
     "UPDATE shop.order_documents SET pdf = decode ($4, 'hex') "
     "WHERE tenant = $1 AND order_id = $2 AND invoice_number = $3 "
     "AND external_version = $5",
     5},
    {NULL, NULL, 0}};

static char *
s_strdup (const char *text)
{
    if (!text)
        return NULL;
    char *copy = strdup (text);
    if (!copy)
        abort ();
    return copy;
}

static void
s_int_text (int64_t value, char *text)
{
    snprintf (text, STORE_INT_SIZE, "%" PRId64, value);
}

static int
s_parse_int (const char *text, int64_t *value)
{
    if (!text)
        return -1;
    char *end = NULL;
    errno = 0;
    long long parsed = strtoll (text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *value = (int64_t) parsed;
    return 0;
}

//  Logs a failed statement (never its parameters: they may be personal).
static int
s_failed (cw_pg_t *pg, const char *statement)
{
    cw_log (CW_LOG_ERROR, "statement_failed", "statement failed", "statement",
            statement, "sqlstate", cw_pg_sqlstate (pg), "failure",
            cw_pg_failure_name (cw_pg_failure (pg)), "detail", cw_pg_error (pg),
            NULL);
    return -1;
}

//  Runs a statement; returns the rows (caller destroys) or NULL on error.
static cw_pg_rows_t *
s_exec (cw_pg_t *pg, const char *name, int nparams, const char *const *values)
{
    cw_pg_rows_t *rows = NULL;
    if (cw_pg_exec (pg, name, nparams, values, &rows) != 0) {
        cw_pg_rows_destroy (&rows);
        s_failed (pg, name);
        return NULL;
    }
    return rows;
}

//  Runs a statement; returns rows affected/returned, or -1.
static int64_t
s_exec_count (cw_pg_t *pg,
              const char *name,
              int nparams,
              const char *const *values)
{
    cw_pg_rows_t *rows = s_exec (pg, name, nparams, values);
    if (!rows)
        return -1;
    int64_t count = cw_pg_rows_affected (rows);
    cw_pg_rows_destroy (&rows);
    return count;
}

cw_webshop_store_t *
cw_webshop_store_new (const char *uri, int size, char *error, size_t error_size)
{
    assert (uri);
    assert (size > 0);
    cw_webshop_store_t *self =
        (cw_webshop_store_t *) calloc (1, sizeof (cw_webshop_store_t));
    if (!self)
        abort ();
    self->connections = (cw_pg_t **) calloc ((size_t) size, sizeof (cw_pg_t *));
    self->busy = (bool *) calloc ((size_t) size, sizeof (bool));
    if (!self->connections || !self->busy)
        abort ();
    self->size = size;
    pthread_mutex_init (&self->mutex, NULL);
    pthread_cond_init (&self->freed, NULL);
    for (int index = 0; index < size; index++) {
        cw_pg_t *pg = cw_pg_new (uri);
        self->connections[index] = pg;
        if (cw_pg_connect (pg) != 0) {
            snprintf (error, error_size, "could not connect to database: %s",
                      cw_pg_error (pg));
            cw_webshop_store_destroy (&self);
            return NULL;
        }
        for (const s_statement_t *statement = s_statements; statement->name;
             statement++)
            if (cw_pg_prepare (pg, statement->name, statement->sql,
                               statement->nparams)
                != 0) {
                snprintf (error, error_size,
                          "could not prepare statement "
                          "\"%s\": %s",
                          statement->name, cw_pg_error (pg));
                cw_webshop_store_destroy (&self);
                return NULL;
            }
    }
    return self;
}

void
cw_webshop_store_destroy (cw_webshop_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cw_webshop_store_t *self = *self_p;
    for (int index = 0; index < self->size; index++)
        cw_pg_destroy (&self->connections[index]);
    free (self->connections);
    free (self->busy);
    pthread_mutex_destroy (&self->mutex);
    pthread_cond_destroy (&self->freed);
    free (self);
    *self_p = NULL;
}

cw_pg_t *
cw_webshop_store_acquire (cw_webshop_store_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    cw_pg_t *pg = NULL;
    while (!pg) {
        for (int index = 0; index < self->size && !pg; index++)
            if (!self->busy[index]) {
                self->busy[index] = true;
                pg = self->connections[index];
            }
        if (!pg)
            pthread_cond_wait (&self->freed, &self->mutex);
    }
    pthread_mutex_unlock (&self->mutex);
    return pg;
}

void
cw_webshop_store_release (cw_webshop_store_t *self, cw_pg_t *pg)
{
    assert (self);
    assert (pg);
    if (cw_pg_in_transaction (pg))
        cw_pg_rollback (pg);
    pthread_mutex_lock (&self->mutex);
    for (int index = 0; index < self->size; index++)
        if (self->connections[index] == pg)
            self->busy[index] = false;
    pthread_cond_signal (&self->freed);
    pthread_mutex_unlock (&self->mutex);
}

int
cw_webshop_store_inbox_claim (cw_pg_t *pg,
                              const char *key,
                              const char *message_type,
                              const char *request_sha256,
                              const char *correlation_id)
{
    const char *values[] = {key, message_type, request_sha256, correlation_id};
    int64_t count = s_exec_count (pg, "inbox_claim", 4, values);
    return count < 0 ? -1 : count > 0 ? 1 : 0;
}

int
cw_webshop_store_inbox_finish (cw_pg_t *pg,
                               const char *key,
                               int status,
                               const char *response_body)
{
    char status_text[STORE_INT_SIZE];
    s_int_text (status, status_text);
    const char *values[] = {key, status_text, response_body};
    return s_exec_count (pg, "inbox_finish", 3, values) == 1 ? 0 : -1;
}

int
cw_webshop_store_inbox_get (cw_pg_t *pg,
                            const char *key,
                            int *status,
                            char **response_body,
                            char **request_sha256)
{
    const char *values[] = {key};
    cw_pg_rows_t *rows = s_exec (pg, "inbox_get", 1, values);
    if (!rows)
        return -1;
    int found = cw_pg_rows_count (rows) > 0;
    if (found) {
        int64_t value = 0;
        s_parse_int (cw_pg_rows_value (rows, 0, 0), &value);
        *status = (int) value;
        *response_body = s_strdup (cw_pg_rows_value (rows, 0, 1));
        *request_sha256 = s_strdup (cw_pg_rows_value (rows, 0, 2));
    }
    cw_pg_rows_destroy (&rows);
    return found;
}

int
cw_webshop_store_outbox_add (cw_pg_t *pg,
                             const char *event_type,
                             const char *tenant_id,
                             const char *idempotency_key,
                             const char *correlation_id,
                             const char *envelope_json)
{
    const char *values[] = {event_type, tenant_id, idempotency_key,
                            correlation_id, envelope_json};
    return s_exec_count (pg, "outbox_add", 5, values) == 1 ? 0 : -1;
}

//  Reads a one-row int64 result column 0 of statement name.
static int
s_exec_int (cw_pg_t *pg,
            const char *name,
            int nparams,
            const char *const *values,
            int64_t *value)
{
    cw_pg_rows_t *rows = s_exec (pg, name, nparams, values);
    if (!rows)
        return -1;
    int rc = cw_pg_rows_count (rows) == 1
                     && s_parse_int (cw_pg_rows_value (rows, 0, 0), value) == 0
                 ? 0
                 : -1;
    cw_pg_rows_destroy (&rows);
    return rc;
}

int
cw_webshop_store_customer_upsert (cw_pg_t *pg,
                                  const char *tenant_id,
                                  const char *customer_id,
                                  const char *email,
                                  const char *name,
                                  int64_t *version,
                                  json_t *changed)
{
    const char *values[] = {tenant_id, customer_id, email, name};
    cw_pg_rows_t *rows = s_exec (pg, "customer_lock", 2, values);
    if (!rows)
        return -1;
    if (cw_pg_rows_count (rows) == 0) {
        cw_pg_rows_destroy (&rows);
        if (s_exec_count (pg, "customer_insert", 4, values) != 1)
            return -1;
        *version = 1;
        json_array_append_new (changed, json_string ("email"));
        json_array_append_new (changed, json_string ("name"));
        return 1;
    }
    bool email_changed = strcmp (cw_pg_rows_value (rows, 0, 0), email) != 0;
    bool name_changed = strcmp (cw_pg_rows_value (rows, 0, 1), name) != 0;
    int rc = s_parse_int (cw_pg_rows_value (rows, 0, 2), version);
    cw_pg_rows_destroy (&rows);
    if (rc)
        return -1;
    if (!email_changed && !name_changed)
        return 0;
    if (email_changed)
        json_array_append_new (changed, json_string ("email"));
    if (name_changed)
        json_array_append_new (changed, json_string ("name"));
    return s_exec_int (pg, "customer_update", 4, values, version) ? -1 : 1;
}

int
cw_webshop_store_customer_exists (cw_pg_t *pg,
                                  const char *tenant_id,
                                  const char *customer_id)
{
    const char *values[] = {tenant_id, customer_id};
    int64_t count = s_exec_count (pg, "customer_lock", 2, values);
    return count < 0 ? -1 : count > 0;
}

int
cw_webshop_store_customer_synced (cw_pg_t *pg,
                                  const char *tenant_id,
                                  const char *customer_id,
                                  const char *erp_id)
{
    const char *values[] = {tenant_id, customer_id, erp_id};
    int64_t count = s_exec_count (pg, "customer_synced", 3, values);
    return count < 0 ? -1 : count > 0;
}

int
cw_webshop_store_order_tenant (cw_pg_t *pg,
                               const char *order_id,
                               char **tenant_id)
{
    const char *values[] = {order_id};
    cw_pg_rows_t *rows = s_exec (pg, "order_tenant", 1, values);
    if (!rows)
        return -1;
    int count = cw_pg_rows_count (rows);
    if (count == 1)
        *tenant_id = s_strdup (cw_pg_rows_value (rows, 0, 0));
    cw_pg_rows_destroy (&rows);
    return count > 1 ? 2 : count;
}

int
cw_webshop_store_order_id_lock (cw_pg_t *pg, const char *order_id)
{
    const char *values[] = {order_id};
    return s_exec_count (pg, "order_id_lock", 1, values) < 0 ? -1 : 0;
}

int
cw_webshop_store_order_create (cw_pg_t *pg,
                               const char *tenant_id,
                               const char *order_id,
                               const char *customer_id,
                               const char *currency,
                               int64_t total_minor,
                               const char *status)
{
    char total[STORE_INT_SIZE];
    s_int_text (total_minor, total);
    const char *values[] = {tenant_id, order_id, customer_id,
                            currency,  total,    status};
    int64_t count = s_exec_count (pg, "order_create", 6, values);
    return count < 0 ? -1 : count > 0;
}

int
cw_webshop_store_order_line_add (cw_pg_t *pg,
                                 const char *tenant_id,
                                 const char *order_id,
                                 int line_number,
                                 const char *article_number,
                                 int64_t quantity,
                                 int64_t unit_price_minor)
{
    char line[STORE_INT_SIZE], count[STORE_INT_SIZE], price[STORE_INT_SIZE],
        total[STORE_INT_SIZE];
    s_int_text (line_number, line);
    s_int_text (quantity, count);
    s_int_text (unit_price_minor, price);
    s_int_text (quantity * unit_price_minor, total);
    const char *values[] = {tenant_id, order_id, line, article_number,
                            count,     price,    total};
    return s_exec_count (pg, "order_line_add", 7, values) == 1 ? 0 : -1;
}

int
cw_webshop_store_order_set_status (cw_pg_t *pg,
                                   const char *order_id,
                                   const char *status,
                                   char **tenant_id,
                                   char **previous_status,
                                   int64_t *version)
{
    const char *values[] = {order_id};
    cw_pg_rows_t *rows = s_exec (pg, "order_lock", 1, values);
    if (!rows)
        return -1;
    int count = cw_pg_rows_count (rows);
    if (count != 1) {
        cw_pg_rows_destroy (&rows);
        return count > 1 ? 2 : 0;
    }
    *tenant_id = s_strdup (cw_pg_rows_value (rows, 0, 0));
    *previous_status = s_strdup (cw_pg_rows_value (rows, 0, 1));
    cw_pg_rows_destroy (&rows);
    const char *update[] = {*tenant_id, order_id, status};
    return s_exec_int (pg, "order_set_status", 3, update, version) ? -1 : 1;
}

int
cw_webshop_store_order_synced (cw_pg_t *pg,
                               const char *tenant_id,
                               const char *order_id,
                               const char *erp_id)
{
    const char *values[] = {tenant_id, order_id, erp_id};
    int64_t count = s_exec_count (pg, "order_synced", 3, values);
    return count < 0 ? -1 : count > 0;
}

int
cw_webshop_store_payment_apply (cw_pg_t *pg,
                                const char *tenant_id,
                                const char *order_id,
                                const char *status,
                                int64_t external_version,
                                const int64_t *amount_minor,
                                const char *currency,
                                int64_t *current)
{
    char version[STORE_INT_SIZE], amount[STORE_INT_SIZE];
    s_int_text (external_version, version);
    if (amount_minor)
        s_int_text (*amount_minor, amount);
    const char *values[] = {
        tenant_id, order_id, status, version, amount_minor ? amount : NULL,
        currency};
    int64_t count = s_exec_count (pg, "payment_apply", 6, values);
    if (count < 0)
        return -1;
    if (count > 0) {
        const char *order[] = {tenant_id, order_id, status, version};
        if (s_exec_count (pg, "payment_order", 4, order) != 1)
            return -1;
    }
    if (s_exec_int (pg, "payment_version", 2, values, current))
        return -1;
    return count > 0;
}

int
cw_webshop_store_invoice_apply (cw_pg_t *pg,
                                const char *tenant_id,
                                const char *order_id,
                                const char *invoice_number,
                                const char *invoice_id,
                                int64_t external_version,
                                const char *document_url,
                                const char *document_token)
{
    char version[STORE_INT_SIZE];
    s_int_text (external_version, version);
    const char *values[] = {tenant_id, order_id,     invoice_number, invoice_id,
                            version,   document_url, document_token};
    int64_t count = s_exec_count (pg, "invoice_apply", 7, values);
    return count < 0 ? -1 : count > 0;
}

int
cw_webshop_store_price_apply (cw_pg_t *pg,
                              const char *article_number,
                              const char *price_list,
                              int64_t external_version,
                              int64_t amount_minor,
                              const char *currency,
                              const char *effective_at,
                              int64_t *current)
{
    char version[STORE_INT_SIZE], amount[STORE_INT_SIZE];
    s_int_text (external_version, version);
    s_int_text (amount_minor, amount);
    const char *values[] = {article_number, price_list, version,
                            amount,         currency,   effective_at};
    int64_t count = s_exec_count (pg, "price_apply", 6, values);
    if (count < 0 || s_exec_int (pg, "price_version", 2, values, current))
        return -1;
    return count > 0;
}

json_t *
cw_webshop_store_invoices (cw_pg_t *pg,
                           const char *tenant_id,
                           const char *order_id)
{
    const char *values[] = {tenant_id, order_id};
    cw_pg_rows_t *rows = s_exec (pg, "invoices", 2, values);
    if (!rows)
        return NULL;
    json_t *list = json_array ();
    for (int row = 0; row < cw_pg_rows_count (rows); row++) {
        int64_t version = 0;
        s_parse_int (cw_pg_rows_value (rows, row, 2), &version);
        json_t *item =
            json_pack ("{s:s, s:I, s:s, s:b}", "invoiceNumber",
                       cw_pg_rows_value (rows, row, 0), "externalVersion",
                       (json_int_t) version, "linkedAt",
                       cw_pg_rows_value (rows, row, 3), "documentStored",
                       strcmp (cw_pg_rows_value (rows, row, 4), "t") == 0);
        const char *invoice_id = cw_pg_rows_value (rows, row, 1);
        if (invoice_id)
            json_object_set_new (item, "invoiceId", json_string (invoice_id));
        json_array_append_new (list, item);
    }
    cw_pg_rows_destroy (&rows);
    return list;
}

int
cw_webshop_store_document_get (cw_pg_t *pg,
                               const char *tenant_id,
                               const char *order_id,
                               const char *invoice_number,
                               unsigned char **document,
                               size_t *size,
                               char **url,
                               char **token,
                               int64_t *version)
{
    const char *values[] = {tenant_id, order_id, invoice_number};
    cw_pg_rows_t *rows = s_exec (pg, "document_get", 3, values);
    if (!rows)
        return -1;
    *document = NULL;
    *size = 0;
    *url = NULL;
    *token = NULL;
    if (cw_pg_rows_count (rows) == 0) {
        cw_pg_rows_destroy (&rows);
        return 0;
    }
    const char *encoded = cw_pg_rows_value (rows, 0, 0);
    if (encoded) {
        size_t length = strlen (encoded);
        unsigned char *bytes = (unsigned char *) malloc (length / 2 + 1);
        if (!bytes)
            abort ();
        size_t decoded = 0;
        if (sodium_hex2bin (bytes, length / 2 + 1, encoded, length, NULL,
                            &decoded, NULL)
            != 0) {
            free (bytes);
            cw_pg_rows_destroy (&rows);
            return -1;
        }
        *document = bytes;
        *size = decoded;
    }
    *url = s_strdup (cw_pg_rows_value (rows, 0, 1));
    *token = s_strdup (cw_pg_rows_value (rows, 0, 2));
    int rc = s_parse_int (cw_pg_rows_value (rows, 0, 3), version);
    cw_pg_rows_destroy (&rows);
    return rc ? -1 : 1;
}

int
cw_webshop_store_document_put (cw_pg_t *pg,
                               const char *tenant_id,
                               const char *order_id,
                               const char *invoice_number,
                               const unsigned char *document,
                               size_t size,
                               int64_t version)
{
    char *encoded = (char *) malloc (size * 2 + 1);
    if (!encoded)
        abort ();
    sodium_bin2hex (encoded, size * 2 + 1, document, size);
    char version_text[STORE_INT_SIZE];
    s_int_text (version, version_text);
    const char *values[] = {tenant_id, order_id, invoice_number, encoded,
                            version_text};
    int64_t count = s_exec_count (pg, "document_put", 5, values);
    free (encoded);
    return count < 0 ? -1 : count > 0;
}
