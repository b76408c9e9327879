package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	scimerrors "github.com/elimity-com/scim/errors"

	"github.com/dirsync/dirsync/state"
)

// Storage layout, per source, in the state store's key/value area:
//
//	scim/<source>/users      id → record (JSON)
//	scim/<source>/groups     id → record (JSON)
//	scim/<source>/usernames  lower-cased userName → "<id> <claimed-at unix ns>"
//	scim/<source>/extids     externalId → JSON list of user ids
//
// Every resource write is a compare-and-set on the record's version (which
// is also its ETag), so replicas writing the same store cannot lose each
// other's updates. userName uniqueness is a claim record created with
// ifVersion 0 before the user record is written: two replicas creating the
// same userName at once cannot both succeed.

// staleClaimAfter is how old a userName claim must be before it may be taken
// over when its owner does not (or no longer) carry that userName: claims
// left by a crash between the claim and the record write, or by an
// interrupted rename. Younger claims may belong to a write still in flight.
const staleClaimAfter = 30 * time.Second

// maxCASAttempts bounds retries of a compare-and-set loop under contention.
const maxCASAttempts = 50

// casBackoff waits a little, randomly, before retry number attempt of a
// compare-and-set that lost to another writer, so that contending writers
// spread out instead of colliding again.
func casBackoff(attempt int) {
	if attempt == 0 {
		return
	}
	time.Sleep(time.Duration(rand.IntN(min(attempt, 10)*50+1)) * time.Microsecond)
}

// record is a stored SCIM resource.
type record struct {
	ID       string         `json:"id"`
	Created  time.Time      `json:"created"`
	Modified time.Time      `json:"lastModified"`
	Attrs    map[string]any `json:"attrs"`

	gi *groupInfo // a group's members, once computed (groupInfoOf)
}

// rawRecord is a record whose attributes are already encoded.
type rawRecord struct {
	ID       string          `json:"id"`
	Created  time.Time       `json:"created"`
	Modified time.Time       `json:"lastModified"`
	Attrs    json.RawMessage `json:"attrs"`
}

func decodeRecord(b []byte) (*record, error) {
	var r record
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&r); err != nil {
		return nil, err
	}
	if r.Attrs == nil {
		r.Attrs = map[string]any{}
	}
	return &r, nil
}

func (r *record) str(name string) string {
	s, _ := r.Attrs[name].(string)
	return s
}

// errConflict is the 409 for a duplicate userName.
func errConflict(userName string) scimerrors.ScimError {
	return scimerrors.ScimError{ScimType: scimerrors.ScimTypeUniqueness, Status: http.StatusConflict,
		Detail: fmt.Sprintf("userName %q is already in use", userName)}
}

func errNotFound(rt *resourceType, id string) scimerrors.ScimError {
	return scimerrors.ScimError{Status: http.StatusNotFound, Detail: fmt.Sprintf("%s %q not found", rt.name, id)}
}

func errPrecondition(id string) scimerrors.ScimError {
	return scimerrors.ScimError{Status: http.StatusPreconditionFailed,
		Detail: fmt.Sprintf("resource %q has changed (If-Match does not match its current ETag)", id)}
}

// errBusy is returned when a compare-and-set loop keeps losing.
func errBusy(id string) scimerrors.ScimError {
	return scimerrors.ScimError{Status: http.StatusConflict,
		Detail: fmt.Sprintf("resource %q is being modified concurrently; retry", id)}
}

// etag renders a version as a weak entity tag.
func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// preconds are the conditional headers of a state-changing request.
type preconds struct{ ifMatch, ifNoneMatch string }

func preOf(r *http.Request) preconds {
	return preconds{ifMatch: r.Header.Get("If-Match"), ifNoneMatch: r.Header.Get("If-None-Match")}
}

