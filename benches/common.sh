# Shared by the benches: sourced, not run.

# idflow.toml's head for a slapd source on 127.0.0.1: the metaverse, the rules folder and the
# `corp` ldap connector (plain LDAP, the generated directory's people and groups). The bench
# appends its target connector.
#   openldap_source PORT PASSWORD_ENV
openldap_source() {
  cat <<CONF
[metaverse]
path = "state/idflow.db"
[rules]
paths = ["rules"]
[[connector]]
name = "corp"
type = "ldap"
url = "ldap://127.0.0.1:$1"
starttls = false
bind_dn = "cn=admin,dc=example,dc=org"
password_env = "$2"
base_dn = "dc=example,dc=org"
reference_attributes = ["member", "manager"]
[connector.object_types]
person = "(objectClass=inetOrgPerson)"
group = "(objectClass=groupOfNames)"
CONF
}
