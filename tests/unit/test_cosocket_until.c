/* cosocket_until_find: receiveuntil's matcher. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cosocket.h"

static long find(const char *data, const char *pat, size_t from, size_t *safe)
{
    return cosocket_until_find(data, strlen(data), pat, strlen(pat), from, safe);
}

static void finds_the_first_match(void **state)
{
    (void)state;
    size_t safe;
    assert_int_equal(find("abc--END--def--END--", "--END--", 0, &safe), 3);
    assert_int_equal(safe, 3);
    assert_int_equal(find("--END--", "--END--", 0, &safe), 0);
    assert_int_equal(find("xxABABAB", "ABAB", 0, &safe), 2);   /* overlapping: the first */
}

static void keeps_back_a_tail_that_may_become_a_match(void **state)
{
    (void)state;
    size_t safe;
    assert_int_equal(find("hello\r\n--b", "\r\n--bound", 0, &safe), -1);
    assert_int_equal(safe, 5);                 /* "\r\n--b" may go on into the pattern */
    assert_int_equal(find("hello world", "\r\n--bound", 0, &safe), -1);
    assert_int_equal(safe, 11);                /* nothing to keep */
    assert_int_equal(find("xxABA", "ABAB", 0, &safe), -1);
    assert_int_equal(safe, 2);                 /* the longest prefix kept: "ABA" */
}

static void starts_where_it_is_told(void **state)
{
    (void)state;
    size_t safe;
    /* a match before `from` is not looked for again (the caller knows there is none) */
    assert_int_equal(find("ab-ab-", "ab-", 3, &safe), 3);
    assert_int_equal(find("ab-", "ab-", 3, &safe), -1);
    assert_int_equal(safe, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(finds_the_first_match),
        cmocka_unit_test(keeps_back_a_tail_that_may_become_a_match),
        cmocka_unit_test(starts_where_it_is_told),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