// check applies If-Match and, to a resource that exists, If-None-Match:
// RFC 7232 §3.2, a state-changing request whose If-None-Match matches the
// current ETag ("*" matches any) fails with 412.
func (p preconds) check(id string, ver int64) error {
	if p.ifMatch != "" && !matchesIfMatch(p.ifMatch, ver) {
		return errPrecondition(id)
	}
	if p.ifNoneMatch != "" && matchesIfMatch(p.ifNoneMatch, ver) {
		return scimerrors.ScimError{Status: http.StatusPreconditionFailed,
			Detail: fmt.Sprintf("resource %q exists with a matching ETag (If-None-Match)", id)}
	}
	return nil
}

// matchesIfMatch reports whether an If-Match header value admits version.
func matchesIfMatch(header string, version int64) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		t = strings.Trim(t, `"`)
		if t == strconv.FormatInt(version, 10) {
			return true
		}
	}
	return false
}

// index is the in-process lookup cache of one source: rebuilt from the
// store at start and on every full read, kept current by this process's
// writes. It is only ever a hint: every hit is checked against the stored
// record and every miss falls back to the store's claim records, so writes
// by other replicas cannot make a lookup wrong.
type index struct {
	mu         sync.RWMutex
	byName     map[string]string              // lower userName → id
	byExt      map[string]map[string]struct{} // externalId → user ids
	nameOf     map[string]string              // user id → lower userName
	extOf      map[string]string              // user id → externalId
	groups     map[string]groupInfo           // group id → name and members
	memberOf   map[string]map[string]struct{} // member id → group ids
	groupsRead time.Time                      // when groups were last read in full
}

type groupInfo struct {
	name    string
	members []string
	set     map[string]struct{} // members as a set
}

func newIndex() *index {
	return &index{byName: map[string]string{}, byExt: map[string]map[string]struct{}{},
		nameOf: map[string]string{}, extOf: map[string]string{},
		groups: map[string]groupInfo{}, memberOf: map[string]map[string]struct{}{}}
}

func (ix *index) putUser(id, userName, ext string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.dropUserLocked(id)
	ln := foldLower(userName)
	ix.byName[ln] = id
	ix.nameOf[id] = ln
	if ext != "" {
		if ix.byExt[ext] == nil {
			ix.byExt[ext] = map[string]struct{}{}
		}
		ix.byExt[ext][id] = struct{}{}
		ix.extOf[id] = ext
	}
}

func (ix *index) dropUser(id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.dropUserLocked(id)
}

func (ix *index) dropUserLocked(id string) {
	if ln, ok := ix.nameOf[id]; ok {
		if ix.byName[ln] == id {
			delete(ix.byName, ln)
		}
		delete(ix.nameOf, id)
	}
	if ext, ok := ix.extOf[id]; ok {
		delete(ix.byExt[ext], id)
		if len(ix.byExt[ext]) == 0 {
			delete(ix.byExt, ext)
		}
		delete(ix.extOf, id)
	}
}

func (ix *index) lookupName(userName string) (string, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	id, ok := ix.byName[foldLower(userName)]
	return id, ok
}

func (ix *index) lookupExt(ext string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ids := make([]string, 0, len(ix.byExt[ext]))
	for id := range ix.byExt[ext] {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// resetUsers replaces the user part of the index with a full read.
func (ix *index) resetUsers(recs []*record) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.byName = make(map[string]string, len(recs))
	ix.nameOf = make(map[string]string, len(recs))
	ix.byExt = map[string]map[string]struct{}{}
	ix.extOf = map[string]string{}
	for _, r := range recs {
		ln := foldLower(r.str("userName"))
		ix.byName[ln] = r.ID
		ix.nameOf[r.ID] = ln
		if ext := r.str("externalId"); ext != "" {
			if ix.byExt[ext] == nil {
				ix.byExt[ext] = map[string]struct{}{}
			}
			ix.byExt[ext][r.ID] = struct{}{}
			ix.extOf[r.ID] = ext
		}
	}
}

// putGroupLocked records a group's name and members, touching memberOf
// only for the members that changed (a 10,000-member change to a
// 50,000-member group costs the change plus one pass over the group).
func (ix *index) putGroupLocked(id string, g groupInfo) {
	old, had := ix.groups[id]
	ix.groups[id] = g
	var was map[string]struct{}
	if had {
		was = old.set
	}
	is := g.set
	for m := range is {
		if _, ok := was[m]; ok {
			continue
		}
		if ix.memberOf[m] == nil {
			ix.memberOf[m] = map[string]struct{}{}
		}
		ix.memberOf[m][id] = struct{}{}
	}
	for m := range was {
		if _, ok := is[m]; ok {
			continue
		}
		delete(ix.memberOf[m], id)
		if len(ix.memberOf[m]) == 0 {
			delete(ix.memberOf, m)
		}
	}
}

func (ix *index) dropGroupLocked(id string) {
	old, ok := ix.groups[id]
	if !ok {
		return
	}
	for _, m := range old.members {
		delete(ix.memberOf[m], id)
		if len(ix.memberOf[m]) == 0 {
			delete(ix.memberOf, m)
		}
	}
	delete(ix.groups, id)
}

func (ix *index) putGroup(id string, g groupInfo) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.putGroupLocked(id, g)
}

