/*  =========================================================================
    cw_test_envelope - the reference msgpack form of an envelope

    See cw_test_envelope.h.
    =========================================================================
*/
#include "cw_test_envelope.h"
#include "cw_mpjson.h"

#include <jansson.h>

static void
s_attribute (json_t *tree, const char *name, const char *value)
{
    if (value)
        json_object_set_new (tree, name, json_string_nocheck (value));
}

void
cw_test_envelope_pack (msgpack_packer *packer, const cw_envelope_t *envelope)
{
    if (!envelope) {
        msgpack_pack_nil (packer);
        return;
    }
    json_t *tree = json_object ();
    s_attribute (tree, "specversion", cw_envelope_specversion (envelope));
    s_attribute (tree, "datacontenttype",
                 cw_envelope_datacontenttype (envelope));
    s_attribute (tree, "id", cw_envelope_id (envelope));
    s_attribute (tree, "source", cw_envelope_source (envelope));
    s_attribute (tree, "type", cw_envelope_type (envelope));
    s_attribute (tree, "time", cw_envelope_time (envelope));
    s_attribute (tree, "tenantid", cw_envelope_tenant_id (envelope));
    s_attribute (tree, "correlationid",
                 cw_envelope_correlation_id (envelope));
    s_attribute (tree, "traceparent", cw_envelope_traceparent (envelope));
    s_attribute (tree, "idempotencykey",
                 cw_envelope_idempotency_key (envelope));
    if (cw_envelope_data (envelope))
        json_object_set (tree, "data", cw_envelope_data (envelope));
    cw_mpjson_pack (packer, tree);
    json_decref (tree);
}
