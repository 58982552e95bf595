/*  =========================================================================
    cw_version - the registry of contract versions: which versions of each
    event family are understood, which is current, and the compatibility
    handlers (upcasters) that turn version N into N+1
    =========================================================================
*/
#include "cw_version.h"
#include "cw_event.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *family;            //  Type without ".vN"
    int oldest;              //  Oldest version understood
    int current;             //  Current version
    cw_upcast_fn **upcasts;  //  [v - oldest] turns v into v + 1
} s_family_t;

struct _cw_version_t {
    s_family_t *families;  //  Registered families, owned
    size_t count;          //  Families in use
    size_t capacity;       //  Families allocated
};

cw_version_t *
cw_version_new (void)
{
    cw_version_t *self = (cw_version_t *) calloc (1, sizeof (cw_version_t));
    assert (self);
    return self;
}

cw_version_t *
cw_version_new_contract (void)
{
    cw_version_t *self = cw_version_new ();
    for (size_t index = 0; index < cw_event_count (); index++) {
        char family[CW_ENVELOPE_TYPE_MAX + 1];
        int version;
        int rc = cw_envelope_parse_type (cw_event_at (index)->type, family,
                                         sizeof (family), &version);
        assert (rc == 0);
        rc = cw_version_register (self, family, version, NULL);
        assert (rc == 0);
    }
    return self;
}

void
cw_version_destroy (cw_version_t **self_p)
{
    assert (self_p);
    cw_version_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->count; index++) {
        free (self->families[index].family);
        free (self->families[index].upcasts);
    }
    free (self->families);
    free (self);
    *self_p = NULL;
}

static s_family_t *
s_find (const cw_version_t *self, const char *family)
{
    for (size_t index = 0; index < self->count; index++)
        if (strcmp (self->families[index].family, family) == 0)
            return &self->families[index];
    return NULL;
}

int
cw_version_register (cw_version_t *self,
                     const char *family,
                     int version,
                     cw_upcast_fn *upcast)
{
    assert (self);
    assert (family);
    //  The family must make a valid type with this version
    char type[CW_ENVELOPE_TYPE_MAX + 16];
    int written = snprintf (type, sizeof (type), "%s.v%d", family, version);
    if (written < 0 || (size_t) written >= sizeof (type)
        || cw_envelope_parse_type (type, NULL, 0, NULL))
        return -1;
    s_family_t *entry = s_find (self, family);
    if (!entry) {
        if (upcast)
            return -1;
        if (self->count == self->capacity) {
            self->capacity = self->capacity ? self->capacity * 2 : 8;
            self->families = (s_family_t *) realloc (
                self->families, self->capacity * sizeof (s_family_t));
            assert (self->families);
        }
        entry = &self->families[self->count++];
        entry->family = strdup (family);
        assert (entry->family);
        entry->oldest = version;
        entry->current = version;
        entry->upcasts = NULL;
        return 0;
    }
    if (!upcast || version != entry->current + 1)
        return -1;
    size_t steps = (size_t) (version - entry->oldest);
    entry->upcasts = (cw_upcast_fn **) realloc (
        entry->upcasts, steps * sizeof (cw_upcast_fn *));
    assert (entry->upcasts);
    entry->upcasts[steps - 1] = upcast;
    entry->current = version;
    return 0;
}

int
cw_version_current (const cw_version_t *self, const char *family)
{
    assert (self);
    assert (family);
    s_family_t *entry = s_find (self, family);
    return entry ? entry->current : 0;
}

int
cw_version_oldest (const cw_version_t *self, const char *family)
{
    assert (self);
    assert (family);
    s_family_t *entry = s_find (self, family);
    return entry ? entry->oldest : 0;
}

bool
cw_version_understands (const cw_version_t *self, const char *type)
{
    assert (self);
    assert (type);
    char family[CW_ENVELOPE_TYPE_MAX + 1];
    int version;
    if (cw_envelope_parse_type (type, family, sizeof (family), &version))
        return false;
    s_family_t *entry = s_find (self, family);
    return entry && version >= entry->oldest && version <= entry->current;
}

int
cw_version_resolve (const cw_version_t *self,
                    cw_envelope_t *envelope,
                    char *reason,
                    size_t reason_size)
{
    assert (self);
    assert (envelope);
    const char *type = cw_envelope_type (envelope);
    char family[CW_ENVELOPE_TYPE_MAX + 1];
    int version;
    if (!type
        || cw_envelope_parse_type (type, family, sizeof (family), &version)) {
        snprintf (reason, reason_size,
                  CW_VERSION_UNSUPPORTED ": \"%.*s\" has no version suffix",
                  CW_ENVELOPE_TYPE_MAX, type ? type : "");
        return -1;
    }
    s_family_t *entry = s_find (self, family);
    if (!entry) {
        snprintf (reason, reason_size,
                  CW_VERSION_UNSUPPORTED ": %s; unknown event family \"%s\"",
                  type, family);
        return -1;
    }
    if (version < entry->oldest || version > entry->current) {
        char list[CW_ENVELOPE_REASON_SIZE / 2] = "";
        size_t length = 0;
        for (int known = entry->oldest; known <= entry->current; known++) {
            int written =
                snprintf (list + length, sizeof (list) - length, "%sv%d",
                          known > entry->oldest ? ", " : "", known);
            if (written < 0 || (size_t) written >= sizeof (list) - length)
                break;
            length += (size_t) written;
        }
        snprintf (reason, reason_size,
                  CW_VERSION_UNSUPPORTED ": %s; supported: %s", type, list);
        return -1;
    }
    if (version == entry->current)
        return 0;
    if (!json_is_object (cw_envelope_data (envelope))) {
        snprintf (reason, reason_size,
                  "could not upcast %s from v%d: data is not an object", family,
                  version);
        return -1;
    }
    //  Work on a copy so that a failed step leaves the envelope as it was
    json_t *data = json_deep_copy (cw_envelope_data (envelope));
    assert (data);
    for (int step = version; step < entry->current; step++) {
        char problem[CW_ENVELOPE_REASON_SIZE] = "";
        int rc = entry->upcasts[step - entry->oldest](data, problem,
                                                      sizeof (problem));
        if (rc == 0 && !json_is_object (data)) {
            rc = -1;
            snprintf (problem, sizeof (problem), "data is no longer an object");
        }
        if (rc) {
            snprintf (reason, reason_size,
                      "could not upcast %s from v%d to v%d: %s", family, step,
                      step + 1, problem);
            json_decref (data);
            return -1;
        }
    }
    cw_envelope_set_data (envelope, &data);
    char current[CW_ENVELOPE_TYPE_MAX + 16];
    snprintf (current, sizeof (current), "%s.v%d", family, entry->current);
    cw_envelope_set_type (envelope, current);
    return 0;
}
