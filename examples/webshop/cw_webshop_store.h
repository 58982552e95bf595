/*  =========================================================================
    cw_webshop_store - all SQL of the reference webshop (schema shop)

    A pool of cw_pg connections shared by the HTTP threads: a handler
    takes one with _acquire, runs statements and transactions on it, and
    gives it back with _release. Each statement is a named prepared one
    (registered on every connection). Functions that change rows run
    inside the caller's transaction.
    =========================================================================
*/
#ifndef CW_WEBSHOP_STORE_H_INCLUDED
#define CW_WEBSHOP_STORE_H_INCLUDED

#include "cw_pg.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _cw_webshop_store_t cw_webshop_store_t;

//  Opens size connections to uri. Returns NULL with a message in
//  error[size] on failure. Caller owns return value and must destroy it.
cw_webshop_store_t *cw_webshop_store_new (const char *uri,
                                          int size,
                                          char *error,
                                          size_t error_size);

//  Closes every connection; nulls the pointer. Tolerates NULL.
void cw_webshop_store_destroy (cw_webshop_store_t **self_p);

//  Takes a free connection, waiting for one. Give it back with release.
cw_pg_t *cw_webshop_store_acquire (cw_webshop_store_t *self);

//  Gives a connection back (rolls back any open transaction).
void cw_webshop_store_release (cw_webshop_store_t *self, cw_pg_t *pg);

//  ---------------------------------------------------------------------
//  Inbox: one row per idempotency key

//  Claims key in shop.inbox (inside a transaction). Returns 1 when the
//  row is ours (new), 0 when the key exists (a concurrent holder of the
//  key is waited for first), -1 on a database error.
int cw_webshop_store_inbox_claim (cw_pg_t *pg,
                                  const char *key,
                                  const char *message_type,
                                  const char *request_sha256,
                                  const char *correlation_id);

//  Records the response of a claimed key. Returns 0 or -1.
int cw_webshop_store_inbox_finish (cw_pg_t *pg,
                                   const char *key,
                                   int status,
                                   const char *response_body);

//  Reads a stored response: status, body and request hash (caller frees
//  the strings). Returns 1 found, 0 absent, -1 error.
int cw_webshop_store_inbox_get (cw_pg_t *pg,
                                const char *key,
                                int *status,
                                char **response_body,
                                char **request_sha256);

//  ---------------------------------------------------------------------
//  Outbox

//  Adds an event (its whole CloudEvents envelope as JSON text) to
//  shop.outbox, inside the caller's transaction. Returns 0 or -1.
int cw_webshop_store_outbox_add (cw_pg_t *pg,
                                 const char *event_type,
                                 const char *tenant_id,
                                 const char *idempotency_key,
                                 const char *correlation_id,
                                 const char *envelope_json);

//  ---------------------------------------------------------------------
//  Domain. Functions returning "1 done, 0 not found, -1 error" run in the
//  caller's transaction; -1 leaves the failure in cw_pg_failure.

//  Creates a customer at version 1, or changes it (version + 1) when
//  email or name differ. Appends the names of changed fields to changed
//  (a JSON array). Returns 1 created or changed, 0 unchanged, -1 error.
int cw_webshop_store_customer_upsert (cw_pg_t *pg,
                                      const char *tenant_id,
                                      const char *customer_id,
                                      const char *email,
                                      const char *name,
                                      int64_t *version,
                                      json_t *changed);

//  1 when the customer exists (and locks it), 0 not, -1 error.
int cw_webshop_store_customer_exists (cw_pg_t *pg,
                                      const char *tenant_id,
                                      const char *customer_id);

//  Sets the ERP id of a customer. 1 changed, 0 unknown, -1 error.
int cw_webshop_store_customer_synced (cw_pg_t *pg,
                                      const char *tenant_id,
                                      const char *customer_id,
                                      const char *erp_id);

//  Finds the tenant of an order id (caller frees *tenant_id). 1 found,
//  0 unknown, 2 ambiguous (several tenants use the id), -1 error.
int cw_webshop_store_order_tenant (cw_pg_t *pg,
                                   const char *order_id,
                                   char **tenant_id);

