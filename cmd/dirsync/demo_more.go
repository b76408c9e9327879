package main

import (
	"fmt"
	"strings"

	"github.com/dirsync/dirsync/connector/allthenticate/allthenticatefake"
	"github.com/dirsync/dirsync/connector/ezeep/ezeepfake"
	"github.com/dirsync/dirsync/internal/demo/ldapdir"
)

// demoMoreApps starts the ezeep Blue and Allthenticate fakes for the demo.
// Both already know the people (Allthenticate cannot create accounts; ezeep
// accounts are adopted by email), as in a company adopting dirsync.
func demoMoreApps(people []ldapdir.Person, secrets map[string]string) ([]demoApp, error) {
	var apps []demoApp

	ez := ezeepfake.New(ezeepfake.Options{ClientID: "demo-client", ClientSecret: secrets["DEMO_EZEEP_SECRET"]})
	ezURL, err := ez.Start("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: ezeep fake: %w", err)
	}
	staff := ez.AddGroup("printing-staff")
	for _, p := range people {
		given, family, _ := strings.Cut(p.DisplayName, " ")
		ez.AddUser(ezeepfake.User{Email: p.Email, FirstName: given, LastName: family, Role: "user", IsVerified: true})
	}
	apps = append(apps, demoApp{target: "printing", label: "ezeep Blue", yaml: fmt.Sprintf(`
  - name: printing
    type: ezeep
    sources: [directory]
    scope: [printing]
    client_id: demo-client
    client_secret: ${DEMO_EZEEP_SECRET}
    account_url: %s
    printing_url: %s/printing/v1
    token_url: %s/oauth/access_token/
    group_ids: {printing-staff: %s}
    roles: [{group: it-admins, role: admin}]
    default_role: user
    groups: [{group: staff, as: printing-staff}]
    rate_limit: 100
`, ezURL, ezURL, ezURL, staff), gone: func(_, mail string) bool {
		u, ok := ez.UserByEmail(mail)
		return !ok || (len(u.Groups) == 0 && u.Role == "user")
	}, close: func() { ez.Close() }})

	at := allthenticatefake.New(allthenticatefake.Options{APIKey: secrets["DEMO_ALLTHENTICATE_KEY"]})
	atURL, err := at.Start("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: allthenticate fake: %w", err)
	}
	for _, p := range people {
		given, family, _ := strings.Cut(p.DisplayName, " ")
		at.AddUser(allthenticatefake.User{Email: p.Email, Username: p.UID, FirstName: given, LastName: family, Tag: "USER", Rank: "REGULAR"})
	}
	apps = append(apps, demoApp{target: "door-access", label: "Allthenticate", yaml: fmt.Sprintf(`
  - name: door-access
    type: allthenticate
    sources: [directory]
    scope: [staff]
    base_url: %s
    api_key: ${DEMO_ALLTHENTICATE_KEY}
    roles: [{group: it-admins, role: ADMIN}]
    default_role: REGULAR
    attributes: {computer_usernames: uid}
    rate_limit: 100
`, atURL), gone: func(_, mail string) bool {
		u, ok := at.UserByEmail(mail)
		return ok && u.Suspended
	}, close: func() { at.Close() }})
	return apps, nil
}
