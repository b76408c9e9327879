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
