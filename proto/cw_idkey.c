/*  =========================================================================
    cw_idkey - the six idempotency-key formats of the boundary contract

    See cw_idkey.h and docs/idempotency-keys.md.
    =========================================================================
*/
#include "cw_idkey.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CW_IDKEY_SEPARATOR ':'
#define CW_IDKEY_UINT64_DIGITS 20  //  Digits of UINT64_MAX

//  One format of the contract.
typedef struct {
    const char *prefix;                          //  First field, literal
    size_t field_count;                          //  ID fields (w/o version)
    const char *names[CW_IDKEY_FIELDS_MAX + 1];  //  Field names, version last
} s_format_t;

static const s_format_t s_formats[CW_IDKEY_KIND_COUNT] = {
    [CW_IDKEY_CUSTOMER] = {"customer",
                           2,
                           {"tenantId", "customerId", "version"}},
    [CW_IDKEY_ORDER] = {"order", 2, {"tenantId", "orderId", "version"}},
    [CW_IDKEY_ORDER_STATUS] = {"order-status",
                               3,
                               {"tenantId", "orderId", "status", "version"}},
    [CW_IDKEY_PAYMENT_STATUS] = {"payment-status",
                                 2,
                                 {"orderId", "status", "externalVersion"}},
    [CW_IDKEY_INVOICE] = {"invoice",
                          2,
                          {"orderId", "invoiceNumber", "externalVersion"}},
    [CW_IDKEY_PRICE] = {"price",
                        2,
                        {"articleNumber", "priceList", "externalVersion"}},
};

static const char s_hex[] = "0123456789ABCDEF";

