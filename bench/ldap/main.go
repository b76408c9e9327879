// Command ldapbench is the Go half of bench/ldap-pull.sh: it generates the
// benchmark directory (users in groups, as LDIF), prepares a throwaway
// slapd folder for it, and pulls the directory with ldapsrc into the
// canonical model, reporting what it read and how long it took.
//
//	ldapbench gen -users 100000 -groups 1000 -per-user 3 > data.ldif
//	ldapbench setup -dir DIR -ldif data.ldif
//	ldapbench pull -url ldap://127.0.0.1:PORT -parallel 2
//	ldapbench goldap -url ldap://127.0.0.1:PORT   # go-ldap's paged search, for reference
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/internal/testsrv/slapd"
	"github.com/dirsync/dirsync/ldapsrc"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ldapbench gen|setup|pull [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = gen(os.Args[2:])
	case "setup":
		err = setup(os.Args[2:])
	case "pull":
		err = pull(os.Args[2:])
	case "goldap":
		err = goldapPull(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ldapbench:", err)
		os.Exit(1)
	}
}

// gen writes users and groupOfNames groups: user i is in perUser groups
// spread over all groups; the first tenth of the groups each contain the
// group a tenth further on (nested membership to resolve).
func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	users := fs.Int("users", 100000, "users")
	groups := fs.Int("groups", 1000, "groups")
	perUser := fs.Int("per-user", 3, "groups per user")
	suffix := fs.String("suffix", slapd.DefaultSuffix, "suffix")
	_ = fs.Parse(args)
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	people, grp := "ou=people,"+*suffix, "ou=groups,"+*suffix
	members := make([][]int, *groups)
	for i := 0; i < *users; i++ {
		fmt.Fprintf(w, "dn: uid=user%06d,%s\nobjectClass: inetOrgPerson\nobjectClass: shadowAccount\nuid: user%06d\n"+
			"cn: User %06d\ngivenName: User\nsn: Number%06d\nmail: user%06d@example.test\nemployeeNumber: %d\n",
			i, people, i, i, i, i, 100000+i)
		switch i % 100 {
		case 1:
			fmt.Fprintf(w, "pwdAccountLockedTime: 000001010000Z\n")
		case 2:
			fmt.Fprintf(w, "shadowExpire: 20788\n")
		case 3:
			fmt.Fprintf(w, "pwdReset: TRUE\n")
		}
		w.WriteString("\n")
		seen := map[int]bool{}
		for k := 0; k < *perUser; k++ {
			g := (i*(2*k+1) + k*(*groups)/(*perUser)) % *groups
			for seen[g] {
				g = (g + 1) % *groups
			}
			seen[g] = true
			members[g] = append(members[g], i)
		}
	}
	for g := 0; g < *groups; g++ {
		fmt.Fprintf(w, "dn: cn=group%04d,%s\nobjectClass: groupOfNames\ncn: group%04d\n", g, grp, g)
		for _, i := range members[g] {
			fmt.Fprintf(w, "member: uid=user%06d,%s\n", i, people)
		}
		if g < *groups/10 {
			fmt.Fprintf(w, "member: cn=group%04d,%s\n", g+*groups/10, grp)
		}
		if len(members[g]) == 0 && g >= *groups/10 {
			fmt.Fprintf(w, "member: %s\n", *suffix)
		}
		w.WriteString("\n")
	}
	return nil
}

// setup writes slapd.conf and the loaded database (slapadd) into dir.
func setup(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	dir := fs.String("dir", "", "server folder")
	ldif := fs.String("ldif", "", "entries to load")
	threads := fs.Int("threads", 0, "slapd threads (0: slapd's default)")
	_ = fs.Parse(args)
	c, err := slapd.WriteConfig(*dir, slapd.Options{LDIFFile: *ldif, Threads: *threads})
	if err != nil {
		return err
	}
	fmt.Println(c.ConfFile)
	return nil
}

