/*  =========================================================================
    cw_webshop - the reference webshop's half of the boundary contract

    Serves, over cw_http:
      POST /webshop/orders/{orderId}/payment-status     (ERP -> webshop)
      POST /webshop/orders/{orderId}/invoice-available  (ERP -> webshop)
      POST /webshop/products/prices                     (ERP -> webshop)
      POST /webshop/events          erp.*.v1 CloudEvents (structured JSON)
      GET  /webshop/orders/{orderId}/invoices           (customer)
      GET  /webshop/orders/{orderId}/invoices/{invoiceNumber}/document
      POST /shop/customers, POST /shop/orders,
      POST /shop/orders/{orderId}/status                (the shop's own API)
    The ERP -> webshop endpoints need a bearer token (cw_token); each is
    de-duplicated through shop.inbox by its idempotency key, and applies
    its change in the same transaction as the inbox row. The shop's own
    API writes the domain rows and the outbox event in one transaction.
    docs/webshop.md describes every endpoint.
    =========================================================================
*/
#ifndef CW_WEBSHOP_H_INCLUDED
#define CW_WEBSHOP_H_INCLUDED

#include "cw_token.h"

#include <stddef.h>

#define CW_WEBSHOP_POOL_DEFAULT 4         //  Database connections
#define CW_WEBSHOP_FETCH_TIMEOUT 10000    //  Document fetch, msec
#define CW_WEBSHOP_DOCUMENT_MAX 20971520  //  Largest document, bytes

typedef struct _cw_webshop_t cw_webshop_t;

typedef struct {
    const char *host;               //  Address to listen on
    int port;                       //  Port, 0 = any free one
    const char *db_uri;             //  libpq URI (role cw_webshop)
    cw_token_verifier_t *verifier;  //  Checks callers, borrowed
    int pool_size;                  //  Database connections
    long fetch_timeout_msec;        //  Document fetch timeout
    const char *source;             //  CloudEvents source of our events
} cw_webshop_config_t;

//  Connects to the database (pool_size connections). Returns NULL with a
//  message in error[size] when it cannot. Nothing listens yet.
//  Caller owns return value and must destroy it when done.
cw_webshop_t *
cw_webshop_new (const cw_webshop_config_t *config, char *error, size_t size);

//  Stops serving, closes connections, frees; nulls the pointer.
void cw_webshop_destroy (cw_webshop_t **self_p);

//  Starts serving HTTP. Returns 0 or -1 with a message in error[size].
int cw_webshop_start (cw_webshop_t *self, char *error, size_t size);

//  Bound port after start.
int cw_webshop_port (cw_webshop_t *self);

//  Writes the bound port to path (atomically). Returns 0 or -1.
int cw_webshop_write_port_file (cw_webshop_t *self,
                                const char *path,
                                char *error,
                                size_t size);

#endif
