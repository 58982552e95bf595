/*  =========================================================================
    check_cw_config - typed config from ZPL and the environment
    =========================================================================
*/
#include "cw_config.h"
#include "cw_log.h"
#include "cw_test.h"

#include <check.h>
#include <czmq.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const char *name;
    const char *bind;
    int64_t workers;
    int64_t heartbeat_msec;
    int64_t max_body;
    bool verbose;
    int mode;
    cw_log_level_t log_level;
} s_settings_t;

static const char *const s_modes[] = {"live", "sandbox", "off", NULL};

static const cw_config_entry_t s_schema[] = {
    {.path = "name",
     .env = "CW_T_NAME",
     .type = CW_CONFIG_STRING,
     .default_value = "causeway",
     .offset = offsetof (s_settings_t, name),
     .help = "instance name in logs"},
    {.path = "server/bind",
     .env = "CW_T_SERVER_BIND",
     .type = CW_CONFIG_ENDPOINT,
     .default_value = "tcp://127.0.0.1:5555",
     .offset = offsetof (s_settings_t, bind),
     .help = "where workers connect"},
    {.path = "server/workers",
     .env = "CW_T_SERVER_WORKERS",
     .type = CW_CONFIG_INT,
     .default_value = "4",
     .min = 1,
     .max = 64,
     .offset = offsetof (s_settings_t, workers),
     .help = "worker count"},
    {.path = "server/heartbeat",
     .env = "CW_T_SERVER_HEARTBEAT",
     .type = CW_CONFIG_DURATION,
     .default_value = "1s",
     .min = 10,
     .max = 60000,
     .offset = offsetof (s_settings_t, heartbeat_msec),
     .help = "heartbeat interval"},
    {.path = "server/max_body",
     .env = "CW_T_SERVER_MAX_BODY",
     .type = CW_CONFIG_SIZE,
     .default_value = "1MB",
     .offset = offsetof (s_settings_t, max_body),
     .help = "largest body"},
    {.path = "server/verbose",
     .env = "CW_T_SERVER_VERBOSE",
     .type = CW_CONFIG_BOOL,
     .default_value = "false",
     .offset = offsetof (s_settings_t, verbose),
     .help = "chatty logs"},
    {.path = "erp/mode",
     .env = "CW_T_ERP_MODE",
     .type = CW_CONFIG_ENUM,
     .default_value = "live",
     .choices = s_modes,
     .offset = offsetof (s_settings_t, mode),
     .help = "ERP connection mode"},
    {.path = "log/level",
     .env = "CW_T_LOG_LEVEL",
     .type = CW_CONFIG_LOG_LEVEL,
     .default_value = "info",
     .offset = offsetof (s_settings_t, log_level),
     .help = "lowest level logged"},
    {.path = NULL}};

typedef struct {
    const char *password_file;
    const char *tenant;
} s_secret_settings_t;

static const cw_config_entry_t s_secret_schema[] = {
    {.path = "db/password_file",
     .env = "CW_T_DB_PASSWORD_FILE",
     .type = CW_CONFIG_SECRET_FILE,
     .offset = offsetof (s_secret_settings_t, password_file),
     .help = "file holding the database password"},
    {.path = "tenant",
     .env = "CW_T_TENANT",
     .type = CW_CONFIG_STRING,
     .offset = offsetof (s_secret_settings_t, tenant),
     .help = "tenant id (required)"},
    {.path = NULL}};

static char *s_dir;

static char *
s_write (const char *name, const char *content, mode_t mode)
{
    char *path = cw_test_write_file (s_dir, name, content, mode);
    ck_assert_msg (path != NULL, "could not write %s", name);
    return path;
}

static void
s_setup (void)
{
    s_dir = cw_test_tmpdir ("cw_config");
    for (size_t index = 0; s_schema[index].path; index++)
        unsetenv (s_schema[index].env);
    unsetenv ("CW_T_DB_PASSWORD_FILE");
    unsetenv ("CW_T_TENANT");
}

static void
s_teardown (void)
{
    cw_test_tmpdir_destroy (&s_dir);
}

