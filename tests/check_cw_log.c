/*  =========================================================================
    check_cw_log - one JSON object per line, escaped, secrets redacted
    =========================================================================
*/
#include "cw_log.h"

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *
s_parse (const char *line)
{
    json_error_t error;
    json_t *object = json_loads (line, 0, &error);
    ck_assert_msg (object != NULL, "not JSON: %s (%s)", line, error.text);
    ck_assert (json_is_object (object));
    return object;
}

START_TEST (test_fixed_keys)
{
    const char *pairs[] = {"job_id", "42", "#attempt", "2", NULL};
    cw_log_init ("broker", CW_LOG_INFO);
    //  2025-01-31T10:02:03.123Z
    char *line = cw_log_format (1738317723123LL, CW_LOG_INFO,
                                "job_dispatched", "dispatched job", pairs);
    ck_assert_str_eq (line, "{\"ts\":\"2025-01-31T10:02:03.123Z\","
                            "\"level\":\"info\",\"program\":\"broker\","
                            "\"event\":\"job_dispatched\","
                            "\"msg\":\"dispatched job\",\"job_id\":\"42\","
                            "\"attempt\":2}");
    free (line);
}
END_TEST

START_TEST (test_escaping)
{
    const char *pairs[] = {"detail", "quote \" backslash \\ nl \n bell \a",
                           "bad_utf8", "\xff\xfe ok \xc3\xa9", "#count",
                           "12abc", "skipped", NULL, "after", "x", NULL};
    char *line = cw_log_format (0, CW_LOG_WARN, "weird", "a \"msg\"", pairs);
    json_t *object = s_parse (line);
    ck_assert_str_eq (json_string_value (json_object_get (object, "detail")),
                      "quote \" backslash \\ nl \n bell \a");
    ck_assert_str_eq (
        json_string_value (json_object_get (object, "bad_utf8")),
        "\xc3\xbf\xc3\xbe ok \xc3\xa9");
    //  Not a number: written as a string.
    ck_assert_str_eq (json_string_value (json_object_get (object, "count")),
                      "12abc");
    ck_assert_ptr_null (json_object_get (object, "skipped"));
    ck_assert_str_eq (json_string_value (json_object_get (object, "after")),
                      "x");
    json_decref (object);
    free (line);
}
END_TEST

//  Bytes that only look like UTF-8 (lead bytes F5-FF, overlong forms,
//  surrogates, code points beyond U+10FFFF) are escaped byte by byte, so
//  a strict JSON parser still reads the line.
//  The shared UTF-8 rule: lengths of well-formed characters, 0 for what
//  RFC 3629 refuses; the repaired copy keeps its length, '?' per bad byte
START_TEST (test_utf8_repaired)
{
    ck_assert_uint_eq (cw_log_utf8_length ("a"), 1);
    ck_assert_uint_eq (cw_log_utf8_length ("\xc3\xa9"), 2);
    ck_assert_uint_eq (cw_log_utf8_length ("\xe2\x82\xac"), 3);
    ck_assert_uint_eq (cw_log_utf8_length ("\xf0\x9f\x98\x80"), 4);
    const char *bad[] = {"", "\xc3", "\xc0\xaf", "\xe0\x80\xaf",
                         "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x80\x80",
                         "\x80", NULL};
    for (int index = 0; bad[index]; index++)
        ck_assert_uint_eq (cw_log_utf8_length (bad[index]), 0);
    char *repaired = cw_log_utf8_repaired ("caf\xc3");
    ck_assert_str_eq (repaired, "caf?");
    free (repaired);
    repaired = cw_log_utf8_repaired ("\xed\xa0\x80x\xc3\xa9");
    ck_assert_str_eq (repaired, "???x\xc3\xa9");
    free (repaired);
}
END_TEST

START_TEST (test_invalid_utf8_forms)
{
    const char *pairs[] = {"lead_f8",   "\xf8\x80\x80",
                           "overlong",  "\xe0\x80\xaf",
                           "surrogate", "\xed\xa0\x80",
                           "beyond",    "\xf4\x90\x80\x80",
                           "overlong4", "\xf0\x8f\xbf\xbf",
                           "valid",     "\xe2\x82\xac \xf0\x9f\x98\x80",
                           NULL};
    char *line = cw_log_format (0, CW_LOG_INFO, "bytes", "x", pairs);
    json_t *object = s_parse (line);
    ck_assert_str_eq (json_string_value (json_object_get (object, "lead_f8")),
                      "\xc3\xb8\xc2\x80\xc2\x80");
    ck_assert_str_eq (json_string_value (json_object_get (object, "surrogate")),
                      "\xc3\xad\xc2\xa0\xc2\x80");
    ck_assert_str_eq (json_string_value (json_object_get (object, "valid")),
                      "\xe2\x82\xac \xf0\x9f\x98\x80");
    json_decref (object);
    free (line);
}
END_TEST

