//  fuzz-sources: erpsim/erpsim_validate.c
/*  =========================================================================
    fuzz_erpsim_json - erpsim's request validation never crashes, leaks or
    misreports: every input gives either a normalised object or a problem
    with a 4xx status and a detail.

    The first byte picks the validator, the rest is the request body.
    =========================================================================
*/
#include "../../erpsim/erpsim_validate.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
s_check (json_t *result, const erpsim_problem_t *problem)
{
    if (result) {
        assert (json_is_object (result));
        //  Normalised output must serialise and parse back
        char *text = json_dumps (result, JSON_COMPACT);
        assert (text);
        json_t *again = json_loads (text, 0, NULL);
        assert (again && json_equal (again, result));
        json_decref (again);
        free (text);
        json_decref (result);
    }
    else {
        assert (problem->status == 400 || problem->status == 422);
        assert (problem->detail[0] != '\0');
        assert (problem->slug[0] != '\0');
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *) data + 1;
    size_t length = size - 1;
    erpsim_problem_t problem;
    memset (&problem, 0, sizeof (problem));
    switch (data[0] % 8) {
        case 0:
            s_check (erpsim_validate_customer (body, length, &problem),
                     &problem);
            break;
        case 1:
            s_check (erpsim_validate_order (body, length, false, &problem),
                     &problem);
            break;
        case 2:
            s_check (erpsim_validate_order (body, length, true, &problem),
                     &problem);
            break;
        case 3:
            s_check (erpsim_validate_status (body, length, &problem), &problem);
            break;
        case 4:
            s_check (erpsim_validate_fault_config (body, length, &problem),
                     &problem);
            break;
        case 5:
            s_check (erpsim_validate_rates (body, length, &problem), &problem);
            break;
        case 6:
            s_check (erpsim_validate_generate (body, length, &problem),
                     &problem);
            break;
        default: {
            char *text = (char *) malloc (length + 1);
            assert (text);
            memcpy (text, body, length);
            text[length] = '\0';
            int64_t value;
            if (erpsim_validate_query_int ("since", text, 0, INT64_MAX, 0,
                                           &value, &problem)
                == 0)
                assert (value >= 0);
            else
                assert (problem.status == 400);
            free (text);
            break;
        }
    }
    return 0;
}
