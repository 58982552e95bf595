/*  =========================================================================
    worker_fixture - erpsim as a real process for the worker's tests
    =========================================================================
*/
#include "worker_fixture.h"
#include "cw_test.h"
#include "cw_test_http.h"

#include <check.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define WAIT_MSEC 10000
#define ARGS_MAX 64

void
worker_sim_start (worker_sim_t *sim, const char *first, ...)
{
    memset (sim, 0, sizeof (*sim));
    sim->dir = cw_test_tmpdir ("worker-erpsim");
    char *program = cw_test_build_path ("erpsim/erpsim");
    size_t size = strlen (sim->dir) + 32;
    sim->key_path = cw_test_write_file (sim->dir, "api-key",
                                        WORKER_FIXTURE_API_KEY "\n", 0600);
    ck_assert_ptr_nonnull (sim->key_path);
    sim->log_path = (char *) malloc (size);
    snprintf (sim->log_path, size, "%s/log", sim->dir);
    char port_file[512], control_file[512];
    snprintf (port_file, sizeof (port_file), "%s/port", sim->dir);
    snprintf (control_file, sizeof (control_file), "%s/control", sim->dir);
    const char *argv[ARGS_MAX] = {
        program,       "--api-key-file", sim->key_path,
        "--port-file", port_file,        "--control-port-file",
        control_file,  "--listen",       "127.0.0.1:0",
        "--log-level", "debug",          "--allow-unknown-customers"};
    int argc = 12;
    va_list args;
    va_start (args, first);
    for (const char *arg = first; arg && argc < ARGS_MAX - 1;
         arg = va_arg (args, const char *))
        argv[argc++] = arg;
    va_end (args);
    argv[argc] = NULL;
    sim->pid = cw_test_spawn (argv, NULL, sim->log_path);
    ck_assert_int_gt (sim->pid, 0);
    char *line = cw_test_wait_file (port_file, WAIT_MSEC);
    ck_assert_msg (line != NULL, "erpsim wrote no port file");
    sim->port = (int) strtol (line, NULL, 10);
    free (line);
    line = cw_test_wait_file (control_file, WAIT_MSEC);
    ck_assert_msg (line != NULL, "erpsim wrote no control port file");
    sim->control = (int) strtol (line, NULL, 10);
    free (line);
    snprintf (sim->base_url, sizeof (sim->base_url), "http://127.0.0.1:%d",
              sim->port);
    free (program);
}

void
worker_sim_stop (worker_sim_t *sim)
{
    int status = cw_test_stop (sim->pid, WAIT_MSEC);
    ck_assert_msg (WIFEXITED (status) && WEXITSTATUS (status) == 0,
                   "erpsim did not exit cleanly: %d", status);
    free (sim->key_path);
    free (sim->log_path);
    cw_test_tmpdir_destroy (&sim->dir);
}

json_t *
worker_sim_control (worker_sim_t *sim,
                    const char *method,
                    const char *path,
                    const char *body,
                    long *status_p)
{
    struct curl_slist *headers =
        curl_slist_append (NULL, "Content-Type: application/json");
    cw_test_reply_t reply;
    cw_test_http (sim->control, method, path, body, headers, 0, &reply);
    curl_slist_free_all (headers);
    ck_assert_msg (reply.code == CURLE_OK, "control %s %s: %s", method, path,
                   curl_easy_strerror (reply.code));
    if (status_p)
        *status_p = reply.status;
    json_t *json =
        reply.size ? json_loadb (reply.body, reply.size, 0, NULL) : NULL;
    cw_test_reply_free (&reply);
    return json;
}

json_t *
worker_sim_introspect (worker_sim_t *sim)
{
    long status = 0;
    json_t *report =
        worker_sim_control (sim, "GET", "/_introspect", NULL, &status);
    ck_assert_int_eq (status, 200);
    ck_assert_ptr_nonnull (report);
    return report;
}

int
worker_sim_log_count (worker_sim_t *sim, const char *text)
{
    FILE *file = fopen (sim->log_path, "r");
    if (!file)
        return 0;
    char line[8192];
    int count = 0;
    while (fgets (line, sizeof (line), file))
        if (strstr (line, text))
            count++;
    fclose (file);
    return count;
}