//  Loads file with s_schema; expects failure with exactly this message.
static void
s_refuse (const char *file, const char *expected)
{
    s_settings_t settings;
    char error[512] = "";
    cw_config_t *config = cw_config_new (s_schema);
    ck_assert_int_eq (
        cw_config_load (config, file, &settings, error, sizeof (error)), -1);
    ck_assert_str_eq (error, expected);
    ck_assert_ptr_null (cw_config_source (config, "name"));
    cw_config_destroy (&config);
}

//  Sets variable to value and expects the load (no file) to fail with
//  exactly this message.
static void
s_refuse_env (const char *variable, const char *value, const char *expected)
{
    setenv (variable, value, 1);
    s_refuse (NULL, expected);
    unsetenv (variable);
}

START_TEST (test_defaults)
{
    s_settings_t settings;
    memset (&settings, 0xAB, sizeof (settings));
    char error[512];
    cw_config_t *config = cw_config_new (s_schema);
    ck_assert_int_eq (
        cw_config_load (config, NULL, &settings, error, sizeof (error)), 0);
    ck_assert_str_eq (settings.name, "causeway");
    ck_assert_str_eq (settings.bind, "tcp://127.0.0.1:5555");
    ck_assert_int_eq (settings.workers, 4);
    ck_assert_int_eq (settings.heartbeat_msec, 1000);
    ck_assert_int_eq (settings.max_body, 1024 * 1024);
    ck_assert (!settings.verbose);
    ck_assert_int_eq (settings.mode, 0);
    ck_assert_int_eq (settings.log_level, CW_LOG_INFO);
    ck_assert_str_eq (cw_config_source (config, "server/heartbeat"), "default");
    ck_assert_ptr_null (cw_config_source (config, "server/nope"));
    cw_config_destroy (&config);
    cw_config_destroy (&config);
    ck_assert_ptr_null (config);
}
END_TEST

START_TEST (test_file_and_env)
{
    char *file = s_write ("good.cfg",
                          "#   a test config\n"
                          "name = \"edge one\"\n"
                          "server\n"
                          "    bind = \"tcp://*:7000\"\n"
                          "    workers = 64\n"
                          "    heartbeat = 250ms\n"
                          "    max_body = 64kB\n"
                          "    verbose = yes\n"
                          "erp\n"
                          "    mode = sandbox\n"
                          "log\n"
                          "    level = \"debug\"    #   trailing comment\n",
                          0644);
    s_settings_t settings;
    char error[512];
    cw_config_t *config = cw_config_new (s_schema);
    ck_assert_msg (
        cw_config_load (config, file, &settings, error, sizeof (error)) == 0,
        "%s", error);
    ck_assert_str_eq (settings.name, "edge one");
    ck_assert_str_eq (settings.bind, "tcp://*:7000");
    ck_assert_int_eq (settings.workers, 64);
    ck_assert_int_eq (settings.heartbeat_msec, 250);
    ck_assert_int_eq (settings.max_body, 65536);
    ck_assert (settings.verbose);
    ck_assert_int_eq (settings.mode, 1);
    ck_assert_int_eq (settings.log_level, CW_LOG_DEBUG);
    char *expected = zsys_sprintf ("file %s", file);
    ck_assert_str_eq (cw_config_source (config, "erp/mode"), expected);

    //  The environment wins over the file; an empty variable is unset
    setenv ("CW_T_SERVER_HEARTBEAT", "1m", 1);
    setenv ("CW_T_ERP_MODE", "off", 1);
    setenv ("CW_T_SERVER_WORKERS", "", 1);
    setenv ("CW_T_SERVER_BIND", "ipc:///tmp/cw.sock", 1);
    ck_assert_msg (
        cw_config_load (config, file, &settings, error, sizeof (error)) == 0,
        "%s", error);
    ck_assert_int_eq (settings.heartbeat_msec, 60000);
    ck_assert_int_eq (settings.mode, 2);
    ck_assert_int_eq (settings.workers, 64);
    ck_assert_str_eq (settings.bind, "ipc:///tmp/cw.sock");
    ck_assert_str_eq (cw_config_source (config, "server/heartbeat"),
                      "env CW_T_SERVER_HEARTBEAT");
    ck_assert_str_eq (cw_config_source (config, "server/workers"), expected);
    ck_assert_str_eq (cw_config_source (config, "name"), expected);

    //  --print-config: every key, its value and where it came from
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    ck_assert_int_eq (cw_config_print (config, stream), 0);
    fclose (stream);
    char *line = zsys_sprintf ("server/workers = \"64\"    # file %s\n", file);
    ck_assert_ptr_nonnull (strstr (text, line));
    ck_assert_ptr_nonnull (strstr (text, "server/heartbeat = \"1m\"    # env "
                                         "CW_T_SERVER_HEARTBEAT\n"));
    ck_assert_ptr_nonnull (strstr (text, "name = \"edge one\"    # file"));
    size_t lines = 0;
    for (char *at = text; *at; at++)
        lines += *at == '\n';
    ck_assert_uint_eq (lines, 8);
    free (line);
    free (text);
    free (expected);
    cw_config_destroy (&config);
    free (file);
}
END_TEST

