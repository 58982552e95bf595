/*  =========================================================================
    cw_config - typed configuration from a ZPL file and the environment

    See cw_config.h and docs/config.md.
    =========================================================================
*/
#include "cw_config.h"
#include "cw_log.h"
#include "cw_secret.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <strings.h>

#define CW_CONFIG_ERROR_MAX 512     //  Longest load error message
#define CW_CONFIG_DETAIL_MAX 320    //  Longest value complaint
#define CW_CONFIG_QUOTE_MAX 64      //  Bytes of a bad value quoted back
#define CW_CONFIG_INDENT 4          //  ZPL indentation per level
#define CW_CONFIG_FILE_MAX 1048576  //  Largest config file read, bytes

//  Where one key's value came from, after a load.
typedef struct {
    char *text;    //  Effective value text, owned
    char *source;  //  "default", "file F", "env V", owned
} s_value_t;

struct _cw_config_t {
    const cw_config_entry_t *schema;  //  Borrowed, static
    size_t count;                     //  Entries in schema
    s_value_t *values;                //  One per entry, owns items
    bool loaded;                      //  Last load succeeded
};

//  A unit suffix and its multiplier.
typedef struct {
    const char *suffix;  //  As written, compared case-sensitively
    int64_t factor;      //  Into msec or bytes
} s_unit_t;

static const s_unit_t s_duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0}};

static const s_unit_t s_size_units[] = {
    {"B", 1},
    {"kB", 1024},
    {"KB", 1024},
    {"MB", 1024 * 1024},
    {"GB", INT64_C (1024) * 1024 * 1024},
    {"TB", INT64_C (1024) * 1024 * 1024 * 1024},
    {NULL, 0}};

static const char *const s_true_words[] = {"true", "yes", "on", "1", NULL};
static const char *const s_false_words[] = {"false", "no", "off", "0", NULL};
static const char *const s_secret_words[] = {
    "password",    "passwd",  "secret", "token",       "credential",
    "credentials", "api_key", "apikey", "private_key", NULL};

//  strdup that aborts when memory runs out, like zmalloc.
static char *
s_strdup (const char *text)
{
    char *copy = strdup (text);
    if (!copy)
        abort ();
    return copy;
}

//  zsys_sprintf that aborts when memory runs out, like zmalloc.
static char *
s_sprintf (const char *format, ...)
{
    va_list arguments;
    va_start (arguments, format);
    char *text = zsys_vprintf (format, arguments);
    va_end (arguments);
    if (!text)
        abort ();
    return text;
}

//  Writes text into quoted[size] for an error message: at most
//  CW_CONFIG_QUOTE_MAX bytes, non-printable bytes as '?'.
static void
s_quote (const char *text, char *quoted, size_t size)
{
    size_t out = 0;
    for (size_t at = 0; text[at] && out + 4 < size; at++) {
        if (at == CW_CONFIG_QUOTE_MAX) {
            memcpy (quoted + out, "...", 3);
            out += 3;
            break;
        }
        unsigned char byte = (unsigned char) text[at];
        quoted[out++] = byte >= 0x20 && byte < 0x7F ? (char) byte : '?';
    }
    quoted[out] = 0;
}

