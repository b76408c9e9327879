package netmaker

import (
	"fmt"
	"net/mail"
	"strings"

	"github.com/dirsync/dirsync/identity"
)

// ValidUsername reports whether Netmaker accepts name: at least 4
// characters, and an email address or only [A-Za-z0-9.-].
func ValidUsername(name string) bool {
	if len([]rune(name)) < 4 {
		return false
	}
	if inCharset(name) {
		return true
	}
	return isEmail(name)
}

func inCharset(name string) bool {
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func isEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Count(s, "@") == 1
}

// MapUsername returns the Netmaker username for a directory username and
// email under the invalid_username policy, or a reason it cannot.
func MapUsername(policy, username, email string) (string, string) {
	if ValidUsername(username) {
		return username, ""
	}
	why := fmt.Sprintf("username %q is not valid in Netmaker (at least 4 characters, an email address or only A-Z a-z 0-9 . -)", username)
	switch policy {
	case "email", "":
		if email != "" && ValidUsername(email) && isEmail(email) {
			return email, ""
		}
		return "", why + " and the account has no usable email to use instead"
	case "replace":
		var b strings.Builder
		dash := false
		for _, c := range username {
			if c < 128 && inCharset(string(c)) {
				b.WriteRune(c)
				dash = false
			} else if !dash {
				b.WriteByte('-')
				dash = true
			}
		}
		r := strings.Trim(b.String(), "-")
		if ValidUsername(r) {
			return r, ""
		}
		return "", why + " and replacing its other characters does not give a valid one"
	}
	return "", why + " (invalid_username: skip)"
}

// remoteName is the Netmaker username of a: the one recorded when it was
// created or listed, else the mapped directory username.
func (t *Target) remoteName(a identity.Account) (string, string) {
	if r := a.Remote["username"]; r != "" {
		return r, ""
	}
	if a.Username == "" && a.Email == "" {
		return "", "the account has no username"
	}
	return MapUsername(t.s.InvalidUsername, a.Username, a.Email)
}