START_TEST (test_good_values)
{
    struct {
        const char *variable, *value;
        size_t offset;
        int64_t expected;
    } cases[] = {
        {"CW_T_SERVER_WORKERS", "1", offsetof (s_settings_t, workers), 1},
        {"CW_T_SERVER_HEARTBEAT", "10ms",
         offsetof (s_settings_t, heartbeat_msec), 10},
        {"CW_T_SERVER_HEARTBEAT", "60s",
         offsetof (s_settings_t, heartbeat_msec), 60000},
        {"CW_T_SERVER_HEARTBEAT", "1m", offsetof (s_settings_t, heartbeat_msec),
         60000},
        {"CW_T_SERVER_MAX_BODY", "512", offsetof (s_settings_t, max_body), 512},
        {"CW_T_SERVER_MAX_BODY", "512B", offsetof (s_settings_t, max_body),
         512},
        {"CW_T_SERVER_MAX_BODY", "2KB", offsetof (s_settings_t, max_body),
         2048},
        {"CW_T_SERVER_MAX_BODY", "3GB", offsetof (s_settings_t, max_body),
         INT64_C (3) << 30},
        {"CW_T_SERVER_MAX_BODY", "8388607TB", offsetof (s_settings_t, max_body),
         INT64_C (8388607) << 40},
        {"CW_T_SERVER_MAX_BODY", "0", offsetof (s_settings_t, max_body), 0},
    };
    char error[512];
    cw_config_t *config = cw_config_new (s_schema);
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        s_settings_t settings;
        setenv (cases[index].variable, cases[index].value, 1);
        ck_assert_msg (
            cw_config_load (config, NULL, &settings, error, sizeof (error))
                == 0,
            "%s", error);
        int64_t value;
        memcpy (&value, (char *) &settings + cases[index].offset,
                sizeof (value));
        ck_assert_int_eq (value, cases[index].expected);
        unsetenv (cases[index].variable);
    }
    const char *yes[] = {"true", "TRUE", "yes", "on", "1", NULL};
    const char *no[] = {"false", "No", "off", "0", NULL};
    for (size_t index = 0; yes[index]; index++) {
        s_settings_t settings;
        setenv ("CW_T_SERVER_VERBOSE", yes[index], 1);
        ck_assert_int_eq (
            cw_config_load (config, NULL, &settings, error, sizeof (error)), 0);
        ck_assert (settings.verbose);
    }
    for (size_t index = 0; no[index]; index++) {
        s_settings_t settings;
        setenv ("CW_T_SERVER_VERBOSE", no[index], 1);
        ck_assert_int_eq (
            cw_config_load (config, NULL, &settings, error, sizeof (error)), 0);
        ck_assert (!settings.verbose);
    }
    const char *endpoints[] = {"tcp://127.0.0.1:1", "tcp://*:*",
                               "tcp://[::1]:65535", "tcp://localhost:80",
                               "inproc://broker",   NULL};
    for (size_t index = 0; endpoints[index]; index++) {
        s_settings_t settings;
        setenv ("CW_T_SERVER_BIND", endpoints[index], 1);
        ck_assert_msg (
            cw_config_load (config, NULL, &settings, error, sizeof (error))
                == 0,
            "%s", error);
        ck_assert_str_eq (settings.bind, endpoints[index]);
    }
    s_settings_t settings;
    setenv ("CW_T_LOG_LEVEL", "fatal", 1);
    ck_assert_int_eq (
        cw_config_load (config, NULL, &settings, error, sizeof (error)), 0);
    ck_assert_int_eq (settings.log_level, CW_LOG_FATAL);
    cw_config_destroy (&config);
}
END_TEST