//  Expected form of a type, for messages and the sample file.
static void
s_expected (const cw_config_entry_t *entry, char *text, size_t size)
{
    switch (entry->type) {
        case CW_CONFIG_STRING:
            snprintf (text, size, "text");
            break;
        case CW_CONFIG_INT:
            if (entry->min || entry->max)
                snprintf (text, size, "an integer from %lld to %lld",
                          (long long) entry->min, (long long) entry->max);
            else
                snprintf (text, size, "an integer");
            break;
        case CW_CONFIG_DURATION:
            if (entry->min || entry->max)
                snprintf (text, size,
                          "a duration from %lldms to %lldms (e.g. 250ms, "
                          "10s, 5m, 1h)",
                          (long long) entry->min, (long long) entry->max);
            else
                snprintf (text, size, "a duration (e.g. 250ms, 10s, 5m, 1h)");
            break;
        case CW_CONFIG_SIZE:
            if (entry->min || entry->max)
                snprintf (text, size,
                          "a size from %lld to %lld bytes (e.g. 512B, 64kB, "
                          "16MB, 1GB)",
                          (long long) entry->min, (long long) entry->max);
            else
                snprintf (text, size, "a size (e.g. 512B, 64kB, 16MB, 1GB)");
            break;
        case CW_CONFIG_BOOL:
            snprintf (text, size, "true or false (also yes/no, on/off, 1/0)");
            break;
        case CW_CONFIG_ENUM: {
            size_t used = (size_t) snprintf (text, size, "one of");
            for (size_t index = 0; entry->choices[index] && used < size;
                 index++)
                used += (size_t) snprintf (text + used, size - used, "%s %s",
                                           index ? "," : ":",
                                           entry->choices[index]);
            break;
        }
        case CW_CONFIG_ENDPOINT:
            snprintf (text, size,
                      "a ZeroMQ endpoint (tcp://host:port, ipc://path, "
                      "inproc://name)");
            break;
        case CW_CONFIG_LOG_LEVEL:
            snprintf (text, size, "one of: debug, info, warn, error, fatal");
            break;
        case CW_CONFIG_SECRET_FILE:
            snprintf (text, size,
                      "the path of a secret file readable only by its owner");
            break;
    }
}

