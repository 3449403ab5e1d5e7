/* test_emu_router.c — pure parts of request handling: percent-decoding,
 * path splitting, query parsing, pattern matching (empty and greedy
 * captures), route lookup with method mismatch, and hostile input. */
#include "emu_harness.h"

TEST(pct_decode_table) {
  struct {
    const char *in;
    int form;
    const char *out; /* NULL = rejected */
  } cases[] = {
      {"abc", 0, "abc"},         {"a%20b", 0, "a b"}, {"a+b", 0, "a+b"},   {"a+b", 1, "a b"},
      {"%2Fx", 0, "/x"},         {"%zz", 0, NULL},    {"%2", 0, NULL},     {"%", 0, NULL},
      {"x%00y", 0, NULL},        {"%41%42", 0, "AB"}, {"", 0, ""},
  };
  for(size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char out[64];
    long n = emu_pct_decode(cases[i].in, strlen(cases[i].in), cases[i].form, out, sizeof out);
    if(!cases[i].out) {
      ASSERT_LT(n, 0);
    } else {
      ASSERT_GE(n, 0);
      ASSERT_STR_EQ(out, cases[i].out);
    }
  }
  char small[4];
  ASSERT_LT(emu_pct_decode("abcdef", 6, 0, small, sizeof small), 0);
}

TEST(path_split_and_match) {
  emu_call *c = calloc(1, sizeof *c);
  ASSERT_OK(emu_path_split(c, "/keys/k1/"));
  ASSERT_EQ(c->nsegs, 3);
  ASSERT_STR_EQ(c->segs[2], "");
  ASSERT(emu_pattern_match(c, "/keys/{name}/{version}"));
  ASSERT_STR_EQ(emu_var(c, "name"), "k1");
  ASSERT_STR_EQ(emu_var(c, "version"), "");
  ASSERT(!emu_pattern_match(c, "/keys/{name}"));
  ASSERT_OK(emu_path_split(c, "/KEYS/k1/ABC/WrapKey"));
  ASSERT(emu_pattern_match(c, "/keys/{name}/{version}/wrapkey"));
  ASSERT_STR_EQ(emu_var(c, "version"), "ABC");
  ASSERT_OK(emu_path_split(c, "/"));
  ASSERT_EQ(c->nsegs, 0);
  ASSERT_EQ(emu_path_split(c, "no-slash"), SQ_EPARSE);
  ASSERT_EQ(emu_path_split(c, "/a%zz"), SQ_EPARSE);
  free(c);
}

TEST(greedy_scope_capture) {
  emu_call *c = calloc(1, sizeof *c);
  ASSERT_OK(emu_path_split(c, "/subscriptions/S/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k1"
                              "/providers/Microsoft.Authorization/roleAssignments"));
  ASSERT(emu_pattern_match(c, "/{*scope}/providers/Microsoft.Authorization/roleAssignments"));
  ASSERT_STR_EQ(emu_var(c, "scope"), "/subscriptions/S/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k1");
  ASSERT(!emu_pattern_match(c, "/{*scope}/providers/Microsoft.Authorization/roleDefinitions"));
  ASSERT_OK(emu_path_split(c, "/providers/Microsoft.Authorization/roleAssignments"));
  ASSERT(!emu_pattern_match(c, "/{*scope}/providers/Microsoft.Authorization/roleAssignments"));
  free(c);
}

TEST(query_parse) {
  emu_call *c = calloc(1, sizeof *c);
  ASSERT_OK(emu_query_parse(c, "api-version=7.5&maxresults=2&%24skiptoken=a%2Bb&flag&empty="));
  ASSERT_EQ(c->nquery, 5);
  ASSERT_STR_EQ(emu_query(c, "API-VERSION"), "7.5");
  ASSERT_STR_EQ(emu_query(c, "$skiptoken"), "a+b");
  ASSERT_STR_EQ(emu_query(c, "flag"), "");
  ASSERT_NULL(emu_query(c, "missing"));
  ASSERT_EQ(emu_query_parse(c, "a=%zz"), SQ_EPARSE);
  char big[EMU_MAX_QUERY * 4 + 8] = "";
  for(int i = 0; i <= EMU_MAX_QUERY; i++)
    strcat(big, "a=1&");
  ASSERT_EQ(emu_query_parse(c, big), SQ_ETOOBIG);
  free(c);
}

TEST(route_lookup_and_method_mismatch) {
  emu_call *c = calloc(1, sizeof *c);
  ASSERT_OK(emu_path_split(c, "/keys/k1/versions"));
  ASSERT_EQ(emu_route_find(c, EMU_FAM_KV, "GET"), EMU_MATCH_OK);
  ASSERT_STR_EQ(c->route->pattern, "/keys/{name}/versions");
  ASSERT_EQ(emu_route_find(c, EMU_FAM_KV, "PATCH"), EMU_MATCH_OK); /* /keys/{name}/{version} */
  ASSERT_STR_EQ(emu_var(c, "version"), "versions");
  ASSERT_EQ(emu_route_find(c, EMU_FAM_KV, "DELETE"), EMU_MATCH_METHOD);
  ASSERT_OK(emu_path_split(c, "/nothing/here/at/all"));
  ASSERT_EQ(emu_route_find(c, EMU_FAM_KV, "GET"), EMU_MATCH_NONE);
  ASSERT_OK(emu_path_split(c, "/keys/k1/v1/wrapkey"));
  ASSERT_EQ(emu_route_find(c, EMU_FAM_ARM, "POST"), EMU_MATCH_NONE); /* families do not mix */
  free(c);
}

TEST(too_many_segments) {
  emu_call *c = calloc(1, sizeof *c);
  char p[EMU_MAX_SEGS * 2 + 8] = "";
  for(int i = 0; i <= EMU_MAX_SEGS; i++)
    strcat(p, "/a");
  ASSERT_EQ(emu_path_split(c, p), SQ_ETOOBIG);
  free(c);
}

TEST_MAIN()