START_TEST (test_bad_values)
{
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "ten",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"ten\" is not a duration (use "
                  "e.g. 250ms, 10s, 5m, 1h)");
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "10",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"10\" is not a duration (use "
                  "e.g. 250ms, 10s, 5m, 1h)");
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "1.5s",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"1.5s\" is not a duration (use "
                  "e.g. 250ms, 10s, 5m, 1h)");
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "-1s",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"-1s\" is not a duration (use "
                  "e.g. 250ms, 10s, 5m, 1h)");
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "2h",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"2h\" is out of range (expected "
                  "a duration from 10ms to 60000ms (e.g. 250ms, 10s, 5m, "
                  "1h))");
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "9ms",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"9ms\" is out of range (expected "
                  "a duration from 10ms to 60000ms (e.g. 250ms, 10s, 5m, "
                  "1h))");
    s_refuse_env ("CW_T_SERVER_HEARTBEAT", "99999999999999999999ms",
                  "config key \"server/heartbeat\" (env "
                  "CW_T_SERVER_HEARTBEAT): \"99999999999999999999ms\" is out "
                  "of range (expected a duration from 10ms to 60000ms (e.g. "
                  "250ms, 10s, 5m, 1h))");
    s_refuse_env ("CW_T_SERVER_WORKERS", "0",
                  "config key \"server/workers\" (env CW_T_SERVER_WORKERS): "
                  "\"0\" is out of range (expected an integer from 1 to 64)");
    s_refuse_env ("CW_T_SERVER_WORKERS", "65",
                  "config key \"server/workers\" (env CW_T_SERVER_WORKERS): "
                  "\"65\" is out of range (expected an integer from 1 to 64)");
    s_refuse_env ("CW_T_SERVER_WORKERS", "four",
                  "config key \"server/workers\" (env CW_T_SERVER_WORKERS): "
                  "\"four\" is not an integer from 1 to 64");
    s_refuse_env ("CW_T_SERVER_WORKERS", "4 ",
                  "config key \"server/workers\" (env CW_T_SERVER_WORKERS): "
                  "\"4 \" is not an integer from 1 to 64");
    s_refuse_env ("CW_T_SERVER_WORKERS", "99999999999999999999",
                  "config key \"server/workers\" (env CW_T_SERVER_WORKERS): "
                  "\"99999999999999999999\" is not an integer from 1 to 64");
    s_refuse_env ("CW_T_SERVER_MAX_BODY", "1XB",
                  "config key \"server/max_body\" (env CW_T_SERVER_MAX_BODY): "
                  "\"1XB\" is not a size (use e.g. 512B, 64kB, 16MB, 1GB)");
    s_refuse_env ("CW_T_SERVER_MAX_BODY", "8388608TB",
                  "config key \"server/max_body\" (env CW_T_SERVER_MAX_BODY): "
                  "\"8388608TB\" is out of range (expected a size (e.g. 512B, "
                  "64kB, 16MB, 1GB))");
    s_refuse_env ("CW_T_SERVER_VERBOSE", "maybe",
                  "config key \"server/verbose\" (env CW_T_SERVER_VERBOSE): "
                  "\"maybe\" is not true or false (also yes/no, on/off, 1/0)");
    s_refuse_env ("CW_T_ERP_MODE", "Live",
                  "config key \"erp/mode\" (env CW_T_ERP_MODE): \"Live\" is "
                  "not one of: live, sandbox, off");
    s_refuse_env ("CW_T_LOG_LEVEL", "loud",
                  "config key \"log/level\" (env CW_T_LOG_LEVEL): \"loud\" is "
                  "not one of: debug, info, warn, error, fatal");
    const char *endpoints[] = {"127.0.0.1:5555",
                               "tcp://",
                               "tcp://host",
                               "tcp://:5555",
                               "tcp://h:0",
                               "tcp://h:65536",
                               "tcp://h:-1",
                               "tcp://h:x",
                               "tcp://a b:1",
                               "ipc://",
                               "inproc://",
                               "udp://h:1",
                               NULL};
    for (size_t index = 0; endpoints[index]; index++) {
        char *expected = zsys_sprintf (
            "config key \"server/bind\" (env CW_T_SERVER_BIND): \"%s\" is "
            "not a ZeroMQ endpoint (tcp://host:port, ipc://path, "
            "inproc://name)",
            endpoints[index]);
        s_refuse_env ("CW_T_SERVER_BIND", endpoints[index], expected);
        free (expected);
    }
    //  Control bytes and long values are quoted back safely
    s_refuse_env ("CW_T_ERP_MODE", "a\x01\x1b[31m",
                  "config key \"erp/mode\" (env CW_T_ERP_MODE): \"a??[31m\" "
                  "is not one of: live, sandbox, off");
    char long_value[200];
    memset (long_value, 'x', sizeof (long_value) - 1);
    long_value[sizeof (long_value) - 1] = 0;
    setenv ("CW_T_ERP_MODE", long_value, 1);
    s_settings_t settings;
    char error[512];
    cw_config_t *config = cw_config_new (s_schema);
    ck_assert_int_eq (
        cw_config_load (config, NULL, &settings, error, sizeof (error)), -1);
    ck_assert_ptr_nonnull (strstr (error, "xxx...\" is not one of"));
    cw_config_destroy (&config);
    unsetenv ("CW_T_ERP_MODE");

    //  A bad value in the file names the file and the variable
    char *file = s_write ("bad.cfg", "server\n    heartbeat = \"ten\"\n", 0644);
    char *expected = zsys_sprintf (
        "config key \"server/heartbeat\" (file %s, env "
        "CW_T_SERVER_HEARTBEAT): \"ten\" is not a duration (use e.g. 250ms, "
        "10s, 5m, 1h)",
        file);
    s_refuse (file, expected);
    //  ...and a good environment value hides it
    setenv ("CW_T_SERVER_HEARTBEAT", "5s", 1);
    config = cw_config_new (s_schema);
    ck_assert_int_eq (
        cw_config_load (config, file, &settings, error, sizeof (error)), 0);
    ck_assert_int_eq (settings.heartbeat_msec, 5000);
    cw_config_destroy (&config);
    free (expected);
    free (file);
}
END_TEST