//  A '#' value is written bare only when it is a JSON number; forms
//  strtod takes but JSON does not (leading zero, "1.", "-.5") stay strings.
START_TEST (test_numeric_forms)
{
    const char *pairs[] = {"#zero_padded", "007", "#trailing_dot", "1.",
                           "#bare_fraction", "-.5", "#dot_exponent", "1.e3",
                           "#integer", "-12", "#real", "0.25e-3", NULL};
    char *line = cw_log_format (0, CW_LOG_INFO, "numbers", "x", pairs);
    json_t *object = s_parse (line);
    ck_assert_str_eq (
        json_string_value (json_object_get (object, "zero_padded")), "007");
    ck_assert_str_eq (
        json_string_value (json_object_get (object, "trailing_dot")), "1.");
    ck_assert_str_eq (
        json_string_value (json_object_get (object, "bare_fraction")), "-.5");
    ck_assert_str_eq (
        json_string_value (json_object_get (object, "dot_exponent")), "1.e3");
    ck_assert_int_eq (json_integer_value (json_object_get (object, "integer")),
                      -12);
    ck_assert (json_is_real (json_object_get (object, "real")));
    json_decref (object);
    free (line);
}
END_TEST

START_TEST (test_secrets_redacted)
{
    const char *pairs[] = {"db_password", "hunter2", "Authorization",
                           "Bearer abc", "api_key", "k", "erp_token", "t",
                           NULL};
    char *line = cw_log_format (0, CW_LOG_ERROR, "auth", "x", pairs);
    ck_assert_ptr_null (strstr (line, "hunter2"));
    ck_assert_ptr_null (strstr (line, "Bearer"));
    json_t *object = s_parse (line);
    ck_assert_str_eq (
        json_string_value (json_object_get (object, "db_password")),
        "[redacted]");
    ck_assert_str_eq (json_string_value (json_object_get (object, "erp_token")),
                      "[redacted]");
    json_decref (object);
    free (line);
}
END_TEST

START_TEST (test_time_usec)
{
    char text[CW_LOG_TIME_SIZE];
    cw_log_time_usec (0, text, sizeof (text));
    ck_assert_str_eq (text, "1970-01-01T00:00:00.000000Z");
    cw_log_time_usec (1795754096123456LL, text, sizeof (text));
    ck_assert_str_eq (text, "2026-11-27T04:34:56.123456Z");
    cw_log_time_usec (1795754096000001LL, text, sizeof (text));
    ck_assert_str_eq (text, "2026-11-27T04:34:56.000001Z");
}
END_TEST

START_TEST (test_levels_and_stream)
{
    cw_log_level_t level;
    ck_assert_int_eq (cw_log_level_parse ("warn", &level), 0);
    ck_assert_int_eq (level, CW_LOG_WARN);
    ck_assert_int_eq (cw_log_level_parse ("loud", &level), -1);
    ck_assert_int_eq (cw_log_level_parse (NULL, &level), -1);
    ck_assert_str_eq (cw_log_level_name (CW_LOG_FATAL), "fatal");

    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    cw_log_set_stream (stream);
    cw_log_init ("worker", CW_LOG_WARN);
    cw_log (CW_LOG_INFO, "hidden", "below the level", NULL);
    cw_log (CW_LOG_ERROR, "shown", "above the level", "flow", "orders", NULL);
    cw_log_set_level (CW_LOG_DEBUG);
    cw_log (CW_LOG_DEBUG, "shown_too", "now visible", NULL);
    cw_log_set_stream (NULL);
    fclose (stream);
    ck_assert_ptr_null (strstr (text, "hidden"));
    char *second = strchr (text, '\n');
    ck_assert_ptr_nonnull (second);
    *second = 0;
    json_t *object = s_parse (text);
    ck_assert_str_eq (json_string_value (json_object_get (object, "program")),
                      "worker");
    ck_assert_str_eq (json_string_value (json_object_get (object, "flow")),
                      "orders");
    json_decref (object);
    ck_assert_ptr_nonnull (strstr (second + 1, "shown_too"));
    free (text);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("cw_log");
    TCase *format = tcase_create ("format");
    tcase_set_timeout (format, 10);
    tcase_add_test (format, test_fixed_keys);
    tcase_add_test (format, test_escaping);
    tcase_add_test (format, test_secrets_redacted);
    tcase_add_test (format, test_invalid_utf8_forms);
    tcase_add_test (format, test_utf8_repaired);
    tcase_add_test (format, test_numeric_forms);
    tcase_add_test (format, test_levels_and_stream);
    tcase_add_test (format, test_time_usec);
    suite_add_tcase (suite, format);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
