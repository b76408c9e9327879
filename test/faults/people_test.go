package faults

import (
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/netmaker/netmakerfake"
)

// person is one user of the file source, and what every application
// should make of them.
type person struct {
	Key        string   `json:"id"`
	Username   string   `json:"username"`
	Email      string   `json:"email"`
	Given      string   `json:"given_name"`
	Family     string   `json:"family_name"`
	Active     bool     `json:"active"`
	Expires    string   `json:"expires,omitempty"` // YYYY-MM-DD, the last valid day
	MustChange bool     `json:"must_change_password,omitempty"`
	Groups     []string `json:"groups"`
}

// population makes n people from a seeded generator: 90% active; every
// person in dev, ops or both, one in eight also in ssh (the Ezeelogin
// scope: each Ezeelogin call starts a process, slow on small machines);
// half with an expiry date; a third who must change their password.
func population(n int, rng *mrand.Rand) []person {
	out := make([]person, n)
	for i := range out {
		p := person{
			Key:      fmt.Sprintf("emp-%05d", i),
			Username: fmt.Sprintf("user%04d", i),
			Given:    fmt.Sprintf("Given%d", i),
			Family:   "Tester",
			Active:   rng.IntN(10) != 0,
		}
		p.Email = p.Username + "@example.test"
		switch rng.IntN(3) {
		case 0:
			p.Groups = []string{"dev"}
		case 1:
			p.Groups = []string{"ops"}
		default:
			p.Groups = []string{"dev", "ops"}
		}
		if rng.IntN(8) == 0 {
			p.Groups = append(p.Groups, "ssh")
		}
		if rng.IntN(2) == 0 {
			p.Expires = fmt.Sprintf("%d-%02d-%02d", 2031+rng.IntN(5), 1+rng.IntN(12), 1+rng.IntN(28))
		}
		p.MustChange = rng.IntN(3) == 0
		if i == 0 { // at least one suspension (and password reset) in Ezeelogin
			p.Active = false
			p.Groups = append(p.Groups, "ssh")
		}
		out[i] = p
	}
	return out
}

// writeSource writes people as the file source's JSON.
func (h *harness) writeSource(name string, people []person) string {
	h.t.Helper()
	b, err := json.MarshalIndent(map[string]any{"users": people}, "", " ")
	if err != nil {
		h.t.Fatal(err)
	}
	return h.writeFile(name, b)
}

// fileSourceYAML is the sources entry for a file source at path.
func fileSourceYAML(name, path string) string {
	return fmt.Sprintf(`  - name: %s
    type: file
    path: %s
    format: json
    key: id
    timezone: UTC
`, name, path)
}

// usernames returns the people's usernames.
func usernames(people []person) []string {
	out := make([]string, len(people))
	for i, p := range people {
		out[i] = p.Username
	}
	return out
}

// netmakerYAML is a Netmaker target entry: role platform-user, groups dev
// and ops as developers and operations, deprovision by suspension.
func netmakerYAML(name, url, envToken, extra string) string {
	return fmt.Sprintf(`  - name: %s
    type: netmaker
    base_url: %s
    token: ${%s}
    auth_type: basic_auth
    default_role: platform-user
    groups:
      - {group: dev, as: developers}
      - {group: ops, as: operations}
    deprovision: {action: suspend}
%s`, name, url, envToken, extra)
}

// nmGroupNames are the Netmaker groups person p should be in.
func nmGroupNames(p person) []string {
	var out []string
	for _, g := range p.Groups {
		switch g {
		case "dev":
			out = append(out, "developers")
		case "ops":
			out = append(out, "operations")
		}
	}
	slices.Sort(out)
	return out
}

// checkNetmaker compares the Netmaker fake with what people say: active
// people exist, enabled, with role platform-user and their groups; people
// never active were never created; suspended reports who must be disabled
// (people who were active once and are not now).
func checkNetmaker(t *testing.T, app *netmakerApp, people []person, disabled map[string]bool) (problems []string) {
	t.Helper()
	for _, p := range people {
		u, ok := app.fake.User(p.Username)
		wantExists := p.Active || disabled[p.Username]
		switch {
		case !wantExists && ok:
			problems = append(problems, fmt.Sprintf("%s: exists in Netmaker but was never active", p.Username))
		case wantExists && !ok:
			problems = append(problems, fmt.Sprintf("%s: missing from Netmaker", p.Username))
		case ok:
			if u.AccountDisabled != !p.Active {
				problems = append(problems, fmt.Sprintf("%s: account_disabled=%v, want %v", p.Username, u.AccountDisabled, !p.Active))
			}
			if u.PlatformRoleID != netmakerfake.RolePlatformUser {
				problems = append(problems, fmt.Sprintf("%s: role %s", p.Username, u.PlatformRoleID))
			}
			if got, want := app.fake.GroupNames(u.GroupIDs()), nmGroupNames(p); !slices.Equal(got, want) {
				problems = append(problems, fmt.Sprintf("%s: groups %v, want %v", p.Username, got, want))
			}
		}
	}
	return problems
}