START_TEST (test_bad_files)
{
    //  Missing file, a directory, not ZPL
    char *missing = zsys_sprintf ("%s/nope.cfg", s_dir);
    char *expected = zsys_sprintf (
        "could not read config file \"%s\": No such file or directory",
        missing);
    s_refuse (missing, expected);
    free (expected);
    free (missing);
    expected = zsys_sprintf (
        "cannot read config file \"%s\": not a regular file", s_dir);
    s_refuse (s_dir, expected);
    free (expected);
    char *file = s_write ("indent.cfg", "server\n  bind = \"x\"\n", 0644);
    expected = zsys_sprintf ("cannot parse config file \"%s\": not valid ZPL "
                             "(RFC 4: 4-space indents, name = value, quoted "
                             "values closed)",
                             file);
    s_refuse (file, expected);
    free (expected);
    free (file);

    //  A NUL byte, a file over the size limit
    file = s_write ("nul.cfg", "", 0644);
    FILE *stream = fopen (file, "w");
    ck_assert_ptr_nonnull (stream);
    fwrite ("name = a\0b\n", 1, 11, stream);
    fclose (stream);
    expected = zsys_sprintf (
        "cannot read config file \"%s\": contains a NUL byte", file);
    s_refuse (file, expected);
    free (expected);
    stream = fopen (file, "w");
    ck_assert_ptr_nonnull (stream);
    for (int line = 0; line < 100000; line++)
        fputs ("#   padding!\n", stream);
    fclose (stream);
    expected = zsys_sprintf (
        "cannot read config file \"%s\": larger than 1048576 bytes", file);
    s_refuse (file, expected);
    free (expected);
    free (file);

    //  Unknown keys (typo safety), keys used as sections, duplicates
    struct {
        const char *content, *message;
    } cases[] = {
        {"server\n    hearbeat = 1s\n", "unknown key \"server/hearbeat\""},
        {"servers\n    bind = \"tcp://*:1\"\n", "unknown key \"servers\""},
        {"loglevel = debug\n", "unknown key \"loglevel\""},
        {"server\n    workers = 2\n        extra = 1\n",
         "unknown key \"server/workers/extra\" (\"server/workers\" is a key, "
         "not a section)"},
        {"server = 1\n    workers = 2\n",
         "\"server\" is a section and cannot have a value"},
        {"server\n    workers = 2\n    workers = 3\n",
         "duplicate key \"server/workers\""},
        {"server\n    workers = 2\nlog\n    level = info\nserver\n"
         "    verbose = 1\n",
         "duplicate key \"server\""},
    };
    for (size_t index = 0; index < sizeof (cases) / sizeof (cases[0]);
         index++) {
        file = s_write ("case.cfg", cases[index].content, 0644);
        expected =
            zsys_sprintf ("config file \"%s\": %s", file, cases[index].message);
        s_refuse (file, expected);
        free (expected);
        free (file);
    }
}
END_TEST

