/* Unit tests for azure/cloud.h: named clouds, custom cloud files and flags,
 * validation (https only), scopes and origin checks. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sqltde/azure/cloud.h"
#include "test.h"

static char *write_tmp(const char *content, const char *suffix) {
  static char path[256];
  snprintf(path, sizeof path, "/tmp/sqltde-cloud-XXXXXX%s", suffix);
  int fd = mkstemps(path, (int)strlen(suffix));
  if(fd < 0)
    return NULL;
  ssize_t w = write(fd, content, strlen(content));
  close(fd);
  return w == (ssize_t)strlen(content) ? path : NULL;
}

TEST(named_clouds) {
  sq_azure_cloud c;
  sq_err e;
  ASSERT_OK(sq_azure_cloud_named("AzurePublicCloud", &c, &e));
  ASSERT_STR_EQ(c.authority_host, "https://login.microsoftonline.com");
  ASSERT_STR_EQ(c.arm_endpoint, "https://management.azure.com");
  ASSERT_STR_EQ(c.kv_dns_suffix, "vault.azure.net");
  ASSERT_STR_EQ(c.kv_audience, "https://vault.azure.net");
  ASSERT_OK(sq_azure_cloud_named("usgovernment", &c, &e));
  ASSERT_STR_EQ(c.name, "AzureUSGovernment");
  ASSERT_STR_EQ(c.authority_host, "https://login.microsoftonline.us");
  ASSERT_STR_EQ(c.kv_dns_suffix, "vault.usgovcloudapi.net");
  ASSERT_OK(sq_azure_cloud_named("AZURECHINACLOUD", &c, &e));
  ASSERT_STR_EQ(c.arm_endpoint, "https://management.chinacloudapi.cn");
  ASSERT_STR_EQ(c.kv_dns_suffix, "vault.azure.cn");
  ASSERT_EQ(sq_azure_cloud_named("Mars", &c, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "Mars");
  /* every named cloud passes validation unchanged */
  const char *names[] = {"public", "usgov", "china"};
  for(int i = 0; i < 3; i++) {
    ASSERT_OK(sq_azure_cloud_named(names[i], &c, &e));
    sq_azure_cloud before = c;
    ASSERT_OK(sq_azure_cloud_validate(&c, &e));
    ASSERT(memcmp(&before, &c, sizeof c) == 0);
  }
}

TEST(custom_cloud_json_file) {
  const char *json = "{\"name\":\"emulator\",\"authorityHost\":\"https://login.localhost:8443/\","
                     "\"resourceManagerEndpoint\":\"https://management.localhost:8443\","
                     "\"resourceManagerAudience\":\"https://management.localhost\","
                     "\"keyVaultDNSSuffix\":\".vault.localhost\","
                     "\"keyVaultAudience\":\"https://vault.localhost\",\"caFile\":\"ca.pem\"}";
  char *p = write_tmp(json, ".json");
  ASSERT_NOT_NULL(p);
  sq_azure_cloud c;
  sq_err e;
  ASSERT_OK(sq_azure_cloud_load_file(p, &c, &e));
  ASSERT_STR_EQ(c.name, "emulator");
  ASSERT_STR_EQ(c.authority_host, "https://login.localhost:8443"); /* trailing '/' dropped */
  ASSERT_STR_EQ(c.kv_dns_suffix, "vault.localhost");               /* leading '.' dropped */
  ASSERT_STR_EQ(c.ca_file, "/tmp/ca.pem");                          /* relative to the file */
  unlink(p);
}

TEST(custom_cloud_yaml_with_base) {
  const char *yaml = "# emulator\nbase: AzurePublicCloud\n"
                     "resourceManagerEndpoint: https://management.localhost:9443\n"
                     "caFile: /etc/ca.pem\n";
  char *p = write_tmp(yaml, ".yaml");
  ASSERT_NOT_NULL(p);
  sq_azure_cloud c;
  sq_err e;
  ASSERT_OK(sq_azure_cloud_load_file(p, &c, &e));
  ASSERT_STR_EQ(c.arm_endpoint, "https://management.localhost:9443");
  ASSERT_STR_EQ(c.authority_host, "https://login.microsoftonline.com"); /* from base */
  ASSERT_STR_EQ(c.ca_file, "/etc/ca.pem");
  ASSERT_STR_EQ(c.name, "custom");
  unlink(p);
}

