package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/dirsync/dirsync/state"
)

// KV is the part of the state store sessions live in (both backends
// implement it): a sign-out, a restart or another replica sees the same
// sessions, and deleting one ends it everywhere.
type KV interface {
	KVGet(ctx context.Context, bucket, key string) ([]byte, int64, error)
	KVPut(ctx context.Context, bucket, key string, val []byte, ifVersion int64) (int64, error)
	KVDelete(ctx context.Context, bucket, key string, ifVersion int64) error
	KVList(ctx context.Context, bucket string) (map[string][]byte, error)
}

// sessionBucket is the state store bucket holding console sessions, keyed
// by the SHA-256 of the cookie's token (a copy of the store opens no session).
const sessionBucket = "console-sessions"

// session is one signed-in person, kept server-side. The role is not
// stored: it is worked out on every request from Groups (or Admin) against
// the configuration in force.
type session struct {
	// id is the cookie's token (never stored).
	id      string
	version int64

	Subject string   `json:"sub"`
	Name    string   `json:"name"`
	Groups  []string `json:"groups,omitempty"`
	// Admin marks a sign-in with the static admin token.
	Admin bool   `json:"admin,omitempty"`
	CSRF  string `json:"csrf"`
	// Refresh is the IdP's refresh token, used to read the groups again.
	Refresh string    `json:"refresh,omitempty"`
	Created time.Time `json:"created"`
	// Seen is the last request (written at most once a minute).
	Seen time.Time `json:"seen"`
	// Checked is when the groups were last read from the IdP.
	Checked time.Time `json:"checked"`

	// Role is worked out per request (not stored).
	Role int `json:"-"`
}

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// sessions keeps sessions in the store and enforces their timeouts.
type sessions struct {
	kv      KV
	now     func() time.Time
	ttl     time.Duration // absolute
	idle    time.Duration
	refresh time.Duration // groups older than this are read again
}

var errNoSession = errors.New("no session")

// load returns the session for id when it exists and neither timeout has
// passed; an expired one is deleted.
func (ss *sessions) load(ctx context.Context, id string) (session, error) {
	if id == "" {
		return session{}, errNoSession
	}
	b, ver, err := ss.kv.KVGet(ctx, sessionBucket, sessionKey(id))
	if errors.Is(err, state.ErrNotFound) {
		return session{}, errNoSession
	}
	if err != nil {
		return session{}, fmt.Errorf("console: read session: %w", err)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return session{}, errNoSession
	}
	s.id, s.version = id, ver
	now := ss.now()
	if now.Sub(s.Created) >= ss.ttl || now.Sub(s.Seen) >= ss.idle {
		_ = ss.kv.KVDelete(ctx, sessionBucket, sessionKey(id), -1)
		return session{}, errNoSession
	}
	return s, nil
}

// save writes s (new sessions get an id).
func (ss *sessions) save(ctx context.Context, s *session) error {
	if s.id == "" {
		s.id = randomToken() + randomToken()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	v, err := ss.kv.KVPut(ctx, sessionBucket, sessionKey(s.id), b, -1)
	if err != nil {
		return fmt.Errorf("console: write session: %w", err)
	}
	s.version = v
	return nil
}

// end deletes a session: its cookie opens nothing afterwards.
func (ss *sessions) end(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	return ss.kv.KVDelete(ctx, sessionBucket, sessionKey(id), -1)
}

// prune deletes every expired session (called now and then on sign-in).
func (ss *sessions) prune(ctx context.Context) error {
	all, err := ss.kv.KVList(ctx, sessionBucket)
	if err != nil {
		return err
	}
	now := ss.now()
	for k, b := range all {
		var s session
		if json.Unmarshal(b, &s) != nil || now.Sub(s.Created) >= ss.ttl || now.Sub(s.Seen) >= ss.idle {
			_ = ss.kv.KVDelete(ctx, sessionBucket, k, -1)
		}
	}
	return nil
}

// touch records activity when the last record is over a minute old, so a
// busy page does not write on every request.
func (ss *sessions) touch(ctx context.Context, s *session) {
	if now := ss.now(); now.Sub(s.Seen) >= time.Minute {
		s.Seen = now
		_ = ss.save(ctx, s)
	}
}

// cookieID returns the session token in the request's cookie.
func cookieID(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// roleFor works out a session's role from the configuration in force.
func (a *authenticator) roleFor(s session) int {
	if s.Admin {
		if a.o.Config.AdminToken.IsZero() {
			return roleNone
		}
		return roleApprover
	}
	oc := a.o.Config.OIDC
	role := roleNone
	for _, g := range s.Groups {
		if slices.Contains(oc.Approvers, g) {
			return roleApprover
		}
		if slices.Contains(oc.Viewers, g) {
			role = roleViewer
		}
	}
	return role
}
