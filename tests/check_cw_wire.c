/*  =========================================================================
    check_cw_wire - CWP/1 messages over real ZeroMQ sockets (inproc)
    =========================================================================
*/
#include "cw_wire.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MSEC 2000     //  Receive timeout, msec

START_TEST (test_send_and_decode)
{
    zsock_t *router = zsock_new_router ("inproc://cw_wire");
    zsock_t *dealer = zsock_new_dealer (">inproc://cw_wire");
    ck_assert_ptr_nonnull (router);
    ck_assert_ptr_nonnull (dealer);
    zsock_set_rcvtimeo (router, S_TIMEOUT_MSEC);

    cw_msg_t *ready = cw_msg_new (CW_MSG_WORKER, CW_MSG_READY);
    cw_msg_flow_add (ready, "http.generic");
    ready->ready.credit = 64;
    ck_assert_int_eq (cw_wire_send (dealer, ready, "inproc://cw_wire"), 0);

    //  The ROUTER adds the routing id: skip it
    zmsg_t *in = zmsg_recv (router);
    ck_assert_ptr_nonnull (in);
    ck_assert_int_eq (zmsg_size (in), 1 + CW_MSG_FRAMES);
    char reason [CW_MSG_REASON_SIZE];
    cw_msg_error_t error;
    cw_msg_t *got = cw_wire_decode (in, 1, &error, reason, sizeof (reason));
    ck_assert_msg (got != NULL, "%s", reason);
    ck_assert_int_eq (got->protocol, CW_MSG_WORKER);
    ck_assert_int_eq (got->command, CW_MSG_READY);
    ck_assert_int_eq (got->ready.credit, 64);
    cw_msg_destroy (&got);

    //  Without skipping the routing id the frames do not decode
    got = cw_wire_decode (in, 0, &error, reason, sizeof (reason));
    ck_assert_ptr_null (got);
    ck_assert_int_ne (error, CW_MSG_VALID);
    ck_assert_int_gt (strlen (reason), 0);
    zmsg_destroy (&in);

    //  Garbage and too many frames are refused with a reason
    zmsg_t *garbage = zmsg_new ();
    zmsg_addstr (garbage, "CWW01");
    zmsg_addstr (garbage, "x");
    zmsg_addstr (garbage, "not msgpack");
    zmsg_addstr (garbage, "one too many");
    got = cw_wire_decode (garbage, 0, NULL, reason, sizeof (reason));
    ck_assert_ptr_null (got);
    ck_assert_int_gt (strlen (reason), 0);
    zmsg_destroy (&garbage);

    cw_msg_destroy (&ready);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_wire");
    TCase *tcase = tcase_create ("wire");
    tcase_set_timeout (tcase, 10);
    tcase_add_test (tcase, test_send_and_decode);
    suite_add_tcase (suite, tcase);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