//  Parses an optionally signed decimal int64 that fills the whole text.
static int
s_parse_int (const char *text, int64_t *value)
{
    if (!((*text >= '0' && *text <= '9') || *text == '-'))
        return -1;
    errno = 0;
    char *end = NULL;
    long long parsed = strtoll (text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *value = parsed;
    return 0;
}

//  Parses digits followed by a unit of units (or no unit, when bare_factor
//  is not 0). Returns 0, -1 for bad form, -2 for overflow.
static int
s_parse_unit (const char *text,
              const s_unit_t *units,
              int64_t bare_factor,
              int64_t *value)
{
    if (*text < '0' || *text > '9')
        return -1;
    int64_t number = 0;
    const char *at = text;
    for (; *at >= '0' && *at <= '9'; at++) {
        if (number > (INT64_MAX - (*at - '0')) / 10)
            return -2;
        number = number * 10 + (*at - '0');
    }
    int64_t factor = 0;
    if (*at == 0)
        factor = bare_factor;
    else
        for (size_t index = 0; units[index].suffix; index++)
            if (streq (at, units[index].suffix))
                factor = units[index].factor;
    if (factor == 0)
        return -1;
    if (number > INT64_MAX / factor)
        return -2;
    *value = number * factor;
    return 0;
}

//  Checks a ZeroMQ endpoint's shape: tcp://host:port (port 1-65535 or *),
//  ipc://path, inproc://name.
static bool
s_endpoint_valid (const char *text)
{
    if (strncmp (text, "ipc://", 6) == 0)
        return text[6] != 0;
    if (strncmp (text, "inproc://", 9) == 0)
        return text[9] != 0;
    if (strncmp (text, "tcp://", 6) != 0)
        return false;
    const char *host = text + 6;
    const char *colon = strrchr (host, ':');
    if (!colon || colon == host)
        return false;
    for (const char *at = host; at < colon; at++)
        if (*at <= ' ' || *at >= 0x7F)
            return false;
    const char *port = colon + 1;
    if (streq (port, "*"))
        return true;
    int64_t number;
    if (*port == '-' || s_parse_int (port, &number) || number < 1
        || number > 65535)
        return false;
    return true;
}

static bool
s_word_in (const char *text, const char *const *words)
{
    for (size_t index = 0; words[index]; index++)
        if (strcasecmp (text, words[index]) == 0)
            return true;
    return false;
}

//  Converts text per entry and, when target is not NULL, stores it (string
//  types store text itself, which must outlive target). Returns 0, or -1
//  with a complaint in detail[size].
static int
s_convert (const cw_config_entry_t *entry,
           const char *text,
           void *target,
           char *detail,
           size_t size)
{
    char quoted[CW_CONFIG_QUOTE_MAX + 8];
    char expected[CW_CONFIG_DETAIL_MAX / 2];
    s_quote (text, quoted, sizeof (quoted));
    s_expected (entry, expected, sizeof (expected));
    char *field = target ? (char *) target + entry->offset : NULL;
    int64_t number = 0;
    int rc = 0;

    switch (entry->type) {
        case CW_CONFIG_STRING:
            if (field)
                *(const char **) field = text;
            return 0;
        case CW_CONFIG_INT:
            if (s_parse_int (text, &number)) {
                snprintf (detail, size, "\"%s\" is not %s", quoted, expected);
                return -1;
            }
            break;
        case CW_CONFIG_DURATION:
            rc = streq (text, "0")
                     ? (number = 0, 0)
                     : s_parse_unit (text, s_duration_units, 0, &number);
            if (rc == -1) {
                snprintf (detail, size,
                          "\"%s\" is not a duration (use e.g. 250ms, 10s, "
                          "5m, 1h)",
                          quoted);
                return -1;
            }
            break;
        case CW_CONFIG_SIZE:
            rc = s_parse_unit (text, s_size_units, 1, &number);
            if (rc == -1) {
                snprintf (detail, size,
                          "\"%s\" is not a size (use e.g. 512B, 64kB, 16MB, "
                          "1GB)",
                          quoted);
                return -1;
            }
            break;
        case CW_CONFIG_BOOL: {
            bool flag = s_word_in (text, s_true_words);
            if (!flag && !s_word_in (text, s_false_words)) {
                snprintf (detail, size, "\"%s\" is not %s", quoted, expected);
                return -1;
            }
            if (field)
                *(bool *) field = flag;
            return 0;
        }
        case CW_CONFIG_ENUM:
            for (size_t index = 0; entry->choices[index]; index++)
                if (streq (text, entry->choices[index])) {
                    if (field)
                        *(int *) field = (int) index;
                    return 0;
                }
            snprintf (detail, size, "\"%s\" is not %s", quoted, expected);
            return -1;
        case CW_CONFIG_ENDPOINT:
            if (!s_endpoint_valid (text)) {
                snprintf (detail, size, "\"%s\" is not %s", quoted, expected);
                return -1;
            }
            if (field)
                *(const char **) field = text;
            return 0;
        case CW_CONFIG_LOG_LEVEL: {
            cw_log_level_t level;
            if (cw_log_level_parse (text, &level)) {
                snprintf (detail, size, "\"%s\" is not %s", quoted, expected);
                return -1;
            }
            if (field)
                *(cw_log_level_t *) field = level;
            return 0;
        }
        case CW_CONFIG_SECRET_FILE: {
            if (*text == 0) {
                snprintf (detail, size, "empty (expected %s)", expected);
                return -1;
            }
            if (field) {
                //  Checked now so a bad file fails at start-up
                char reason[CW_CONFIG_DETAIL_MAX / 2];
                char *secret = cw_secret_load (text, reason, sizeof (reason));
                if (!secret) {
                    snprintf (detail, size, "%s", reason);
                    return -1;
                }
                cw_secret_destroy (&secret);
                *(const char **) field = text;
            }
            return 0;
        }
    }
    //  INT, DURATION, SIZE: overflow and range
    if (rc == -2
        || ((entry->min || entry->max)
            && (number < entry->min || number > entry->max))) {
        snprintf (detail, size, "\"%s\" is out of range (expected %s)", quoted,
                  expected);
        return -1;
    }
    if (field)
        *(int64_t *) field = number;
    return 0;
}

//  Number of '/'-separated components path shares with other, not
//  counting the last (key) component of either.
static size_t
s_common_sections (const char *path, const char *other)
{
    size_t depth = 0;
    while (true) {
        const char *slash = strchr (path, '/');
        const char *other_slash = strchr (other, '/');
        if (!slash || !other_slash || slash - path != other_slash - other
            || memcmp (path, other, (size_t) (slash - path)))
            return depth;
        depth++;
        path = slash + 1;
        other = other_slash + 1;
    }
}

static size_t
s_sections (const char *path)
{
    size_t depth = 0;
    for (; *path; path++)
        depth += *path == '/';
    return depth;
}

//  True when name (a path or variable) ends with a word that names a
//  secret ("erp/password", "CW_ERP_API_TOKEN"), case-insensitively.
static bool
s_looks_secret (const char *name)
{
    size_t length = strlen (name);
    for (size_t index = 0; s_secret_words[index]; index++) {
        size_t word = strlen (s_secret_words[index]);
        if (length >= word
            && strcasecmp (name + length - word, s_secret_words[index]) == 0)
            return true;
    }
    return false;
}

//  Asserts that the schema is well formed (programming errors).
static size_t
s_schema_check (const cw_config_entry_t *schema)
{
    size_t count = 0;
    for (; schema[count].path; count++) {
        const cw_config_entry_t *entry = &schema[count];
        assert (*entry->path && entry->path[0] != '/');
        assert (entry->path[strlen (entry->path) - 1] != '/');
        assert (entry->env && *entry->env);
        assert (entry->help);
        assert (entry->type != CW_CONFIG_ENUM || entry->choices);
        assert (entry->min <= entry->max);
        //  Secrets are only ever named by file path
        assert (
            entry->type == CW_CONFIG_SECRET_FILE
            || (!s_looks_secret (entry->path) && !s_looks_secret (entry->env)));
        char detail[CW_CONFIG_DETAIL_MAX];
        assert (!entry->default_value
                || s_convert (entry, entry->default_value, NULL, detail,
                              sizeof (detail))
                       == 0);
        (void) detail;
        //  ZPL-safe defaults: never both quote kinds
        assert (!entry->default_value || !strchr (entry->default_value, '"')
                || !strchr (entry->default_value, '\''));
        for (size_t other = 0; other < count; other++) {
            assert (!streq (schema[other].path, entry->path));
            assert (!streq (schema[other].env, entry->env));
            //  No key is also a section
            size_t length = strlen (schema[other].path);
            assert (strncmp (schema[other].path, entry->path, length)
                    || entry->path[length] != '/');
            length = strlen (entry->path);
            assert (strncmp (schema[other].path, entry->path, length)
                    || schema[other].path[length] != '/');
            //  Sections are contiguous, so the sample has each once
            size_t shared = s_common_sections (schema[other].path, entry->path);
            for (size_t between = other + 1; between < count; between++)
                assert (s_common_sections (schema[between].path, entry->path)
                        >= shared);
        }
    }
    return count;
}

cw_config_t *
cw_config_new (const cw_config_entry_t *schema)
{
    assert (schema);
    cw_config_t *self = (cw_config_t *) zmalloc (sizeof (cw_config_t));
    self->schema = schema;
    self->count = s_schema_check (schema);
    self->values = (s_value_t *) zmalloc (sizeof (s_value_t)
                                          * (self->count ? self->count : 1));
    return self;
}

static void
s_values_clear (cw_config_t *self)
{
    for (size_t index = 0; index < self->count; index++) {
        zstr_free (&self->values[index].text);
        zstr_free (&self->values[index].source);
    }
    self->loaded = false;
}

void
cw_config_destroy (cw_config_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        cw_config_t *self = *self_p;
        s_values_clear (self);
        free (self->values);
        free (self);
        *self_p = NULL;
    }
}