//  Locks an order id for the rest of the transaction, in every tenant
//  (order ids are unique across tenants): taken before looking for the
//  id and creating the order. Returns 0 or -1.
int cw_webshop_store_order_id_lock (cw_pg_t *pg, const char *order_id);

//  Creates an order at version 1. 1 created, 0 exists already, -1 error.
int cw_webshop_store_order_create (cw_pg_t *pg,
                                   const char *tenant_id,
                                   const char *order_id,
                                   const char *customer_id,
                                   const char *currency,
                                   int64_t total_minor,
                                   const char *status);

//  Adds one order line (line total = quantity * unit price).
int cw_webshop_store_order_line_add (cw_pg_t *pg,
                                     const char *tenant_id,
                                     const char *order_id,
                                     int line_number,
                                     const char *article_number,
                                     int64_t quantity,
                                     int64_t unit_price_minor);

//  Changes an order's status, locking the row first. Fills the tenant and
//  previous status (caller frees both) and the new version. 1 changed,
//  0 unknown order, 2 ambiguous order id, -1 error.
int cw_webshop_store_order_set_status (cw_pg_t *pg,
                                       const char *order_id,
                                       const char *status,
                                       char **tenant_id,
                                       char **previous_status,
                                       int64_t *version);

//  Sets the ERP id of an order. 1 changed, 0 unknown, -1 error.
int cw_webshop_store_order_synced (cw_pg_t *pg,
                                   const char *tenant_id,
                                   const char *order_id,
                                   const char *erp_id);

//  Records a payment status (shop.payments and the order's
//  payment_status) unless an equal or newer external version is stored.
//  amount_minor NULL: the order's total and currency (currency unused).
//  1 applied, 0 stale (ignored), -1 error; *current: the stored version.
int cw_webshop_store_payment_apply (cw_pg_t *pg,
                                    const char *tenant_id,
                                    const char *order_id,
                                    const char *status,
                                    int64_t external_version,
                                    const int64_t *amount_minor,
                                    const char *currency,
                                    int64_t *current);

//  Links invoice metadata to an order unless an equal or newer external
//  version of that invoice is stored (a newer one drops the stored PDF).
//  1 applied, 0 stale, -1 error.
int cw_webshop_store_invoice_apply (cw_pg_t *pg,
                                    const char *tenant_id,
                                    const char *order_id,
                                    const char *invoice_number,
                                    const char *invoice_id,
                                    int64_t external_version,
                                    const char *document_url,
                                    const char *document_token);

//  Records a price unless an equal or newer one is stored (effective_at
//  NULL: now). 1 applied, 0 stale, -1 error; *current: stored version.
int cw_webshop_store_price_apply (cw_pg_t *pg,
                                  const char *article_number,
                                  const char *price_list,
                                  int64_t external_version,
                                  int64_t amount_minor,
                                  const char *currency,
                                  const char *effective_at,
                                  int64_t *current);

//  Lists an order's invoices as a JSON array, or NULL on error.
//  Caller owns return value.
json_t *cw_webshop_store_invoices (cw_pg_t *pg,
                                   const char *tenant_id,
                                   const char *order_id);

//  Reads one invoice's document: 1 found, 0 unknown invoice, -1 error.
//  *document (caller frees) is NULL while no copy is stored; *url and
//  *token (caller frees) tell where to fetch it; *version is the
//  invoice's external version they belong to.
int cw_webshop_store_document_get (cw_pg_t *pg,
                                   const char *tenant_id,
                                   const char *order_id,
                                   const char *invoice_number,
                                   unsigned char **document,
                                   size_t *size,
                                   char **url,
                                   char **token,
                                   int64_t *version);

//  Stores the fetched copy of a document unless the invoice has moved on
//  from version (a newer one arrived during the fetch). 1 stored,
//  0 not (another version, or the invoice is gone), -1 error.
int cw_webshop_store_document_put (cw_pg_t *pg,
                                   const char *tenant_id,
                                   const char *order_id,
                                   const char *invoice_number,
                                   const unsigned char *document,
                                   size_t size,
                                   int64_t version);

#endif
