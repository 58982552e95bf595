/*  =========================================================================
    cw_mpjson - canonical msgpack form of a JSON value

    Members of an object are gathered (key, key length, value) straight
    from jansson's iterator, sorted once (insertion sort on short runs,
    then a merge), and written; no key is looked up again, none is cut at
    a NUL byte. The member lists of all the objects on the path from the root
    to the value being written share one stack of entries, on the caller's
    stack while it is small enough and on the heap beyond that, so an
    ordinary tree is packed without any allocation.
    =========================================================================
*/
#include "cw_mpjson.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_LOCAL_MEMBERS 64  //  Member entries held on the C stack
#define S_RUN_MEMBERS 16    //  Members sorted by insertion, then merged

//  One member of an object being written
typedef struct {
    const char *key;      //  Key bytes, borrowed from the object
    size_t length;        //  Key length in bytes (NUL bytes included)
    const json_t *value;  //  Member value, borrowed from the object
} s_member_t;

//  Member entries of the objects being written, outermost first
typedef struct {
    s_member_t *members;  //  local, or a heap copy once that is too small
    size_t size;          //  Entries members can hold
    size_t used;          //  Entries taken by the objects being written
    s_member_t local[S_LOCAL_MEMBERS];  //  First entries, no allocation
} s_stack_t;

//  Byte order of keys as unsigned chars, a key before its extensions. On
//  keys without NUL this is exactly strcmp's order.
static int
s_compare_members (const s_member_t *first, const s_member_t *second)
{
    size_t common =
        first->length < second->length ? first->length : second->length;
    int order = memcmp (first->key, second->key, common);
    if (order)
        return order;
    return (first->length > second->length) - (first->length < second->length);
}

//  Sorts count members by key, using count entries of scratch: runs of
//  S_RUN_MEMBERS by insertion, then runs merged in pairs. Keys of one
//  object are all different, so the order is total and any correct sort
//  gives the same result.
static void
s_sort_members (s_member_t *members, s_member_t *scratch, size_t count)
{
    for (size_t start = 0; start < count; start += S_RUN_MEMBERS) {
        size_t end =
            start + S_RUN_MEMBERS < count ? start + S_RUN_MEMBERS : count;
        for (size_t index = start + 1; index < end; index++) {
            s_member_t member = members[index];
            size_t slot = index;
            while (slot > start
                   && s_compare_members (&members[slot - 1], &member) > 0) {
                members[slot] = members[slot - 1];
                slot--;
            }
            members[slot] = member;
        }
    }
    s_member_t *from = members;
    s_member_t *to = scratch;
    for (size_t width = S_RUN_MEMBERS; width < count; width *= 2) {
        for (size_t left = 0; left < count; left += 2 * width) {
            size_t middle = left + width < count ? left + width : count;
            size_t right = middle + width < count ? middle + width : count;
            size_t first = left;
            size_t second = middle;
            size_t slot = left;
            while (first < middle && second < right)
                if (s_compare_members (&from[second], &from[first]) < 0)
                    to[slot++] = from[second++];
                else
                    to[slot++] = from[first++];
            while (first < middle)
                to[slot++] = from[first++];
            while (second < right)
                to[slot++] = from[second++];
        }
        s_member_t *swap = from;
        from = to;
        to = swap;
    }
    if (from != members)
        memcpy (members, from, count * sizeof (s_member_t));
}

//  Makes room for count more entries above the ones in use.
static void
s_stack_reserve (s_stack_t *stack, size_t count)
{
    if (count <= stack->size - stack->used)
        return;
    size_t size = stack->size * 2;
    while (size - stack->used < count)
        size *= 2;
    s_member_t *members;
    if (stack->members == stack->local) {
        members = (s_member_t *) malloc (size * sizeof (s_member_t));
        assert (members);
        memcpy (members, stack->local, stack->used * sizeof (s_member_t));
    }
    else {
        members =
            (s_member_t *) realloc (stack->members, size * sizeof (s_member_t));
        assert (members);
    }
    stack->members = members;
    stack->size = size;
}

static void
s_pack (msgpack_packer *packer, const json_t *value, s_stack_t *stack);

static void
s_pack_object (msgpack_packer *packer, const json_t *object, s_stack_t *stack)
{
    size_t count = json_object_size (object);
    //  Entries for the members, and as many again to sort them
    s_stack_reserve (stack, 2 * count);
    size_t base = stack->used;
    s_member_t *members = stack->members + base;
    size_t index = 0;
    void *iterator = json_object_iter ((json_t *) object);
    while (iterator) {
        assert (index < count);
        members[index].key = json_object_iter_key (iterator);
#if JANSSON_VERSION_HEX >= 0x020e00
        members[index].length = json_object_iter_key_len (iterator);
#else
        //  Keys cannot hold NUL bytes before jansson 2.14
        members[index].length = strlen (members[index].key);
#endif
        members[index].value = json_object_iter_value (iterator);
        index++;
        iterator = json_object_iter_next ((json_t *) object, iterator);
    }
    assert (index == count);
    s_sort_members (members, members + count, count);
    stack->used += count;
    msgpack_pack_map (packer, count);
    for (index = 0; index < count; index++) {
        //  A nested object may move the entries: copy, then recurse
        s_member_t member = stack->members[base + index];
        msgpack_pack_str (packer, member.length);
        msgpack_pack_str_body (packer, member.key, member.length);
        s_pack (packer, member.value, stack);
    }
    stack->used = base;
}

static void
s_pack (msgpack_packer *packer, const json_t *value, s_stack_t *stack)
{
    assert (value);
    switch (json_typeof (value)) {
        case JSON_OBJECT:
            s_pack_object (packer, value, stack);
            break;
        case JSON_ARRAY: {
            size_t count = json_array_size (value);
            msgpack_pack_array (packer, count);
            for (size_t index = 0; index < count; index++)
                s_pack (packer, json_array_get (value, index), stack);
            break;
        }
        case JSON_STRING:
            msgpack_pack_str (packer, json_string_length (value));
            msgpack_pack_str_body (packer, json_string_value (value),
                                   json_string_length (value));
            break;
        case JSON_INTEGER:
            msgpack_pack_int64 (packer, json_integer_value (value));
            break;
        case JSON_REAL:
            msgpack_pack_double (packer, json_real_value (value));
            break;
        case JSON_TRUE:
            msgpack_pack_true (packer);
            break;
        case JSON_FALSE:
            msgpack_pack_false (packer);
            break;
        case JSON_NULL:
            msgpack_pack_nil (packer);
            break;
    }
}

void
cw_mpjson_pack (msgpack_packer *packer, const json_t *value)
{
    assert (packer);
    assert (value);
    s_stack_t stack;
    stack.members = stack.local;
    stack.size = S_LOCAL_MEMBERS;
    stack.used = 0;
    s_pack (packer, value, &stack);
    assert (stack.used == 0);
    if (stack.members != stack.local)
        free (stack.members);
}