static const cw_config_entry_t *
s_entry (cw_config_t *self, const char *path, size_t *index_p)
{
    for (size_t index = 0; index < self->count; index++)
        if (streq (self->schema[index].path, path)) {
            if (index_p)
                *index_p = index;
            return &self->schema[index];
        }
    return NULL;
}

//  True when path is a proper section prefix of some schema key.
static bool
s_is_section (cw_config_t *self, const char *path)
{
    size_t length = strlen (path);
    for (size_t index = 0; index < self->count; index++)
        if (strncmp (self->schema[index].path, path, length) == 0
            && self->schema[index].path[length] == '/')
            return true;
    return false;
}

//  Checks the loaded tree below node (at prefix) for unknown, duplicate
//  and misplaced keys. Returns 0, or -1 with a message.
static int
s_check_tree (cw_config_t *self,
              zconfig_t *node,
              const char *prefix,
              const char *file,
              char *error,
              size_t size)
{
    for (zconfig_t *child = zconfig_child (node); child;
         child = zconfig_next (child)) {
        char *path = prefix ? s_sprintf ("%s/%s", prefix, zconfig_name (child))
                            : s_strdup (zconfig_name (child));
        int rc = 0;
        for (zconfig_t *other = zconfig_child (node); other != child;
             other = zconfig_next (other))
            if (streq (zconfig_name (other), zconfig_name (child))) {
                snprintf (error, size,
                          "config file \"%s\": duplicate key \"%s\"", file,
                          path);
                rc = -1;
                break;
            }
        if (rc == 0 && s_entry (self, path, NULL)) {
            zconfig_t *extra = zconfig_child (child);
            if (extra) {
                snprintf (error, size,
                          "config file \"%s\": unknown key \"%s/%s\" (\"%s\" "
                          "is a key, not a section)",
                          file, path, zconfig_name (extra), path);
                rc = -1;
            }
        }
        else if (rc == 0 && s_is_section (self, path)) {
            const char *value = zconfig_value (child);
            if (value && *value) {
                snprintf (error, size,
                          "config file \"%s\": \"%s\" is a section and "
                          "cannot have a value",
                          file, path);
                rc = -1;
            }
            else
                rc = s_check_tree (self, child, path, file, error, size);
        }
        else if (rc == 0) {
            snprintf (error, size, "config file \"%s\": unknown key \"%s\"",
                      file, path);
            rc = -1;
        }
        free (path);
        if (rc)
            return rc;
    }
    return 0;
}

