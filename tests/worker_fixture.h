/*  =========================================================================
    worker_fixture - erpsim as a real process for the worker's tests:
    start on a free port, control faults, read /_introspect
    =========================================================================
*/
#ifndef WORKER_FIXTURE_H_INCLUDED
#define WORKER_FIXTURE_H_INCLUDED

#include <jansson.h>
#include <sys/types.h>

#define WORKER_FIXTURE_API_KEY "worker-test-key-0123456789"

typedef struct {
    pid_t pid;          //  erpsim process
    int port;           //  API port
    int control;        //  Control port
    char *dir;          //  Private directory (key file, log)
    char *key_path;     //  API key file (0600)
    char *log_path;     //  erpsim's log
    char base_url[64];  //  http://127.0.0.1:port
} worker_sim_t;

//  Starts erpsim (debug log, so served requests are logged) with extra
//  flags, NULL-terminated. Fails the test if it does not come up.
void worker_sim_start (worker_sim_t *sim, const char *first, ...);

//  Stops erpsim by pid and checks it exited 0; removes its directory.
void worker_sim_stop (worker_sim_t *sim);

//  A request to the control listener; returns the parsed reply body
//  (caller decrefs) and the status in *status_p.
json_t *worker_sim_control (worker_sim_t *sim,
                            const char *method,
                            const char *path,
                            const char *body,
                            long *status_p);

//  GET /_introspect. Caller decrefs.
json_t *worker_sim_introspect (worker_sim_t *sim);

//  Counts lines of erpsim's log that contain text.
int worker_sim_log_count (worker_sim_t *sim, const char *text);

#endif