func (ix *index) dropGroup(id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.dropGroupLocked(id)
}

// resetGroups replaces the group part of the index with a full read.
func (ix *index) resetGroups(recs []*record, at time.Time) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.groups = make(map[string]groupInfo, len(recs))
	ix.memberOf = map[string]map[string]struct{}{}
	for _, r := range recs {
		ix.putGroupLocked(r.ID, groupInfoOf(r))
	}
	ix.groupsRead = at
}

// groupsOf returns the groups id belongs to, directly or through nested
// groups, as id → name.
func (ix *index) groupsOf(id string) map[string]string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := map[string]string{}
	queue := []string{id}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for g := range ix.memberOf[cur] {
			if _, seen := out[g]; seen {
				continue
			}
			out[g] = ix.groups[g].name
			queue = append(queue, g)
		}
	}
	return out
}

// directGroups returns the groups id is a direct member of (for the User
// "groups" attribute), sorted by name.
func (ix *index) directGroups(id string) []groupRef {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]groupRef, 0, len(ix.memberOf[id]))
	for g := range ix.memberOf[id] {
		out = append(out, groupRef{id: g, name: ix.groups[g].name})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].name < out[j].name || out[i].name == out[j].name && out[i].id < out[j].id
	})
	return out
}

type groupRef struct{ id, name string }

func groupInfoOf(r *record) groupInfo {
	if r.gi != nil {
		return *r.gi
	}
	g := groupInfo{name: r.str("displayName")}
	for _, m := range asList(r.Attrs["members"]) {
		if mm, ok := m.(map[string]any); ok {
			if v, ok := mm["value"].(string); ok && v != "" {
				g.members = append(g.members, v)
			}
		}
	}
	g.set = setOf(g.members)
	r.gi = &g // computed once per record: the index and the change feed share it
	return g
}

// bucket names
func (s *Server) bucket(rt *resourceType) string { return "scim/" + s.name + "/" + rt.bucket }
func (s *Server) namesBucket() string            { return "scim/" + s.name + "/usernames" }
func (s *Server) extBucket() string              { return "scim/" + s.name + "/extids" }

// get reads one resource.
func (s *Server) get(ctx context.Context, rt *resourceType, id string) (*record, int64, error) {
	r, ver, _, err := s.getRaw(ctx, rt, id)
	return r, ver, err
}

// getRaw reads one resource and also returns its stored form.
func (s *Server) getRaw(ctx context.Context, rt *resourceType, id string) (*record, int64, []byte, error) {
	b, ver, err := s.store.KVGet(ctx, s.bucket(rt), id)
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, nil, errNotFound(rt, id)
	}
	if err != nil {
		return nil, 0, nil, fmt.Errorf("scim %s: read %s %q: %w", s.name, rt.name, id, err)
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("scim %s: decode %s %q: %w", s.name, rt.name, id, err)
	}
	s.recs.put(rt.bucket+"/"+id, b, ver)
	return r, ver, b, nil
}