//  Reads a whole config file into a fresh string. Returns NULL with a
//  message when it cannot be read, is too large or holds a NUL byte.
static char *
s_read_file (const char *file, size_t expected, char *error, size_t size)
{
    if (expected > CW_CONFIG_FILE_MAX) {
        snprintf (error, size,
                  "cannot read config file \"%s\": larger than %d bytes", file,
                  CW_CONFIG_FILE_MAX);
        return NULL;
    }
    FILE *stream = fopen (file, "r");
    if (!stream) {
        snprintf (error, size, "could not open config file \"%s\": %s", file,
                  strerror (errno));
        return NULL;
    }
    char *text = (char *) zmalloc (CW_CONFIG_FILE_MAX + 2);
    size_t length = fread (text, 1, CW_CONFIG_FILE_MAX + 1, stream);
    bool failed = ferror (stream) != 0;
    fclose (stream);
    if (failed || length > CW_CONFIG_FILE_MAX || strlen (text) != length) {
        snprintf (error, size, "cannot read config file \"%s\": %s", file,
                  failed                        ? "read error"
                  : length > CW_CONFIG_FILE_MAX ? "file grew too large"
                                                : "contains a NUL byte");
        free (text);
        return NULL;
    }
    return text;
}

int
cw_config_load (
    cw_config_t *self, const char *file, void *target, char *error, size_t size)
{
    assert (self);
    assert (target);
    assert (error && size);
    s_values_clear (self);
    zconfig_t *root = NULL;
    char *text = NULL;
    int rc = -1;
    if (file) {
        struct stat status;
        if (stat (file, &status)) {
            snprintf (error, size, "could not read config file \"%s\": %s",
                      file, strerror (errno));
            goto done;
        }
        if (!S_ISREG (status.st_mode)) {
            snprintf (error, size,
                      "cannot read config file \"%s\": not a regular file",
                      file);
            goto done;
        }
        //  zconfig_load leaks its zfile when the text is not valid ZPL
        //  (CZMQ 4.2), so read the file here and parse the string.
        text = s_read_file (file, (size_t) status.st_size, error, size);
        if (!text)
            goto done;
        root = zconfig_str_load (text);
        if (!root) {
            snprintf (error, size,
                      "cannot parse config file \"%s\": not valid ZPL (RFC "
                      "4: 4-space indents, name = value, quoted values "
                      "closed)",
                      file);
            goto done;
        }
        if (s_check_tree (self, root, NULL, file, error, size))
            goto done;
    }
    for (size_t index = 0; index < self->count; index++) {
        const cw_config_entry_t *entry = &self->schema[index];
        s_value_t *value = &self->values[index];
        const char *env = getenv (entry->env);
        const char *from_file =
            root ? zconfig_get (root, entry->path, NULL) : NULL;
        if (env && *env) {
            value->text = s_strdup (env);
            value->source = s_sprintf ("env %s", entry->env);
        }
        else if (from_file) {
            value->text = s_strdup (from_file);
            value->source = s_sprintf ("file %s", file);
        }
        else if (entry->default_value) {
            value->text = s_strdup (entry->default_value);
            value->source = s_strdup ("default");
        }
        else {
            snprintf (error, size,
                      "config key \"%s\" (env %s): missing (set it in the "
                      "config file or in %s)",
                      entry->path, entry->env, entry->env);
            goto done;
        }
        char detail[CW_CONFIG_DETAIL_MAX];
        if (s_convert (entry, value->text, target, detail, sizeof (detail))) {
            if (streq (value->source, "default"))
                snprintf (error, size, "config key \"%s\" (default): %s",
                          entry->path, detail);
            else if (env && *env)
                snprintf (error, size, "config key \"%s\" (env %s): %s",
                          entry->path, entry->env, detail);
            else
                snprintf (error, size,
                          "config key \"%s\" (file %s, env %s): %s",
                          entry->path, file, entry->env, detail);
            goto done;
        }
    }
    self->loaded = true;
    rc = 0;
done:
    zconfig_destroy (&root);
    free (text);
    if (rc)
        s_values_clear (self);
    return rc;
}