START_TEST (test_required_and_secret_file)
{
    s_secret_settings_t settings;
    char error[512];
    cw_config_t *config = cw_config_new (s_secret_schema);
    ck_assert_int_eq (
        cw_config_load (config, NULL, &settings, error, sizeof (error)), -1);
    ck_assert_str_eq (error, "config key \"db/password_file\" (env "
                             "CW_T_DB_PASSWORD_FILE): missing (set it in the "
                             "config file or in CW_T_DB_PASSWORD_FILE)");
    char *secret = s_write ("db_password", "hunter2\n", 0600);
    char *file = zsys_sprintf ("db\n    password_file = \"%s\"\n", secret);
    char *config_file = s_write ("secret.cfg", file, 0644);
    ck_assert_int_eq (
        cw_config_load (config, config_file, &settings, error, sizeof (error)),
        -1);
    ck_assert_str_eq (error, "config key \"tenant\" (env CW_T_TENANT): "
                             "missing (set it in the config file or in "
                             "CW_T_TENANT)");
    setenv ("CW_T_TENANT", "t1", 1);
    ck_assert_msg (
        cw_config_load (config, config_file, &settings, error, sizeof (error))
            == 0,
        "%s", error);
    ck_assert_str_eq (settings.password_file, secret);
    ck_assert_str_eq (settings.tenant, "t1");
    //  The secret itself never shows in the printed config
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    ck_assert_int_eq (cw_config_print (config, stream), 0);
    fclose (stream);
    ck_assert_ptr_null (strstr (text, "hunter2"));
    ck_assert_ptr_nonnull (strstr (text, secret));
    free (text);

    //  A secret file others can read is refused at load
    ck_assert_int_eq (chmod (secret, 0644), 0);
    ck_assert_int_eq (
        cw_config_load (config, config_file, &settings, error, sizeof (error)),
        -1);
    ck_assert_msg (strstr (error, "config key \"db/password_file\" (file ")
                       == error,
                   "%s", error);
    ck_assert_ptr_nonnull (strstr (error, secret));
    ck_assert_ptr_null (strstr (error, "hunter2"));
    setenv ("CW_T_DB_PASSWORD_FILE", "", 1);
    ck_assert_int_eq (
        cw_config_load (config, config_file, &settings, error, sizeof (error)),
        -1);
    setenv ("CW_T_DB_PASSWORD_FILE", "/nonexistent/secret", 1);
    ck_assert_int_eq (
        cw_config_load (config, config_file, &settings, error, sizeof (error)),
        -1);
    ck_assert_msg (strstr (error, "config key \"db/password_file\" (env "
                                  "CW_T_DB_PASSWORD_FILE): ")
                       == error,
                   "%s", error);
    ck_assert_ptr_nonnull (strstr (error, "/nonexistent/secret"));
    cw_config_destroy (&config);
    free (config_file);
    free (file);
    free (secret);
}
END_TEST