// checkEzeelogin compares the Ezeelogin fake with what people say.
func checkEzeelogin(t *testing.T, e *ezeeloginApp, people []person) (problems []string) {
	t.Helper()
	st := e.load()
	for _, p := range people {
		u, ok := st.Users[p.Username]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unknown to Ezeelogin", p.Username))
			continue
		}
		if !slices.Contains(p.Groups, "ssh") {
			if u.Suspended || u.Expiry != "" || u.ForcePasswordChange {
				problems = append(problems, fmt.Sprintf("%s: not in the Ezeelogin scope but changed: %+v", p.Username, u))
			}
			continue
		}
		if u.Suspended != !p.Active {
			problems = append(problems, fmt.Sprintf("%s: ezeelogin suspended=%v, want %v", p.Username, u.Suspended, !p.Active))
		}
		want := ""
		if p.Expires != "" {
			want = p.Expires + " 23:59:59"
		}
		if u.Expiry != want {
			problems = append(problems, fmt.Sprintf("%s: ezeelogin expiry %q, want %q", p.Username, u.Expiry, want))
		}
		if want := p.MustChange && p.Active; u.ForcePasswordChange != want { // reset_user_password (on suspend) clears the flag
			problems = append(problems, fmt.Sprintf("%s: ezeelogin force_password_change=%v, want %v", p.Username, u.ForcePasswordChange, want))
		}
	}
	return problems
}

// firstN returns at most n problems, with a count of the rest.
func firstN(problems []string, n int) string {
	if len(problems) <= n {
		return strings.Join(problems, "\n")
	}
	return strings.Join(problems[:n], "\n") + fmt.Sprintf("\n… and %d more", len(problems)-n)
}

// checkAllthenticate compares the Allthenticate fake with what people
// say: suspended exactly when inactive, rank ADMIN for ssh members, and
// exactly one toggle for each suspension (none for anyone else).
func checkAllthenticate(t *testing.T, a *allthenticateApp, people []person) (problems []string) {
	t.Helper()
	for _, p := range people {
		u, ok := a.fake.UserByEmail(p.Email)
		if !ok {
			problems = append(problems, p.Username+": not an Allthenticate member")
			continue
		}
		if u.Suspended != !p.Active {
			problems = append(problems, fmt.Sprintf("%s: allthenticate suspended=%v, want %v", p.Username, u.Suspended, !p.Active))
		}
		rank := allthenticatefake.RankRegular
		if slices.Contains(p.Groups, "ssh") {
			rank = allthenticatefake.RankAdmin
		}
		if u.Rank != rank {
			problems = append(problems, fmt.Sprintf("%s: allthenticate rank %s, want %s", p.Username, u.Rank, rank))
		}
		want := 0
		if !p.Active {
			want = 1
		}
		if n := a.fake.Toggles(u.EmailID); n != want {
			problems = append(problems, fmt.Sprintf("%s: %d suspension toggles, want %d", p.Username, n, want))
		}
	}
	return problems
}

// checkEzeep compares the ezeep fake with what people say: every active
// person was invited (a user exists) with role user and printing-dev when
// in dev; nobody inactive was invited.
func checkEzeep(t *testing.T, e *ezeepApp, people []person) (problems []string) {
	t.Helper()
	for _, p := range people {
		u, ok := e.fake.UserByEmail(p.Email)
		switch {
		case !p.Active && ok:
			problems = append(problems, p.Username+": invited to ezeep but never active")
		case p.Active && !ok:
			problems = append(problems, p.Username+": not invited to ezeep")
		case ok:
			var want []string
			if slices.Contains(p.Groups, "dev") {
				want = []string{e.group}
			}
			if !slices.Equal(sortedCopy(u.Groups), want) {
				problems = append(problems, fmt.Sprintf("%s: ezeep groups %v, want %v", p.Username, u.Groups, want))
			}
			if u.Role != "user" {
				problems = append(problems, fmt.Sprintf("%s: ezeep role %s", p.Username, u.Role))
			}
		}
	}
	return problems
}
