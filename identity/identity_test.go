package identity

import (
	"slices"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	u := Normalize(User{Key: " k ", Email: " Jo.Bloggs@Example.COM ", GivenName: "Jo", FamilyName: "Bloggs", Groups: []string{"b", "a", "b", ""}})
	if u.Key != "k" || u.Email != "jo.bloggs@example.com" || u.DisplayName != "Jo Bloggs" || !slices.Equal(u.Groups, []string{"a", "b"}) {
		t.Fatalf("Normalize = %+v", u)
	}
}

func TestMergeByEmailWithPrecedence(t *testing.T) {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	ad := &Snapshot{Source: "ad", Users: []User{
		{Key: "guid-1", Username: "jbloggs", Email: "Jo@Example.com", GivenName: "Jo", Active: true, Groups: []string{"staff"}},
		{Key: "guid-2", Username: "solo", Email: "", Active: true},
	}}
	hr := &Snapshot{Source: "hr", Users: []User{
		{Key: "e-1", Username: "jo.b", Email: "jo@example.com", GivenName: "Joanne", FamilyName: "Bloggs", Active: false,
			Expires: &exp, Groups: []string{"sales"}, Attributes: map[string]string{"employeeNumber": "42"},
			Facts: map[string]string{FactActive: "status=terminated"}},
	}}
	got := Merge(JoinEmail, ad, hr)
	if len(got) != 2 {
		t.Fatalf("merged %d users, want 2: %+v", len(got), got)
	}
	jo := got[0]
	if jo.Key != "guid-1" || jo.Source != "ad" || jo.GivenName != "Jo" || jo.FamilyName != "Bloggs" {
		t.Fatalf("the first source must win and gaps fill from the next: %+v", jo)
	}
	if jo.Active || jo.Facts[FactActive] != "hr: status=terminated" {
		t.Fatalf("a disable in any source must win, citing it: active=%v facts=%v", jo.Active, jo.Facts)
	}
	if jo.Expires == nil || !jo.Expires.Equal(exp) || jo.Attributes["employeeNumber"] != "42" || !slices.Equal(jo.Groups, []string{"sales", "staff"}) {
		t.Fatalf("merged fields: %+v", jo)
	}
	if got[1].Key != "guid-2" {
		t.Fatalf("a user without a join value is kept as is: %+v", got[1])
	}
}

func TestLinkKeepsOnePersonAcrossJoinsAndPrecedence(t *testing.T) {
	ad := &Snapshot{Source: "ad", Users: []User{{Key: "g1", Username: "jo", Email: "jo@x", Active: true}}}
	first := Link(JoinEmail, nil, ad)
	if len(first.Users) != 1 || first.Users[0].Key != "g1" || first.New["ad:g1"] != "g1" {
		t.Fatalf("a new person takes its first record's key: %+v", first)
	}
	// The IdP (listed first: higher precedence) starts carrying the person.
	idp := &Snapshot{Source: "idp", Users: []User{{Key: "s1", Username: "jo", Email: "JO@x", Active: false}}}
	second := Link(JoinEmail, first.Links, idp, ad)
	if len(second.Users) != 1 || second.Users[0].Key != "g1" {
		t.Fatalf("a higher-precedence source joining must not re-key the person: %+v", second.Users)
	}
	if second.Users[0].Source != "idp" || second.Users[0].Active {
		t.Fatalf("fields follow precedence and a disable wins: %+v", second.Users[0])
	}
	// The email changes in one source: the links hold.
	ad.Users[0].Email = "joanne@x"
	third := Link(JoinEmail, second.Links, idp, ad)
	if len(third.Users) != 1 || third.Users[0].Key != "g1" || len(third.New) != 0 {
		t.Fatalf("linked records stay with their person: %+v", third)
	}
}

func TestLinkNeverMergesTwoRecordsOfOneSource(t *testing.T) {
	ad := &Snapshot{Source: "ad", Users: []User{
		{Key: "g1", Username: "jo", Email: "jo@x", Active: true},
		{Key: "g2", Username: "admin-jo", Email: "jo@x", Active: true},
	}}
	got := Link(JoinEmail, nil, ad)
	if len(got.Users) != 1 || got.Users[0].Key != "g1" || got.Users[0].Username != "jo" {
		t.Fatalf("users = %+v", got.Users)
	}
	if len(got.Conflicts) != 1 || got.Conflicts[0].Record != "ad:g2" || !slices.Equal(got.Conflicts[0].With, []string{"ad:g1"}) {
		t.Fatalf("conflicts = %+v, want ad:g2 against ad:g1", got.Conflicts)
	}
}

func TestLinkEarliestExpiryWins(t *testing.T) {
	early, late := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &Snapshot{Source: "a", Users: []User{{Key: "1", Email: "p@x", Active: true, Expires: &late}}}
	b := &Snapshot{Source: "b", Users: []User{{Key: "2", Email: "p@x", Active: true, Expires: &early}}}
	got := Link(JoinEmail, nil, a, b)
	if len(got.Users) != 1 || !got.Users[0].Expires.Equal(early) {
		t.Fatalf("expiry = %v, want the earliest %v", got.Users[0].Expires, early)
	}
}