START_TEST (test_sample)
{
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    ck_assert_int_eq (cw_config_write_sample (s_schema, "test program", stream),
                      0);
    fclose (stream);
    ck_assert_ptr_nonnull (strstr (text, "#   test program\n"));
    ck_assert_ptr_nonnull (
        strstr (text, "\nserver\n    #   where workers connect\n    #   a "
                      "ZeroMQ endpoint (tcp://host:port, ipc://path, "
                      "inproc://name); env CW_T_SERVER_BIND\n    bind = "
                      "\"tcp://127.0.0.1:5555\"\n"));
    ck_assert_ptr_nonnull (strstr (text, "env CW_T_LOG_LEVEL\n    level = "
                                         "\"info\"\n"));
    //  The sample loads and gives the defaults, from the file
    char *file = s_write ("sample.cfg", text, 0644);
    s_settings_t settings;
    char error[512];
    cw_config_t *config = cw_config_new (s_schema);
    ck_assert_msg (
        cw_config_load (config, file, &settings, error, sizeof (error)) == 0,
        "%s\n%s", error, text);
    ck_assert_int_eq (settings.heartbeat_msec, 1000);
    ck_assert_str_eq (settings.name, "causeway");
    char *expected = zsys_sprintf ("file %s", file);
    ck_assert_str_eq (cw_config_source (config, "log/level"), expected);
    free (expected);
    cw_config_destroy (&config);
    free (file);
    free (text);

    //  Required keys are written commented out
    stream = open_memstream (&text, &size);
    ck_assert_int_eq (
        cw_config_write_sample (s_secret_schema, "secrets", stream), 0);
    fclose (stream);
    ck_assert_ptr_nonnull (
        strstr (text, "db\n    #   file holding the database password\n"
                      "    #   the path of a secret file readable only by its "
                      "owner; env CW_T_DB_PASSWORD_FILE\n    #   required, "
                      "no default\n    #password_file = \"\"\n"));
    file = s_write ("sample2.cfg", text, 0644);
    s_secret_settings_t secret_settings;
    config = cw_config_new (s_secret_schema);
    ck_assert_int_eq (
        cw_config_load (config, file, &secret_settings, error, sizeof (error)),
        -1);
    ck_assert_ptr_nonnull (strstr (error, "missing"));
    cw_config_destroy (&config);
    free (file);
    free (text);
}
END_TEST

START_TEST (test_load_or_exit_good)
{
    s_settings_t settings;
    cw_config_t *config = cw_config_new (s_schema);
    cw_config_load_or_exit (config, NULL, &settings);
    ck_assert_int_eq (settings.workers, 4);
    cw_config_destroy (&config);
}
END_TEST

START_TEST (test_load_or_exit_bad)
{
    //  Exits with code 2 after one fatal log line (checked by Check)
    setenv ("CW_T_SERVER_HEARTBEAT", "ten", 1);
    cw_log_init ("check_cw_config", CW_LOG_INFO);
    s_settings_t settings;
    cw_config_t *config = cw_config_new (s_schema);
    cw_config_load_or_exit (config, NULL, &settings);
    ck_abort_msg ("cw_config_load_or_exit returned on a bad value");
}
END_TEST

//  A schema that names a secret in a plain key: refused by assertion.
typedef struct {
    const char *password;
} s_bad_settings_t;

static const cw_config_entry_t s_bad_schema[] = {
    {.path = "db/password",
     .env = "CW_T_DB_PASSWORD",
     .type = CW_CONFIG_STRING,
     .default_value = "x",
     .offset = offsetof (s_bad_settings_t, password),
     .help = "no"},
    {.path = NULL}};

START_TEST (test_secret_key_refused)
{
    cw_config_t *config = cw_config_new (s_bad_schema);
    cw_config_destroy (&config);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_config");
    TCase *load = tcase_create ("load");
    tcase_set_timeout (load, 20);
    tcase_add_checked_fixture (load, s_setup, s_teardown);
    tcase_add_test (load, test_defaults);
    tcase_add_test (load, test_file_and_env);
    tcase_add_test (load, test_good_values);
    tcase_add_test (load, test_required_and_secret_file);
    suite_add_tcase (suite, load);
    TCase *malformed = tcase_create ("malformed");
    tcase_set_timeout (malformed, 20);
    tcase_add_checked_fixture (malformed, s_setup, s_teardown);
    tcase_add_test (malformed, test_bad_values);
    tcase_add_test (malformed, test_bad_files);
    tcase_add_exit_test (malformed, test_load_or_exit_good, 0);
    tcase_add_exit_test (malformed, test_load_or_exit_bad, 2);
    tcase_add_test_raise_signal (malformed, test_secret_key_refused, SIGABRT);
    suite_add_tcase (suite, malformed);
    TCase *sample = tcase_create ("sample");
    tcase_set_timeout (sample, 20);
    tcase_add_checked_fixture (sample, s_setup, s_teardown);
    tcase_add_test (sample, test_sample);
    suite_add_tcase (suite, sample);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
