package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/identity"
	"go.uber.org/zap"
)

// SourceRead is what a source hold recorded of the read it refused: what an
// operator reviews, and what approving it accepts — that read, not whatever
// the source returns at approval time.
type SourceRead struct {
	Users  int `json:"users"`
	Active int `json:"active"`
	// Previous is the user count of the last good read it was compared with.
	Previous int `json:"previous"`
	// Fingerprint hashes what decides access in the read: every record's
	// key, username, email, status, expiry and groups.
	Fingerprint string `json:"fingerprint"`
}

// readOf summarises a read for a source hold.
func readOf(s *identity.Snapshot, prev *identity.Snapshot) SourceRead {
	r := SourceRead{Fingerprint: ReadFingerprint(s)}
	if s != nil {
		r.Users = len(s.Users)
		for _, u := range s.Users {
			if u.Active {
				r.Active++
			}
		}
	}
	if prev != nil {
		r.Previous = len(prev.Users)
	}
	return r
}

// ReadFingerprint hashes the access-deciding fields of every record of a
// read, independent of record order and of when the read was taken.
func ReadFingerprint(s *identity.Snapshot) string {
	if s == nil {
		return ""
	}
	lines := make([]string, 0, len(s.Users))
	for _, u := range s.Users {
		u = identity.Normalize(u)
		exp := ""
		if u.Expires != nil {
			exp = u.Expires.UTC().Format(time.RFC3339)
		}
		lines = append(lines, strings.Join([]string{u.Key, u.Username, u.Email, fmt.Sprint(u.Active), exp,
			fmt.Sprint(u.MustChangePassword), strings.Join(u.Groups, ",")}, "\x1f"))
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// changedSince says how a read differs from the one a hold recorded, for
// the decision that refuses the approval.
func changedSince(held, now SourceRead) string {
	return fmt.Sprintf("held read: %d users (%d active), fingerprint %s; now: %d users (%d active), fingerprint %s",
		held.Users, held.Active, held.Fingerprint, now.Users, now.Active, now.Fingerprint)
}

// keepReads records the reads an approval accepted on the guard holds its
// run made: the held steps were planned from those reads, so approving them
// accepts the same reads (and a source that changed since is judged afresh).
func (e *Engine) keepReads(ctx context.Context, runID string, reads map[string]SourceRead) {
	if len(reads) == 0 {
		return
	}
	hps, err := e.heldOfRun(ctx, runID)
	if err != nil {
		return // nothing held
	}
	for _, hp := range hps {
		if len(hp.Sources) > 0 {
			continue
		}
		hp.Reads = reads
		b, _ := json.Marshal(hp)
		if err := e.o.Store.PutHeld(ctx, e.o.Fence(), hp.ID, b); err != nil {
			e.o.Logger.Warn("keep the accepted reads with a held plan", zap.String("held", hp.ID), zap.Error(err))
		}
	}
}