TEST(custom_cloud_file_errors) {
  struct {
    const char *content;
    sq_code code;
    const char *msg;
  } cases[] = {
      {"{\"authorityHost\":\"https://a\"}", SQ_EINVAL, "needs"},
      {"{\"authoritHost\":\"https://a\"}", SQ_EINVAL, "unknown key"},
      {"{\"base\":\"public\",\"resourceManagerEndpoint\":\"http://management.localhost\"}", SQ_EINVAL,
       "https"},
      {"{\"base\":\"public\",\"resourceManagerEndpoint\":5}", SQ_EPARSE, "string"},
      {"{\"base\":\"public\",", SQ_EPARSE, "malformed"},
      {"base: public\nkeyVaultDNSSuffix: [a, b]\n", SQ_EPARSE, "plain strings"},
      {"- a\n- b\n", SQ_EPARSE, "mapping"},
      {"base: public\nkeyVaultDNSSuffix: \"vault/evil\"\n", SQ_EINVAL, "bare host"},
      {"base: public\nresourceManagerEndpoint: https://m.localhost/?x=1\n", SQ_EINVAL, "query"},
      {"base: nowhere\n", SQ_EINVAL, "unknown Azure cloud"},
  };
  for(size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *p = write_tmp(cases[i].content, ".cfg");
    ASSERT_NOT_NULL(p);
    sq_azure_cloud c;
    sq_err e;
    sq_err_clear(&e);
    sq_code rc = sq_azure_cloud_load_file(p, &c, &e);
    if(rc != cases[i].code)
      fprintf(stderr, "case %zu: %s\n", i, e.message);
    ASSERT_EQ(rc, cases[i].code);
    ASSERT_STR_CONTAINS(e.message, cases[i].msg);
    unlink(p);
  }
  sq_azure_cloud c;
  sq_err e;
  ASSERT_EQ(sq_azure_cloud_load_file("/nonexistent/cloud.yaml", &c, &e), SQ_EIO);
}

TEST(flags) {
  sq_azure_cloud c;
  sq_err e;
  ASSERT_OK(sq_azure_cloud_set(&c, "azure-cloud", "AzurePublicCloud", &e));
  ASSERT_OK(sq_azure_cloud_set(&c, "azure-arm-endpoint", "https://management.localhost:1234/", &e));
  ASSERT_OK(sq_azure_cloud_set(&c, "azure-ca-file", "/x/ca.pem", &e));
  ASSERT_OK(sq_azure_cloud_validate(&c, &e));
  ASSERT_STR_EQ(c.arm_endpoint, "https://management.localhost:1234");
  ASSERT_STR_EQ(c.ca_file, "/x/ca.pem");
  ASSERT_STR_EQ(c.name, "custom");
  ASSERT_EQ(sq_azure_cloud_set(&c, "azure-insecure-skip-verify", "true", &e), SQ_EINVAL);
  ASSERT_OK(sq_azure_cloud_set(&c, "azure-authority-host", "http://login.localhost", &e));
  ASSERT_EQ(sq_azure_cloud_validate(&c, &e), SQ_EINVAL);
  ASSERT_STR_CONTAINS(e.message, "https");
}

TEST(scope_and_urls) {
  char s[64];
  sq_err e;
  ASSERT_OK(sq_azure_scope("https://vault.azure.net", s, sizeof s, &e));
  ASSERT_STR_EQ(s, "https://vault.azure.net/.default");
  ASSERT_OK(sq_azure_scope("https://management.core.windows.net/", s, sizeof s, &e));
  ASSERT_STR_EQ(s, "https://management.core.windows.net/.default");
  ASSERT_EQ(sq_azure_scope("https://a-very-long-audience-name.example.com/x/y/z", s, 20, &e),
            SQ_ETOOBIG);

  char scheme[16], host[64];
  int port;
  ASSERT_OK(sq_azure_url_split("HTTPS://KV1.Vault.Localhost:8443/keys/a", scheme, sizeof scheme, host,
                               sizeof host, &port));
  ASSERT_STR_EQ(scheme, "https");
  ASSERT_STR_EQ(host, "kv1.vault.localhost");
  ASSERT_EQ(port, 8443);
  ASSERT_EQ(sq_azure_url_split("https://user@evil.com/", scheme, sizeof scheme, host, sizeof host,
                               &port),
            SQ_EINVAL);
  ASSERT_EQ(sq_azure_url_split("https://h:99999/", scheme, sizeof scheme, host, sizeof host, &port),
            SQ_EINVAL);
  ASSERT_EQ(sq_azure_url_split("no-scheme", scheme, sizeof scheme, host, sizeof host, &port),
            SQ_EINVAL);

  ASSERT(sq_azure_same_origin("https://management.azure.com/subscriptions/x?a=1",
                              "https://management.azure.com"));
  ASSERT(sq_azure_same_origin("https://management.azure.com:443/x", "https://management.azure.com"));
  ASSERT(!sq_azure_same_origin("https://management.azure.com.evil.com/x",
                               "https://management.azure.com"));
  ASSERT(!sq_azure_same_origin("http://management.azure.com/x", "https://management.azure.com"));
  ASSERT(!sq_azure_same_origin("https://management.localhost:1/x", "https://management.localhost:2"));

  ASSERT(sq_azure_host_has_suffix("kv1.vault.azure.net", "vault.azure.net"));
  ASSERT(sq_azure_host_has_suffix("KV1.VAULT.azure.net", "vault.azure.net"));
  ASSERT(!sq_azure_host_has_suffix("vault.azure.net", "vault.azure.net"));
  ASSERT(!sq_azure_host_has_suffix("kv1evilvault.azure.net", "vault.azure.net"));
  ASSERT(!sq_azure_host_has_suffix("kv1.vault.azure.net.evil", "vault.azure.net"));
}

TEST_MAIN()
