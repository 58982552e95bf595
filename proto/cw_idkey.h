/*  =========================================================================
    cw_idkey - the six idempotency-key formats of the boundary contract

    customer:{tenantId}:{customerId}:{version}
    order:{tenantId}:{orderId}:{version}
    order-status:{tenantId}:{orderId}:{status}:{version}
    payment-status:{orderId}:{status}:{externalVersion}
    invoice:{orderId}:{invoiceNumber}:{externalVersion}
    price:{articleNumber}:{priceList}:{externalVersion}

    Escaping: in every ID field each byte outside A-Z a-z 0-9 - . _ ~ is
    written as %XX (upper-case hex), so ':' only ever separates fields and
    a key is plain printable ASCII. The version is an unsigned 64-bit
    integer in decimal without leading zeros ("0" is fine). Keys are at
    most CW_IDKEY_MAX bytes. Each key has exactly one spelling: parsing
    refuses bad or lower-case escapes, escapes of bytes that need none,
    %00, empty fields, wrong field counts, unknown prefixes, and versions
    with signs, leading zeros or overflow; build (parse (k)) == k.

    Pure: no I/O, no allocation except build's return value.
    See docs/idempotency-keys.md.
    =========================================================================
*/
#ifndef CW_IDKEY_H_INCLUDED
#define CW_IDKEY_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#define CW_IDKEY_MAX 255        //  Longest key, bytes (without the NUL)
#define CW_IDKEY_FIELDS_MAX 3   //  Most ID fields of any kind (w/o version)

typedef enum {
    CW_IDKEY_CUSTOMER,          //  customer:{tenantId}:{customerId}:{version}
    CW_IDKEY_ORDER,             //  order:{tenantId}:{orderId}:{version}
    CW_IDKEY_ORDER_STATUS,      //  order-status:{tenantId}:{orderId}:{status}:{version}
    CW_IDKEY_PAYMENT_STATUS,    //  payment-status:{orderId}:{status}:{externalVersion}
    CW_IDKEY_INVOICE,           //  invoice:{orderId}:{invoiceNumber}:{externalVersion}
    CW_IDKEY_PRICE,             //  price:{articleNumber}:{priceList}:{externalVersion}
    CW_IDKEY_KIND_COUNT         //  Number of kinds (not a kind)
} cw_idkey_kind_t;

//  A parsed key: decoded ID fields in contract order, then the version.
typedef struct {
    cw_idkey_kind_t kind;                               //  Which format
    size_t field_count;                                 //  ID fields used
    char fields[CW_IDKEY_FIELDS_MAX][CW_IDKEY_MAX + 1]; //  Decoded, NUL-ended
    uint64_t version;                                   //  Last field
} cw_idkey_t;

//  Returns the kind's prefix ("order-status"). Asserts kind is valid.
const char *
    cw_idkey_kind_name (cw_idkey_kind_t kind);

//  Returns the number of ID fields of kind (2 or 3, without the version).
size_t
    cw_idkey_field_count (cw_idkey_kind_t kind);

//  Returns the contract name of field index of kind ("orderId"); index
//  cw_idkey_field_count (kind) names the version field ("version" or
//  "externalVersion").
const char *
    cw_idkey_field_name (cw_idkey_kind_t kind, size_t index);

//  Builds a key of kind from cw_idkey_field_count (kind) ID fields (raw,
//  unescaped, non-NULL) and the version. Returns a fresh string, or NULL
//  with a reason naming the field in reason[size] ("field \"orderId\":
//  empty", "key: longer than 255 bytes once escaped").
//  Caller owns return value and must free it.
char *
    cw_idkey_build (cw_idkey_kind_t kind, const char *const fields[],
                    uint64_t version, char *reason, size_t size);

//  Per-kind shorthands for cw_idkey_build, same rules and ownership.
char *
    cw_idkey_customer (const char *tenant_id, const char *customer_id,
                       uint64_t version, char *reason, size_t size);
char *
    cw_idkey_order (const char *tenant_id, const char *order_id,
                    uint64_t version, char *reason, size_t size);
char *
    cw_idkey_order_status (const char *tenant_id, const char *order_id,
                           const char *status, uint64_t version,
                           char *reason, size_t size);
char *
    cw_idkey_payment_status (const char *order_id, const char *status,
                             uint64_t external_version, char *reason,
                             size_t size);
char *
    cw_idkey_invoice (const char *order_id, const char *invoice_number,
                      uint64_t external_version, char *reason, size_t size);
char *
    cw_idkey_price (const char *article_number, const char *price_list,
                    uint64_t external_version, char *reason, size_t size);

//  Parses key (untrusted text) into *parsed. Returns 0, or -1 with a
//  reason naming the field in reason[size]; *parsed is then unspecified.
int
    cw_idkey_parse (const char *key, cw_idkey_t *parsed, char *reason,
                    size_t size);

#endif
