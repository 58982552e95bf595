/*  =========================================================================
    cw_event - the events and sync-API bodies of the boundary contract,
    with a payload validator for each

    Pure: no I/O. Fields, types and status sets are listed in
    docs/envelope.md.
    =========================================================================
*/
#ifndef CW_EVENT_H_INCLUDED
#define CW_EVENT_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Limits of payload fields
#define CW_EVENT_ID_MAX 64             //  tenantId, orderId, sku... bytes
#define CW_EVENT_TEXT_MAX 256          //  Free text such as a name
#define CW_EVENT_URL_MAX 2048          //  documentUrl
#define CW_EVENT_TOKEN_MAX 512         //  documentToken
#define CW_EVENT_LINES_MAX 1000        //  Lines of one order
#define CW_EVENT_PRICES_MAX 1000       //  Prices in one push
#define CW_EVENT_FIELDS_MAX 64         //  changedFields entries
#define CW_EVENT_QUANTITY_MAX 1000000  //  Units on one order line
#define CW_EVENT_AMOUNT_MAX 1000000000000000LL  //  Minor units (10^15)

//  The sync API bodies, one per endpoint of the contract
typedef enum {
    CW_EVENT_ENDPOINT_ERP_CUSTOMERS,     //  POST /erp/customers
    CW_EVENT_ENDPOINT_ERP_ORDERS,        //  POST /erp/orders
    CW_EVENT_ENDPOINT_ERP_ORDER_STATUS,  //  POST /erp/orders/{orderId}/status
    CW_EVENT_ENDPOINT_WEBSHOP_PAYMENT_STATUS,  //  POST /webshop/orders/{orderId}/payment-status
    CW_EVENT_ENDPOINT_WEBSHOP_INVOICE_AVAILABLE,  //  POST /webshop/orders/{orderId}/invoice-available
    CW_EVENT_ENDPOINT_WEBSHOP_PRODUCT_PRICES,  //  POST /webshop/products/prices
    CW_EVENT_ENDPOINT_COUNT
} cw_event_endpoint_t;

//  One event type of the contract
typedef struct {
    const char *type;      //  Full type with version, "order.created.v1"
    const char *producer;  //  "webshop" or "erp-middleware"
    const char *summary;   //  One line, for docs and CLI output
} cw_event_info_t;

//  Number of event types of the contract (seven)
size_t cw_event_count (void);

//  Event type by index, 0 to cw_event_count () - 1; borrowed, static.
const cw_event_info_t *cw_event_at (size_t index);

//  Event type by its full type name, or NULL if not in the contract.
const cw_event_info_t *cw_event_find (const char *type);

//  True when text is an identifier as the contract has them (tenantId,
//  orderId, customerId...): 1 to CW_EVENT_ID_MAX letters, digits, '.',
//  '_' or '-'. They end up inside idempotency and ordering keys.
bool cw_event_id_valid (const char *text);

//  Check an event payload (the envelope's data) against the contract.
//  Returns 0 if valid, else -1 with reason naming the field as
//  "data.<path>", e.g. field "data.lines[2].quantity": must be an integer.
int cw_event_validate (const char *type,
                       const json_t *payload,
                       char *reason,
                       size_t reason_size);

//  HTTP method of an endpoint ("POST")
const char *cw_event_endpoint_method (cw_event_endpoint_t endpoint);

//  Path template of an endpoint, e.g. "/erp/orders/{orderId}/status"
const char *cw_event_endpoint_path (cw_event_endpoint_t endpoint);

//  Find the endpoint for a method and a request path (no query string).
//  If the path has an {orderId}, it is copied into order_id (which may be
//  NULL when the caller does not need it). Returns 0, or -1 if no endpoint
//  matches or the order id is not 1 to CW_EVENT_ID_MAX bytes of letters,
//  digits, '.', '_' and '-'.
int cw_event_endpoint_match (const char *method,
                             const char *path,
                             cw_event_endpoint_t *endpoint_p,
                             char *order_id,
                             size_t order_id_size);

//  Check a sync-API request body. Returns 0 if valid, else -1 with reason
//  naming the field, e.g. field "lines[0].unitPrice": must be an integer.
int cw_event_validate_body (cw_event_endpoint_t endpoint,
                            const json_t *body,
                            char *reason,
                            size_t reason_size);

#ifdef __cplusplus
}
#endif

#endif
