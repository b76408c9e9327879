#!/usr/bin/env bash
# The reference reader of the LDAP benchmarks (bench/ldap-pull.sh,
# bench/scale.sh): ldapsearch paging through the users and groups that
# `ldapbench gen` writes, with the attributes ldapsrc asks for, output
# discarded.
#
#   bench/ldap/reference.sh URL [PAGE] [GROUP_PAGE]
set -euo pipefail
URL=$1
PAGE=${2:-1000}
GROUP_PAGE=${3:-100}
ldapsearch -x -H "$URL" -D "cn=admin,dc=example,dc=test" -w admin-secret -b "ou=people,dc=example,dc=test" -E "pr=$PAGE/noprompt" \
  '(|(objectClass=inetOrgPerson)(objectClass=posixAccount))' \
  entryUUID uid mail givenName sn cn employeeNumber pwdAccountLockedTime shadowExpire pwdReset >/dev/null
ldapsearch -x -H "$URL" -D "cn=admin,dc=example,dc=test" -w admin-secret -b "ou=groups,dc=example,dc=test" -E "pr=$GROUP_PAGE/noprompt" \
  '(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))' \
  cn entryUUID member uniqueMember memberUid >/dev/null
echo "read"