// storedAttrs returns the encoded attributes inside a stored record: the
// record is encoded with "attrs" last, after fields (id, times) that
// cannot contain the key, so the first `,"attrs":` starts them.
func storedAttrs(b []byte) []byte {
	const key = `,"attrs":`
	i := bytes.Index(b, []byte(key))
	if i < 0 || len(b) < i+len(key)+1 || b[len(b)-1] != '}' {
		return nil
	}
	return b[i+len(key) : len(b)-1]
}

// recCache holds the stored form and version of records this process read
// or wrote last, bounded (an arbitrary entry goes when full). It is a hint
// for update's first attempt; the store's compare-and-set keeps it honest.
type recCache struct {
	mu sync.Mutex
	m  map[string]cachedRec
}

type cachedRec struct {
	b   []byte
	ver int64
}

const recCacheMax = 20000

func (c *recCache) get(k string) ([]byte, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e.b, e.ver, ok
}

func (c *recCache) put(k string, b []byte, ver int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]cachedRec{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= recCacheMax {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = cachedRec{b: b, ver: ver}
}

func (c *recCache) drop(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}

func isNotFound(err error) bool {
	var se scimerrors.ScimError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// listAll reads every resource of a type, sorted by creation then id.
func (s *Server) listAll(ctx context.Context, rt *resourceType) ([]*record, error) {
	m, err := s.store.KVList(ctx, s.bucket(rt))
	if err != nil {
		return nil, fmt.Errorf("scim %s: list %s: %w", s.name, rt.endpoint, err)
	}
	out := make([]*record, 0, len(m))
	for k, b := range m {
		r, err := decodeRecord(b)
		if err != nil {
			// A damaged record must not hide every other one; report it.
			s.log.Error("scim: undecodable record skipped", zapKind(rt.name), zapID(k), zapErr(err))
			continue
		}
		r.ID = k
		out = append(out, r)
	}
	sortRecords(out)
	return out, nil
}

func sortRecords(rs []*record) {
	slices.SortFunc(rs, func(a, b *record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// findUserByName returns the user whose userName equals name
// (case-insensitively), through the index, then the claim record.
func (s *Server) findUserByName(ctx context.Context, name string) (*record, bool, error) {
	if s.ix != nil {
		_, vs, err := s.indexedQuery(ctx, s.users, compareExpr{path: attrPath{name: "userName"}, op: "eq",
			value: compValue{kind: "string", str: name}}, "", 0, 1)
		if err != nil || len(vs) == 0 {
			return nil, false, err
		}
		return vs[0].rec, true, nil
	}
	ln := foldLower(name)
	if id, ok := s.idx.lookupName(name); ok {
		r, _, err := s.get(ctx, s.users, id)
		if err == nil && foldLower(r.str("userName")) == ln {
			return r, true, nil
		}
		if err != nil && !isNotFound(err) {
			return nil, false, err
		}
	}
	owner, _, _, err := s.readClaim(ctx, ln)
	if err != nil || owner == "" {
		return nil, false, err
	}
	r, _, err := s.get(ctx, s.users, owner)
	if isNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if foldLower(r.str("userName")) != ln {
		return nil, false, nil
	}
	s.idx.putUser(r.ID, r.str("userName"), r.str("externalId"))
	return r, true, nil
}

// findUsersByExternalID returns the users with externalId ext.
func (s *Server) findUsersByExternalID(ctx context.Context, ext string) ([]*record, error) {
	if s.ix != nil {
		_, vs, err := s.indexedQuery(ctx, s.users, compareExpr{path: attrPath{name: "externalId"}, op: "eq",
			value: compValue{kind: "string", str: ext}}, "", 0, s.settings.MaxResults)
		return recordsOf(vs), err
	}
	ids := s.idx.lookupExt(ext)
	if len(ids) == 0 {
		b, _, err := s.store.KVGet(ctx, s.extBucket(), ext)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return nil, fmt.Errorf("scim %s: read externalId record: %w", s.name, err)
		}
		if err == nil {
			_ = json.Unmarshal(b, &ids)
		}
	}
	var out []*record
	for _, id := range ids {
		r, _, err := s.get(ctx, s.users, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.str("externalId") == ext {
			out = append(out, r)
		}
	}
	sortRecords(out)
	return out, nil
}

// readClaim returns the owner of a userName claim, when it was claimed and
// the claim's version ("" when unclaimed).
func (s *Server) readClaim(ctx context.Context, lname string) (owner string, at time.Time, ver int64, err error) {
	b, ver, err := s.store.KVGet(ctx, s.namesBucket(), lname)
	if errors.Is(err, state.ErrNotFound) {
		return "", time.Time{}, 0, nil
	}
	if err != nil {
		return "", time.Time{}, 0, fmt.Errorf("scim %s: read userName claim: %w", s.name, err)
	}
	id, ts, _ := strings.Cut(string(b), " ")
	if ns, err := strconv.ParseInt(ts, 10, 64); err == nil {
		at = time.Unix(0, ns)
	}
	return id, at, ver, nil
}

// claimName reserves a lower-cased userName for id; 409 when a live user
// holds it.
func (s *Server) claimName(ctx context.Context, userName, id string) error {
	lname := foldLower(userName)
	val := []byte(id + " " + strconv.FormatInt(s.now().UnixNano(), 10))
	for range maxCASAttempts {
		_, err := s.store.KVPut(ctx, s.namesBucket(), lname, val, 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, state.ErrVersionMismatch) {
			return fmt.Errorf("scim %s: claim userName: %w", s.name, err)
		}
		owner, at, ver, err := s.readClaim(ctx, lname)
		if err != nil {
			return err
		}
		if owner == "" {
			continue // released meanwhile
		}
		if owner == id {
			return nil
		}
		r, _, err := s.get(ctx, s.users, owner)
		switch {
		case err == nil && foldLower(r.str("userName")) == lname:
			return errConflict(userName)
		case err != nil && !isNotFound(err):
			return err
		}
		// The owner is gone or carries another name: a leftover claim,
		// unless it is young enough to belong to a write in flight.
		if s.now().Sub(at) < staleClaimAfter {
			return errConflict(userName)
		}
		if err := s.store.KVDelete(ctx, s.namesBucket(), lname, ver); err != nil &&
			!errors.Is(err, state.ErrVersionMismatch) && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("scim %s: drop stale userName claim: %w", s.name, err)
		}
	}
	return errBusy(userName)
}

// releaseName drops id's claim on a userName (if it still holds it).
func (s *Server) releaseName(ctx context.Context, userName, id string) {
	lname := foldLower(userName)
	owner, _, ver, err := s.readClaim(ctx, lname)
	if err == nil && owner == id {
		err = s.store.KVDelete(ctx, s.namesBucket(), lname, ver)
		if errors.Is(err, state.ErrVersionMismatch) || errors.Is(err, state.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		// Harmless: a leftover claim is taken over once stale.
		s.log.Warn("scim: could not release userName claim", zapID(id), zapErr(err))
	}
}

// updateExt adds id to (add) or removes it from the externalId record.
func (s *Server) updateExt(ctx context.Context, ext, id string, add bool) error {
	if ext == "" || s.ix != nil { // the store's externalId index serves lookups

		return nil
	}
	for attempt := range maxCASAttempts {
		casBackoff(attempt)
		b, ver, err := s.store.KVGet(ctx, s.extBucket(), ext)
		var ids []string
		switch {
		case errors.Is(err, state.ErrNotFound):
			ver = 0
		case err != nil:
			return fmt.Errorf("scim %s: read externalId record: %w", s.name, err)
		default:
			_ = json.Unmarshal(b, &ids)
		}
		has := slices.Contains(ids, id)
		if has == add {
			return nil
		}
		if add {
			ids = append(ids, id)
		} else {
			ids = slices.DeleteFunc(ids, func(x string) bool { return x == id })
		}
		if len(ids) == 0 {
			err = s.store.KVDelete(ctx, s.extBucket(), ext, ver)
		} else {
			nb, _ := json.Marshal(ids)
			_, err = s.store.KVPut(ctx, s.extBucket(), ext, nb, ver)
		}
		if err == nil || errors.Is(err, state.ErrNotFound) && !add {
			return nil
		}
		if !errors.Is(err, state.ErrVersionMismatch) {
			return fmt.Errorf("scim %s: write externalId record: %w", s.name, err)
		}
	}
	return errBusy(ext)
}

// create stores a new resource with validated attributes.
func (s *Server) create(ctx context.Context, rt *resourceType, attrs map[string]any) (*record, int64, error) {
	now := s.now().UTC()
	r := &record{ID: s.newID(), Created: now, Modified: now, Attrs: attrs}
	userName := r.str("userName")
	if rt == s.users && s.ix == nil {
		if id, ok := s.idx.lookupName(userName); ok {
			// Fast 409 without a write when the index knows a live holder.
			if cur, _, err := s.get(ctx, s.users, id); err == nil && foldLower(cur.str("userName")) == foldLower(userName) {
				return nil, 0, errConflict(userName)
			}
		}
	}
	if rt == s.users {
		if err := s.claimName(ctx, userName, r.ID); err != nil {
			return nil, 0, err
		}
		if err := s.updateExt(ctx, r.str("externalId"), r.ID, true); err != nil {
			s.releaseName(ctx, userName, r.ID)
			return nil, 0, err
		}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, 0, fmt.Errorf("scim %s: encode %s: %w", s.name, rt.name, err)
	}
	ver, err := s.write(ctx, rt, r.ID, b, 0, nil, r)
	if err != nil {
		if rt == s.users {
			s.releaseName(ctx, userName, r.ID)
			_ = s.updateExt(ctx, r.str("externalId"), r.ID, false)
		}
		return nil, 0, fmt.Errorf("scim %s: write %s: %w", s.name, rt.name, err)
	}
	s.recs.put(rt.bucket+"/"+r.ID, b, ver)
	s.indexPut(rt, r)
	return r, ver, nil
}

// write stores a resource record at version ifVersion (0: create), with
// its index entries changed from those of prev to those of next when the
// store keeps indexes.
func (s *Server) write(ctx context.Context, rt *resourceType, id string, b []byte, ifVersion int64, prev, next *record) (int64, error) {
	if s.ix == nil {
		return s.store.KVPut(ctx, s.bucket(rt), id, b, ifVersion)
	}
	del, add := s.entryChanges(rt, prev, next)
	return s.ix.KVPutIndexed(ctx, s.bucket(rt), id, b, ifVersion, del, add)
}

func (s *Server) indexPut(rt *resourceType, r *record) {
	if rt == s.users {
		if s.ix == nil {
			s.idx.putUser(r.ID, r.str("userName"), r.str("externalId"))
		}
	} else {
		s.idx.putGroup(r.ID, groupInfoOf(r))
	}
}

// mutation computes a resource's new attributes from its current ones. It
// must not modify cur.
type mutation func(cur *record) (map[string]any, error)

// update applies mut to a resource with compare-and-set, retrying when
// another writer got there first. It returns the stored record, its
// version, and the previous record (nil when nothing changed).
//
// The first attempt starts from the version this process last read or
// wrote (the record cache) instead of reading the store, saving a round
// trip: the compare-and-set refuses the write if the store moved on, and
// then the loop reads the store. An outcome that would not write (no
// change, a rejected PATCH) is confirmed against the store first, and
// conditional requests always read it.
func (s *Server) update(ctx context.Context, rt *resourceType, id string, pre preconds, mut mutation) (*record, int64, *record, error) {
	ck := rt.bucket + "/" + id
	for attempt := range maxCASAttempts {
		casBackoff(attempt)
		var (
			cur *record
			ver int64
			raw []byte
			err error
		)
		cached := false
		if attempt == 0 && pre == (preconds{}) {
			if b, v, ok := s.recs.get(ck); ok {
				if cur, err = decodeRecord(b); err == nil {
					cur.ID, ver, raw, cached = id, v, b, true
				}
			}
		}
		if !cached {
			if cur, ver, raw, err = s.getRaw(ctx, rt, id); err != nil {
				return nil, 0, nil, err
			}
		}
		if err := pre.check(id, ver); err != nil {
			return nil, 0, nil, err
		}
		prev := cur
		attrs, err := mut(cur)
		if err != nil {
			if cached {
				continue // confirm against the store
			}
			return nil, 0, nil, err
		}
		aj, err := json.Marshal(attrs)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("scim %s: encode %s: %w", s.name, rt.name, err)
		}
		pj := storedAttrs(raw)
		if pj == nil {
			pj, _ = json.Marshal(prev.Attrs)
		}
		if bytes.Equal(aj, pj) {
			if cached {
				continue
			}
			return prev, ver, nil, nil
		}
		next := &record{ID: id, Created: cur.Created, Modified: s.now().UTC(), Attrs: attrs}
		oldName, newName := prev.str("userName"), next.str("userName")
		renamed := rt == s.users && foldLower(oldName) != foldLower(newName)
		if renamed {
			if err := s.claimName(ctx, newName, id); err != nil {
				return nil, 0, nil, err
			}
		}
		b, err := json.Marshal(rawRecord{ID: next.ID, Created: next.Created, Modified: next.Modified, Attrs: aj})
		if err != nil {
			return nil, 0, nil, fmt.Errorf("scim %s: encode %s: %w", s.name, rt.name, err)
		}
		nver, err := s.write(ctx, rt, id, b, ver, prev, next)
		if err == nil {
			s.recs.put(ck, b, nver)
		} else {
			s.recs.drop(ck)
		}
		if errors.Is(err, state.ErrVersionMismatch) {
			if renamed {
				s.releaseName(ctx, newName, id)
			}
			continue
		}
		if err != nil {
			if renamed {
				s.releaseName(ctx, newName, id)
			}
			return nil, 0, nil, fmt.Errorf("scim %s: write %s %q: %w", s.name, rt.name, id, err)
		}
		if renamed {
			s.releaseName(ctx, oldName, id)
		}
		if rt == s.users {
			if oe, ne := prev.str("externalId"), next.str("externalId"); oe != ne {
				if err := s.updateExt(ctx, ne, id, true); err != nil {
					s.log.Warn("scim: externalId record not updated", zapID(id), zapErr(err))
				}
				if err := s.updateExt(ctx, oe, id, false); err != nil {
					s.log.Warn("scim: externalId record not updated", zapID(id), zapErr(err))
				}
			}
		}
		s.indexPut(rt, next)
		return next, nver, prev, nil
	}
	return nil, 0, nil, errBusy(id)
}

// remove deletes a resource, returning what it was.
func (s *Server) remove(ctx context.Context, rt *resourceType, id string, pre preconds) (*record, error) {
	for attempt := range maxCASAttempts {
		casBackoff(attempt)
		cur, ver, err := s.get(ctx, rt, id)
		if err != nil {
			return nil, err
		}
		if err := pre.check(id, ver); err != nil {
			return nil, err
		}
		if s.ix != nil {
			err = s.ix.KVDeleteIndexed(ctx, s.bucket(rt), id, ver, s.entries(rt, cur))
		} else {
			err = s.store.KVDelete(ctx, s.bucket(rt), id, ver)
		}
		if errors.Is(err, state.ErrVersionMismatch) {
			continue
		}
		s.recs.drop(rt.bucket + "/" + id)
		if errors.Is(err, state.ErrNotFound) {
			return nil, errNotFound(rt, id)
		}
		if err != nil {
			return nil, fmt.Errorf("scim %s: delete %s %q: %w", s.name, rt.name, id, err)
		}
		if rt == s.users {
			s.releaseName(ctx, cur.str("userName"), id)
			if err := s.updateExt(ctx, cur.str("externalId"), id, false); err != nil {
				s.log.Warn("scim: externalId record not updated", zapID(id), zapErr(err))
			}
			s.idx.dropUser(id)
		} else {
			s.idx.dropGroup(id)
		}
		return cur, nil
	}
	return nil, errBusy(id)
}
