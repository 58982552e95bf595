/*  =========================================================================
    check_cw_secret - secrets from 0600 files only, wiped after use
    =========================================================================
*/
#include "cw_secret.h"
#include "cw_test.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    s_dir = cw_test_tmpdir ("cw_secret");
    unsetenv ("CW_DEMO_KEY");
    unsetenv ("CW_DEMO_KEY_FILE");
    unsetenv ("CREDENTIALS_DIRECTORY");
}

static void
s_teardown (void)
{
    cw_test_tmpdir_destroy (&s_dir);
}

START_TEST (test_load_private_file)
{
    char error[256];
    char *path = s_write ("key", "s3cret\n", 0600);
    char *secret = cw_secret_load (path, error, sizeof (error));
    ck_assert_str_eq (secret, "s3cret");
    cw_secret_destroy (&secret);
    ck_assert_ptr_null (secret);
    cw_secret_destroy (&secret);    //  twice is harmless
    free (path);
}
END_TEST

START_TEST (test_refuse_readable_by_others)
{
    char error[256];
    char *path = s_write ("key", "s3cret", 0644);
    ck_assert_ptr_null (cw_secret_load (path, error, sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "readable or writable by group"));
    ck_assert_ptr_null (strstr (error, "s3cret"));
    free (path);
    path = s_write ("key2", "s3cret", 0640);
    ck_assert_ptr_null (cw_secret_load (path, error, sizeof (error)));
    free (path);
}
END_TEST

START_TEST (test_refuse_bad_files)
{
    char error[256];
    ck_assert_ptr_null (cw_secret_load ("/nonexistent/key", error,
                                        sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "could not open"));
    char *path = s_write ("empty", "", 0600);
    ck_assert_ptr_null (cw_secret_load (path, error, sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "empty"));
    free (path);
    ck_assert_ptr_null (cw_secret_load (s_dir, error, sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "regular file"));
}
END_TEST

//  A FIFO is refused as "not a regular file" at once; opening it must not
//  wait for a writer (a daemon would hang at start-up).
START_TEST (test_refuse_fifo)
{
    char error[256];
    char path[512];
    snprintf (path, sizeof (path), "%s/fifo", s_dir);
    ck_assert_int_eq (mkfifo (path, 0600), 0);
    ck_assert_ptr_null (cw_secret_load (path, error, sizeof (error)));
    ck_assert_ptr_nonnull (strstr (error, "regular file"));
    unlink (path);
}
END_TEST

START_TEST (test_lookup_order)
{
    char error[256];
    char *secret = NULL;
    ck_assert_int_eq (cw_secret_lookup ("CW_DEMO_KEY", &secret, error,
                                        sizeof (error)), 1);
    ck_assert_ptr_nonnull (strstr (error, "CW_DEMO_KEY_FILE"));

    //  A secret in a plain variable is refused.
    setenv ("CW_DEMO_KEY", "inline", 1);
    ck_assert_int_eq (cw_secret_lookup ("CW_DEMO_KEY", &secret, error,
                                        sizeof (error)), -1);
    ck_assert_ptr_null (strstr (error, "inline"));
    unsetenv ("CW_DEMO_KEY");

    //  systemd credentials directory
    char *credential = s_write ("cw_demo_key", "from-credentials", 0600);
    setenv ("CREDENTIALS_DIRECTORY", s_dir, 1);
    ck_assert_int_eq (cw_secret_lookup ("CW_DEMO_KEY", &secret, error,
                                        sizeof (error)), 0);
    ck_assert_str_eq (secret, "from-credentials");
    cw_secret_destroy (&secret);

    //  NAME_FILE wins over the credentials directory.
    char *path = s_write ("explicit", "from-file\n", 0400);
    setenv ("CW_DEMO_KEY_FILE", path, 1);
    ck_assert_int_eq (cw_secret_lookup ("CW_DEMO_KEY", &secret, error,
                                        sizeof (error)), 0);
    ck_assert_str_eq (secret, "from-file");
    cw_secret_destroy (&secret);
    free (path);
    free (credential);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_secret");
    TCase *files = tcase_create ("files");
    tcase_set_timeout (files, 10);
    tcase_add_checked_fixture (files, s_setup, s_teardown);
    tcase_add_test (files, test_load_private_file);
    tcase_add_test (files, test_refuse_readable_by_others);
    tcase_add_test (files, test_refuse_bad_files);
    tcase_add_test (files, test_refuse_fifo);
    tcase_add_test (files, test_lookup_order);
    suite_add_tcase (suite, files);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