void
cw_config_load_or_exit (cw_config_t *self, const char *file, void *target)
{
    char error[CW_CONFIG_ERROR_MAX];
    if (cw_config_load (self, file, target, error, sizeof (error))) {
        cw_log (CW_LOG_FATAL, "config_invalid", error, "file", file,
                (char *) NULL);
        exit (CW_CONFIG_EXIT_CODE);
    }
}

const char *
cw_config_source (cw_config_t *self, const char *path)
{
    assert (self);
    assert (path);
    size_t index;
    if (!self->loaded || !s_entry (self, path, &index))
        return NULL;
    return self->values[index].source;
}

//  Writes value as a ZPL quoted string.
static int
s_print_value (FILE *stream, const char *value)
{
    char quote = strchr (value, '"') ? '\'' : '"';
    return fprintf (stream, "%c%s%c", quote, value, quote) < 0 ? -1 : 0;
}

int
cw_config_print (cw_config_t *self, FILE *stream)
{
    assert (self);
    assert (self->loaded);
    assert (stream);
    for (size_t index = 0; index < self->count; index++) {
        if (fprintf (stream, "%s = ", self->schema[index].path) < 0
            || s_print_value (stream, self->values[index].text)
            || fprintf (stream, "    # %s\n", self->values[index].source) < 0)
            return -1;
    }
    return fflush (stream) ? -1 : 0;
}

int
cw_config_write_sample (const cw_config_entry_t *schema,
                        const char *title,
                        FILE *stream)
{
    assert (schema);
    assert (title);
    assert (stream);
    s_schema_check (schema);
    bool ok = fprintf (stream,
                       "#   %s\n"
                       "#\n"
                       "#   Generated from the program's schema. Every key "
                       "shows its default;\n"
                       "#   the environment variable named with it "
                       "overrides the file.\n"
                       "#   ZPL (RFC 4): 4-space indents, name = \"value\".\n",
                       title)
              >= 0;
    const char *previous = NULL;
    for (size_t index = 0; ok && schema[index].path; index++) {
        const cw_config_entry_t *entry = &schema[index];
        size_t depth = s_sections (entry->path);
        size_t shared =
            previous ? s_common_sections (previous, entry->path) : 0;
        //  Open the sections this key needs beyond those already open
        const char *component = entry->path;
        for (size_t level = 0; level < depth; level++) {
            const char *slash = strchr (component, '/');
            if (level >= shared)
                ok = ok
                     && fprintf (stream, "%s%*s%.*s\n", level ? "" : "\n",
                                 (int) (level * CW_CONFIG_INDENT), "",
                                 (int) (slash - component), component)
                            >= 0;
            component = slash + 1;
        }
        int indent = (int) (depth * CW_CONFIG_INDENT);
        char expected[CW_CONFIG_DETAIL_MAX];
        s_expected (entry, expected, sizeof (expected));
        ok = ok
             && fprintf (stream, "%*s#   %s\n%*s#   %s; env %s\n", indent, "",
                         entry->help, indent, "", expected, entry->env)
                    >= 0;
        if (entry->default_value) {
            ok = ok && fprintf (stream, "%*s%s = ", indent, "", component) >= 0
                 && s_print_value (stream, entry->default_value) == 0
                 && fprintf (stream, "\n") >= 0;
        }
        else
            ok = ok
                 && fprintf (stream,
                             "%*s#   required, no default\n%*s#%s = \"\"\n",
                             indent, "", indent, "", component)
                        >= 0;
        previous = entry->path;
    }
    return ok && fflush (stream) == 0 ? 0 : -1;
}
