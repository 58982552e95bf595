/*  =========================================================================
    cw_config - typed configuration from a ZPL file and the environment

    Each program declares a static schema: one cw_config_entry_t per key,
    ending with an entry whose path is NULL. cw_config_load reads the ZPL
    file (CZMQ zconfig), applies the environment, validates every value
    once and writes it into the program's own struct at entry.offset.
    Precedence: environment variable (when set and not empty) > file >
    default. A key with no default (default_value NULL) is required.

        typedef struct {
            const char *bind;
            int64_t heartbeat_msec;
            cw_log_level_t log_level;
        } broker_config_t;

        static const cw_config_entry_t s_schema[] = {
            {.path = "server/bind", .env = "CW_BROKER_SERVER_BIND",
             .type = CW_CONFIG_ENDPOINT, .default_value = "tcp://0.0.0.0:5555",
             .offset = offsetof (broker_config_t, bind),
             .help = "where workers connect"},
            {.path = "server/heartbeat", .env = "CW_BROKER_SERVER_HEARTBEAT",
             .type = CW_CONFIG_DURATION, .default_value = "1s",
             .min = 10, .max = 60000,
             .offset = offsetof (broker_config_t, heartbeat_msec),
             .help = "heartbeat interval"},
            {.path = "log/level", .env = "CW_BROKER_LOG_LEVEL",
             .type = CW_CONFIG_LOG_LEVEL, .default_value = "info",
             .offset = offsetof (broker_config_t, log_level),
             .help = "lowest level logged"},
            {.path = NULL}
        };

        broker_config_t settings;
        cw_config_t *config = cw_config_new (s_schema);
        cw_config_load_or_exit (config, "/etc/causeway/broker.cfg",
                                &settings);

    Any bad value is ONE error naming the key, where the value came from
    and the expected form:
        config key "server/heartbeat" (env CW_BROKER_SERVER_HEARTBEAT):
        "ten" is not a duration (use e.g. 250ms, 10s)
    Keys in the file that the schema does not declare are errors, as are
    duplicate keys. Secrets never go through config: the only way to name
    one is a CW_CONFIG_SECRET_FILE entry, whose value is the path of a
    private file (checked with cw_secret_load rules). See docs/config.md.
    =========================================================================
*/
#ifndef CW_CONFIG_H_INCLUDED
#define CW_CONFIG_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CW_CONFIG_EXIT_CODE 2   //  Exit code for bad configuration

//  Value types; the field at offset in the target struct has the C type
//  in the comment. Strings are owned by the cw_config_t and stay valid
//  until it is destroyed or loads again.
typedef enum {
    CW_CONFIG_STRING,           //  const char *, any text
    CW_CONFIG_INT,              //  int64_t, decimal, within [min, max]
    CW_CONFIG_DURATION,         //  int64_t msec; 250ms, 10s, 5m, 1h or 0
    CW_CONFIG_SIZE,             //  int64_t bytes; 512, 512B, 64kB, 16MB, 1GB
    CW_CONFIG_BOOL,             //  bool; true/false, yes/no, on/off, 1/0
    CW_CONFIG_ENUM,             //  int, index into choices
    CW_CONFIG_ENDPOINT,         //  const char *; tcp://h:p, ipc://, inproc://
    CW_CONFIG_LOG_LEVEL,        //  cw_log_level_t; debug .. fatal
    CW_CONFIG_SECRET_FILE       //  const char *, path of a 0600 secret file
} cw_config_type_t;

//  One key of a schema.
typedef struct {
    const char *path;           //  ZPL path, "server/bind"; NULL ends schema
    const char *env;            //  Overriding variable, "CW_BROKER_SERVER_BIND"
    cw_config_type_t type;      //  Value type
    const char *default_value;  //  Default as text; NULL = required
    size_t offset;              //  offsetof the field in the target struct
    int64_t min;                //  INT, DURATION, SIZE: smallest allowed
    int64_t max;                //  ... largest; min == max == 0: unbounded
    const char *const *choices; //  ENUM: allowed words, NULL-terminated
    const char *help;           //  One line for the sample and --help
} cw_config_entry_t;

typedef struct _cw_config_t cw_config_t;

//  Creates a loader for schema (static, borrowed). Asserts the schema is
//  sane: unique paths and env names, grouped sections, defaults that
//  validate, and no key that looks like a secret (password, secret,
//  token, key, credential) unless it is a CW_CONFIG_SECRET_FILE.
cw_config_t *
    cw_config_new (const cw_config_entry_t *schema);

//  Destroys the loader and the strings it handed out. Tolerates NULL.
void
    cw_config_destroy (cw_config_t **self_p);

//  Loads file (NULL: no file, defaults and environment only) into
//  target. Returns 0, or -1 with one message in error[size]; target is
//  then partly written and must not be used.
int
    cw_config_load (cw_config_t *self, const char *file, void *target,
                    char *error, size_t size);

//  Like cw_config_load, but on failure logs one fatal cw_log line (event
//  "config_invalid") and exits with CW_CONFIG_EXIT_CODE.
void
    cw_config_load_or_exit (cw_config_t *self, const char *file,
                            void *target);

//  Returns where the last load took path's value from: "default",
//  "file <name>" or "env <VAR>"; NULL for an unknown path or before load.
const char *
    cw_config_source (cw_config_t *self, const char *path);

//  Writes the effective configuration after a successful load, one line
//  per key: path = "value"  # source  (for a --print-config flag).
//  Returns 0, or -1 on a write error.
int
    cw_config_print (cw_config_t *self, FILE *stream);

//  Writes a commented sample ZPL file for schema: every key with its help,
//  type, environment variable and default. Required keys are written
//  commented out. Returns 0, or -1 on a write error.
int
    cw_config_write_sample (const cw_config_entry_t *schema,
                            const char *title, FILE *stream);

#endif