// pull reads the directory with ldapsrc and prints a JSON summary.
func pull(args []string) error {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	url := fs.String("url", "", "ldap:// URL")
	parallel := fs.Int("parallel", 1, "partitions read at once")
	page := fs.Int("page", 1000, "user page size")
	groupPage := fs.Int("group-page", 100, "group page size")
	expect := fs.Int("expect-users", 0, "fail unless this many users are read")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile here")
	memProfile := fs.String("memprofile", "", "write an allocation profile here")
	verbose := fs.Bool("v", false, "log the source's lines to stderr")
	_ = fs.Parse(args)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	st := ldapsrc.Settings{
		URLs:         []string{*url},
		Flavour:      ldapsrc.FlavourOpenLDAP,
		BindDN:       "cn=admin," + slapd.DefaultSuffix,
		BindPassword: config.NewSecret(slapd.AdminPassword),
		PageSize:     *page,
		Parallel:     *parallel,
		Users:        ldapsrc.Users{BaseDN: "ou=people," + slapd.DefaultSuffix, ExtraAttributes: []string{"employeeNumber"}},
		Groups:       ldapsrc.Groups{BaseDN: "ou=groups," + slapd.DefaultSuffix, PageSize: *groupPage},
	}
	logger := zap.NewNop()
	if *verbose {
		logger, _ = zap.NewDevelopment()
	}
	src, err := ldapsrc.New("bench", st, ldapsrc.Options{Logger: logger})
	if err != nil {
		return err
	}
	start := time.Now()
	snap, err := src.Pull(context.Background())
	if err != nil {
		return err
	}
	took := time.Since(start)
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	memberships, inactive := 0, 0
	for _, u := range snap.Users {
		memberships += len(u.Groups)
		if !u.Active {
			inactive++
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	out := map[string]any{
		"users": len(snap.Users), "groups": len(snap.Groups), "memberships": memberships, "inactive": inactive,
		"seconds": took.Seconds(), "heap_mb": ms.HeapAlloc >> 20, "total_alloc_mb": ms.TotalAlloc >> 20, "gc_cycles": ms.NumGC,
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
	if *expect > 0 && len(snap.Users) != *expect {
		return fmt.Errorf("read %d users, want %d", len(snap.Users), *expect)
	}
	runtime.KeepAlive(snap)
	return nil
}

// goldapPull reads the same users and groups, with the same attributes and
// page sizes as the ldapsearch reference, with go-ldap's paged search, one
// page at a time (its SearchWithPaging keeps every page in memory), and
// counts entries and values: the reader dirsync would have without its own.
func goldapPull(args []string) error {
	fs := flag.NewFlagSet("goldap", flag.ExitOnError)
	url := fs.String("url", "", "ldap:// URL")
	page := fs.Int("page", 1000, "user page size")
	groupPage := fs.Int("group-page", 100, "group page size")
	expect := fs.Int("expect-users", 0, "fail unless this many users are read")
	_ = fs.Parse(args)
	c, err := ldap.DialURL(*url)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind("cn=admin,"+slapd.DefaultSuffix, slapd.AdminPassword); err != nil {
		return err
	}
	start := time.Now()
	read := func(base, filter string, attrs []string, size int) (entries, values int, err error) {
		paging := ldap.NewControlPaging(uint32(size))
		for {
			req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, []ldap.Control{paging})
			res, err := c.Search(req)
			if err != nil {
				return entries, values, err
			}
			for _, e := range res.Entries {
				entries++
				for _, a := range e.Attributes {
					values += len(a.ByteValues)
				}
			}
			p, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
			if !ok || len(p.Cookie) == 0 {
				return entries, values, nil
			}
			paging.SetCookie(p.Cookie)
		}
	}
	users, uvals, err := read("ou=people,"+slapd.DefaultSuffix, "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))",
		[]string{"entryUUID", "uid", "mail", "givenName", "sn", "cn", "employeeNumber", "pwdAccountLockedTime", "shadowExpire", "pwdReset"}, *page)
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	groups, gvals, err := read("ou=groups,"+slapd.DefaultSuffix, "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))",
		[]string{"cn", "entryUUID", "member", "uniqueMember", "memberUid"}, *groupPage)
	if err != nil {
		return fmt.Errorf("groups: %w", err)
	}
	b, _ := json.Marshal(map[string]any{"users": users, "groups": groups, "values": uvals + gvals, "seconds": time.Since(start).Seconds()})
	fmt.Println(string(b))
	if *expect > 0 && users != *expect {
		return fmt.Errorf("read %d users, want %d", users, *expect)
	}
	return nil
}
