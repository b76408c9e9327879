package ldapsrc

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/internal/testsrv/samba"
)

// Samba domains, provisioned once per test run and only when a test asks.
var (
	sambaBase     *samba.Template
	sambaFixtures *samba.Template
)

func TestMain(m *testing.M) {
	sambaBase = samba.NewTemplate()
	sambaFixtures = sambaBase.With(func(dir string) error { return samba.AddOffline(dir, adFixtureLDIF()) })
	code := m.Run()
	sambaBase.Close()
	os.Exit(code)
}

// bigGroupSize is past Active Directory's 1,500 values per attribute read.
const bigGroupSize = 1600

// adFixtureLDIF is the Active Directory most AD tests read:
//
//	OU=Staff:  alice (active, employeeNumber 1001), bob (disabled),
//	           carol (expires 2026-12-01), dave (must change password),
//	           erin (locked out)
//	OU=Groups: staff ⊃ eng ⊃ ops ⊃ eng (a cycle); eng: bob; ops: carol
//	OU=Bulk:   1,600 users, all in OU=BulkGroups/big
func adFixtureLDIF() string {
	var b strings.Builder
	pw := samba.UnicodePwd("Us3r-Passw0rd!")
	for _, ou := range []string{"Staff", "Groups", "Bulk", "BulkGroups"} {
		fmt.Fprintf(&b, "dn: OU=%s,{BASE}\nobjectClass: organizationalUnit\nou: %s\n\n", ou, ou)
	}
	user := func(name string, extra ...string) {
		given := strings.ToUpper(name[:1]) + name[1:]
		fmt.Fprintf(&b, "dn: CN=%s Test,OU=Staff,{BASE}\nobjectClass: user\nsAMAccountName: %s\nuserPrincipalName: %s@example.test\n"+
			"givenName: %s\nsn: Test\ndisplayName: %s Test\nmail: %s@Example.test\nunicodePwd:: %s\n",
			given, name, name, given, given, name, pw)
		for _, e := range extra {
			b.WriteString(e + "\n")
		}
		b.WriteString("\n")
	}
	user("alice", "userAccountControl: 512", "employeeNumber: 1001")
	user("bob", "userAccountControl: 514")
	user("carol", "userAccountControl: 512", "accountExpires: 134405568000000000")
	user("dave", "userAccountControl: 512", "pwdLastSet: 0")
	user("erin", "userAccountControl: 512", "lockoutTime: 134399000000000000")
	group := func(name, ou string, members ...string) {
		fmt.Fprintf(&b, "dn: CN=%s,OU=%s,{BASE}\nobjectClass: group\nsAMAccountName: %s\n", name, ou, name)
		for _, m := range members {
			b.WriteString("member: " + m + "\n")
		}
		b.WriteString("\n")
	}
	staff := func(n string) string { return "CN=" + n + " Test,OU=Staff,{BASE}" }
	grp := func(n string) string { return "CN=" + n + ",OU=Groups,{BASE}" }
	group("ops", "Groups", staff("Carol"))
	group("eng", "Groups", staff("Bob"), grp("ops"))
	group("staff", "Groups", staff("Alice"), grp("eng"))
	// Close the cycle ops → eng once both exist.
	fmt.Fprintf(&b, "dn: %s\nchangetype: modify\nadd: member\nmember: %s\n-\n\n", grp("ops"), grp("eng"))
	var members []string
	for i := 0; i < bigGroupSize; i++ {
		fmt.Fprintf(&b, "dn: CN=bulk%04d,OU=Bulk,{BASE}\nobjectClass: user\nsAMAccountName: bulk%04d\nuserAccountControl: 512\npwdLastSet: -1\n\n", i, i)
		members = append(members, fmt.Sprintf("CN=bulk%04d,OU=Bulk,{BASE}", i))
	}
	group("big", "BulkGroups", members...)
	return b.String()
}