//  True for the RFC 3986 unreserved bytes, the only ones written as is.
static bool
s_unreserved (unsigned char byte)
{
    return (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z')
           || (byte >= '0' && byte <= '9') || byte == '-' || byte == '.'
           || byte == '_' || byte == '~';
}

//  Value of an upper-case hex digit, or -1 (lower case is not canonical).
static int
s_hex_value (char digit)
{
    if (digit >= '0' && digit <= '9')
        return digit - '0';
    if (digit >= 'A' && digit <= 'F')
        return digit - 'A' + 10;
    return -1;
}

static void
s_reason (char *reason, size_t size, const char *field, const char *text)
{
    if (reason && size)
        snprintf (reason, size, "field \"%s\": %s", field, text);
}

const char *
cw_idkey_kind_name (cw_idkey_kind_t kind)
{
    assert (kind >= 0 && kind < CW_IDKEY_KIND_COUNT);
    return s_formats[kind].prefix;
}

size_t
cw_idkey_field_count (cw_idkey_kind_t kind)
{
    assert (kind >= 0 && kind < CW_IDKEY_KIND_COUNT);
    return s_formats[kind].field_count;
}

const char *
cw_idkey_field_name (cw_idkey_kind_t kind, size_t index)
{
    assert (kind >= 0 && kind < CW_IDKEY_KIND_COUNT);
    assert (index <= s_formats[kind].field_count);
    return s_formats[kind].names[index];
}

char *
cw_idkey_build (cw_idkey_kind_t kind,
                const char *const fields[],
                uint64_t version,
                char *reason,
                size_t size)
{
    assert (kind >= 0 && kind < CW_IDKEY_KIND_COUNT);
    assert (fields);
    const s_format_t *format = &s_formats[kind];
    char key[CW_IDKEY_MAX + 1];
    size_t length = strlen (format->prefix);
    memcpy (key, format->prefix, length);

    for (size_t index = 0; index < format->field_count; index++) {
        const char *field = fields[index];
        assert (field);
        if (*field == 0) {
            s_reason (reason, size, format->names[index], "empty");
            return NULL;
        }
        if (length + 1 > CW_IDKEY_MAX)
            goto too_long;
        key[length++] = CW_IDKEY_SEPARATOR;
        for (const unsigned char *byte = (const unsigned char *) field; *byte;
             byte++) {
            if (s_unreserved (*byte)) {
                if (length + 1 > CW_IDKEY_MAX)
                    goto too_long;
                key[length++] = (char) *byte;
            }
            else {
                if (length + 3 > CW_IDKEY_MAX)
                    goto too_long;
                key[length++] = '%';
                key[length++] = s_hex[*byte >> 4];
                key[length++] = s_hex[*byte & 0x0F];
            }
        }
    }
    char digits[CW_IDKEY_UINT64_DIGITS + 2];
    int written = snprintf (digits, sizeof (digits), ":%llu",
                            (unsigned long long) version);
    assert (written > 0 && (size_t) written < sizeof (digits));
    if (length + (size_t) written > CW_IDKEY_MAX)
        goto too_long;
    memcpy (key + length, digits, (size_t) written + 1);
    return strdup (key);

too_long:
    if (reason && size)
        snprintf (reason, size,
                  "key: longer than %d bytes once escaped (%s key)",
                  CW_IDKEY_MAX, format->prefix);
    return NULL;
}

char *
cw_idkey_customer (const char *tenant_id,
                   const char *customer_id,
                   uint64_t version,
                   char *reason,
                   size_t size)
{
    const char *fields[] = {tenant_id, customer_id};
    return cw_idkey_build (CW_IDKEY_CUSTOMER, fields, version, reason, size);
}

char *
cw_idkey_order (const char *tenant_id,
                const char *order_id,
                uint64_t version,
                char *reason,
                size_t size)
{
    const char *fields[] = {tenant_id, order_id};
    return cw_idkey_build (CW_IDKEY_ORDER, fields, version, reason, size);
}

char *
cw_idkey_order_status (const char *tenant_id,
                       const char *order_id,
                       const char *status,
                       uint64_t version,
                       char *reason,
                       size_t size)
{
    const char *fields[] = {tenant_id, order_id, status};
    return cw_idkey_build (CW_IDKEY_ORDER_STATUS, fields, version, reason,
                           size);
}

char *
cw_idkey_payment_status (const char *order_id,
                         const char *status,
                         uint64_t external_version,
                         char *reason,
                         size_t size)
{
    const char *fields[] = {order_id, status};
    return cw_idkey_build (CW_IDKEY_PAYMENT_STATUS, fields, external_version,
                           reason, size);
}

char *
cw_idkey_invoice (const char *order_id,
                  const char *invoice_number,
                  uint64_t external_version,
                  char *reason,
                  size_t size)
{
    const char *fields[] = {order_id, invoice_number};
    return cw_idkey_build (CW_IDKEY_INVOICE, fields, external_version, reason,
                           size);
}

char *
cw_idkey_price (const char *article_number,
                const char *price_list,
                uint64_t external_version,
                char *reason,
                size_t size)
{
    const char *fields[] = {article_number, price_list};
    return cw_idkey_build (CW_IDKEY_PRICE, fields, external_version, reason,
                           size);
}

//  Decodes the escaped field text[0..length) into output (at least
//  length + 1 bytes). Returns 0, or -1 with a reason naming the field.
static int
s_decode (const char *text,
          size_t length,
          const char *name,
          char *output,
          char *reason,
          size_t size)
{
    char detail[128];
    size_t out = 0;
    if (length == 0) {
        s_reason (reason, size, name, "empty");
        return -1;
    }
    for (size_t at = 0; at < length; at++) {
        unsigned char byte = (unsigned char) text[at];
        if (byte == '%') {
            if (at + 2 >= length) {
                snprintf (detail, sizeof (detail),
                          "truncated escape at byte %zu", at + 1);
                s_reason (reason, size, name, detail);
                return -1;
            }
            int upper = s_hex_value (text[at + 1]);
            int lower = s_hex_value (text[at + 2]);
            if (upper < 0 || lower < 0) {
                snprintf (
                    detail, sizeof (detail),
                    "bad escape \"%%%c%c\" at byte %zu (use upper-case "
                    "hex)",
                    (text[at + 1] >= 0x20 && text[at + 1] < 0x7F) ? text[at + 1]
                                                                  : '?',
                    (text[at + 2] >= 0x20 && text[at + 2] < 0x7F) ? text[at + 2]
                                                                  : '?',
                    at + 1);
                s_reason (reason, size, name, detail);
                return -1;
            }
            unsigned char decoded = (unsigned char) (upper * 16 + lower);
            if (decoded == 0) {
                snprintf (detail, sizeof (detail),
                          "escaped NUL byte at byte %zu", at + 1);
                s_reason (reason, size, name, detail);
                return -1;
            }
            if (s_unreserved (decoded)) {
                snprintf (detail, sizeof (detail),
                          "\"%%%c%c\" at byte %zu escapes '%c', which must "
                          "be written as is",
                          text[at + 1], text[at + 2], at + 1, decoded);
                s_reason (reason, size, name, detail);
                return -1;
            }
            output[out++] = (char) decoded;
            at += 2;
        }
        else if (s_unreserved (byte))
            output[out++] = (char) byte;
        else {
            if (byte >= 0x20 && byte < 0x7F)
                snprintf (detail, sizeof (detail),
                          "byte '%c' at byte %zu must be escaped as %%%c%c",
                          byte, at + 1, s_hex[byte >> 4], s_hex[byte & 0x0F]);
            else
                snprintf (detail, sizeof (detail),
                          "byte 0x%c%c at byte %zu must be escaped as %%%c%c",
                          s_hex[byte >> 4], s_hex[byte & 0x0F], at + 1,
                          s_hex[byte >> 4], s_hex[byte & 0x0F]);
            s_reason (reason, size, name, detail);
            return -1;
        }
    }
    output[out] = 0;
    return 0;
}

//  Parses a canonical decimal uint64. Returns 0, or -1 with a reason.
static int
s_version (const char *text,
           size_t length,
           const char *name,
           uint64_t *version,
           char *reason,
           size_t size)
{
    if (length == 0) {
        s_reason (reason, size, name, "empty");
        return -1;
    }
    uint64_t value = 0;
    for (size_t at = 0; at < length; at++) {
        if (text[at] < '0' || text[at] > '9') {
            s_reason (reason, size, name, "not an unsigned decimal integer");
            return -1;
        }
        unsigned digit = (unsigned) (text[at] - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            s_reason (reason, size, name,
                      "out of range (largest is 18446744073709551615)");
            return -1;
        }
        value = value * 10 + digit;
    }
    if (length > 1 && text[0] == '0') {
        s_reason (reason, size, name, "leading zero");
        return -1;
    }
    *version = value;
    return 0;
}

int
cw_idkey_parse (const char *key, cw_idkey_t *parsed, char *reason, size_t size)
{
    assert (key);
    assert (parsed);
    size_t length = strnlen (key, CW_IDKEY_MAX + 1);
    if (length > CW_IDKEY_MAX) {
        if (reason && size)
            snprintf (reason, size, "key: longer than %d bytes", CW_IDKEY_MAX);
        return -1;
    }
    const char *colon = strchr (key, CW_IDKEY_SEPARATOR);
    size_t prefix_length = colon ? (size_t) (colon - key) : length;
    int kind = 0;
    for (kind = 0; kind < CW_IDKEY_KIND_COUNT; kind++)
        if (strlen (s_formats[kind].prefix) == prefix_length
            && memcmp (s_formats[kind].prefix, key, prefix_length) == 0)
            break;
    if (kind == CW_IDKEY_KIND_COUNT) {
        if (reason && size) {
            //  Show the prefix only when it is printable ASCII
            bool printable = prefix_length > 0;
            for (size_t at = 0; at < prefix_length; at++)
                if (key[at] < 0x20 || key[at] >= 0x7F)
                    printable = false;
            if (printable)
                snprintf (reason, size,
                          "key: unknown prefix \"%.*s\" (expected customer, "
                          "order, order-status, payment-status, invoice or "
                          "price)",
                          (int) prefix_length, key);
            else
                snprintf (reason, size,
                          "key: missing or unknown prefix (expected "
                          "customer, order, order-status, payment-status, "
                          "invoice or price)");
        }
        return -1;
    }
    const s_format_t *format = &s_formats[kind];

    //  Count separators: exactly one per field after the prefix
    size_t separators = 0;
    for (const char *at = key; *at; at++)
        if (*at == CW_IDKEY_SEPARATOR)
            separators++;
    if (separators != format->field_count + 1) {
        if (reason && size)
            snprintf (reason, size,
                      "key: %s key has %zu fields after the prefix, expected "
                      "%zu",
                      format->prefix, separators, format->field_count + 1);
        return -1;
    }
    parsed->kind = (cw_idkey_kind_t) kind;
    parsed->field_count = format->field_count;
    const char *start = colon + 1;
    for (size_t index = 0; index < format->field_count; index++) {
        const char *end = strchr (start, CW_IDKEY_SEPARATOR);
        assert (end);
        if (s_decode (start, (size_t) (end - start), format->names[index],
                      parsed->fields[index], reason, size))
            return -1;
        start = end + 1;
    }
    return s_version (start, strlen (start), format->names[format->field_count],
                      &parsed->version, reason, size);
}
