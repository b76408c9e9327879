package scim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/dirsync/dirsync/state"
)

// Listing, filtering, paging and counting without reading whole buckets.
//
// When the state store keeps sorted secondary indexes (state.IndexedKV:
// bolt, Redis, memstore), every user and group write also updates, in the
// same atomic store write, one index entry per indexed value:
//
//	term = escaped value + "\x01" + created time (fixed width), key = id
//
// so the entries of one value sort by creation then id: the stable order of
// every list. The indexed attributes (ixSpecs) are those IdPs filter and
// page by. A filter is answered by the plan queryPlan picks:
//
//   - no filter: the meta.created index (creation order), count and page
//     straight from the store;
//   - one comparison on an indexed attribute (eq, sw, gt, ge, lt, le, pr;
//     multi-valued attributes eq only): one range of its index, count and
//     page from the store;
//   - `and` with such a comparison on one side, or a value path whose
//     "value" is compared with eq (emails[value eq "x"],
//     emails[type eq "work"].value eq "x", members[value eq "x"]): that
//     range's records, the whole filter checked on each;
//   - anything else (or, not, ne, co, ew, unindexed attributes): every
//     record in creation order, read in batches, the filter checked on each.
//
// The first two cost O(log n + page) on Redis; on bolt a page costs the
// page plus, the first time a range is read, a walk to count it (cached
// while nothing changes, as is the position reached by the last page).

// indexFormat names the index layout; a store indexed with another one is
// re-indexed at start (ensureStoreIndex).
const indexFormat = "scim-index-1"

// ixOrder is the index every record has exactly one entry in: creation order.
const ixOrder = "meta.created"

// maxTermBytes caps an indexed value. Longer values are indexed by their
// first maxTermBytes bytes; queries with a longer value, or reaching into
// such a prefix, are checked record by record.
const maxTermBytes = 512

// scanBatch is how many records a checked plan reads per store call.
const scanBatch = 500

// ixSpec is one indexed attribute.
type ixSpec struct {
	name   string // index name in the store, also the filter path
	kind   string // string, bool or time
	def    *attrDef
	leaf   *attrDef
	path   attrPath
	multi  bool // several values per record: eq only
	folded bool // case-insensitive: values lower-cased
}

func buildSpecs(rt *resourceType, paths ...string) []ixSpec {
	var out []ixSpec
	for _, p := range paths {
		ap, err := splitPath(p, rt.urns)
		if err != nil {
			panic(err)
		}
		def := rt.lookupPath(ap)
		leaf := leafDef(def, ap.sub)
		if def == nil || leaf == nil {
			panic("scim: unknown indexed attribute " + p)
		}
		sp := ixSpec{name: p, def: def, leaf: leaf, path: ap, multi: def.multi, kind: "string"}
		switch leaf.typ {
		case "boolean":
			sp.kind = "bool"
		case "dateTime":
			sp.kind = "time"
		default:
			sp.folded = !leaf.caseExact
		}
		out = append(out, sp)
	}
	return out
}

func userSpecs(rt *resourceType) []ixSpec {
	return buildSpecs(rt, ixOrder, "meta.lastModified", "userName", "externalId", "displayName",
		"emails.value", "active")
}

func groupSpecs(rt *resourceType) []ixSpec {
	return buildSpecs(rt, ixOrder, "meta.lastModified", "displayName", "externalId", "members.value")
}

// escTerm maps a value to a term preserving byte order, with no zero byte
// and no byte below 0x02, so "\x01" can separate value and creation time.
func escTerm(v string) string {
	if strings.IndexFunc(v, func(r rune) bool { return r < 3 }) < 0 {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 3 {
			b.WriteByte(2)
			b.WriteByte(c + 1)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// tsKey renders a time as a fixed-width, lexically ordered string.
func tsKey(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// valueKey is the escaped, possibly folded form of one indexed value, and
// whether it was cut to maxTermBytes.
func (sp *ixSpec) valueKey(v any) (string, bool) {
	switch sp.kind {
	case "bool":
		b, ok := v.(bool)
		if !ok {
			return "", false
		}
		if b {
			return "true", true
		}
		return "false", true
	case "time":
		s, ok := v.(string)
		if !ok {
			return "", false
		}
		t, err := parseTime(s)
		if err != nil {
			return "", false
		}
		return tsKey(t), true
	}
	s, ok := v.(string)
	if !ok {
		return "", false
	}
	if sp.folded {
		s = foldLower(s)
	}
	s = escTerm(s)
	if len(s) > maxTermBytes {
		s = s[:maxTermBytes]
	}
	return s, true
}

// entries returns a record's index entries.
func (s *Server) entries(rt *resourceType, r *record) []state.IndexEntry {
	_, add := s.entryChanges(rt, nil, r)
	return add
}

// valueKeys returns the distinct value keys of one indexed attribute.
func (s *Server) valueKeys(rt *resourceType, sp *ixSpec, view map[string]any) map[string]struct{} {
	vals := collect(view, sp.path, sp.def, rt)
	out := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		if k, ok := sp.valueKey(v); ok {
			out[k] = struct{}{}
		}
	}
	return out
}

// entryChanges returns the index entries to remove and to add when a
// record changes from prev to next (either may be nil). Values are
// compared per attribute before any entry is built, so a change to a large
// group costs a pass over its members plus the members changed.
func (s *Server) entryChanges(rt *resourceType, prev, next *record) (del, add []state.IndexEntry) {
	var pv, nv map[string]any
	if prev != nil {
		pv = s.filterView(rt, prev)
	}
	if next != nil {
		nv = s.filterView(rt, next)
	}
	for i := range rt.ixs {
		sp := &rt.ixs[i]
		var was, is map[string]struct{}
		if pv != nil {
			was = s.valueKeys(rt, sp, pv)
		}
		if nv != nil {
			is = s.valueKeys(rt, sp, nv)
		}
		sameCreated := prev != nil && next != nil && prev.Created.Equal(next.Created)
		for k := range was {
			if _, ok := is[k]; !ok || !sameCreated {
				del = append(del, state.IndexEntry{Index: sp.name, Term: k + "\x01" + tsKey(prev.Created)})
			}
		}
		for k := range is {
			if _, ok := was[k]; !ok || !sameCreated {
				add = append(add, state.IndexEntry{Index: sp.name, Term: k + "\x01" + tsKey(next.Created)})
			}
		}
	}
	return del, add
}

// plan is how a filter is answered from the indexes: the records of rng,
// each checked against check when set (else the range is exact).
type plan struct {
	rng   state.IndexRange
	check expr
	kind  string // for tests and the README: "index", "index+check", "scan"
}

// none is a range that selects nothing.
var none = state.IndexRange{Index: ixOrder, Lo: "\xff", Hi: "\xff"}

// queryPlan picks the plan for filter f (nil: everything).
func (rt *resourceType) queryPlan(f expr) plan {
	if f == nil {
		return plan{rng: state.IndexRange{Index: ixOrder}, kind: "index"}
	}
	if r, ok := rt.compareRange(f); ok {
		return plan{rng: r, kind: "index"}
	}
	if r, ok := rt.candidates(f); ok {
		return plan{rng: r, check: f, kind: "index+check"}
	}
	return plan{rng: state.IndexRange{Index: ixOrder}, check: f, kind: "scan"}
}

// candidates finds an index range holding every match of f (a superset).
func (rt *resourceType) candidates(f expr) (state.IndexRange, bool) {
	switch e := f.(type) {
	case compareExpr:
		return rt.compareRange(e)
	case logicalExpr:
		if e.or {
			return state.IndexRange{}, false
		}
		if r, ok := rt.candidates(e.left); ok {
			return r, true
		}
		return rt.candidates(e.right)
	case valuePathExpr:
		if e.sub != nil && strings.EqualFold(e.sub.path.name, "value") && e.sub.op == "eq" {
			c := *e.sub
			c.path = attrPath{urn: e.path.urn, name: e.path.name, sub: "value"}
			if r, ok := rt.compareRange(c); ok {
				return r, true
			}
		}
		return rt.elemCandidates(e.path, e.filter)
	}
	return state.IndexRange{}, false
}

// elemCandidates looks for `value eq x` in a value filter (alone or in an
// `and`) of a multi-valued attribute.
func (rt *resourceType) elemCandidates(p attrPath, f expr) (state.IndexRange, bool) {
	switch e := f.(type) {
	case compareExpr:
		if e.path.sub == "" && strings.EqualFold(e.path.name, "value") && e.op == "eq" {
			c := e
			c.path = attrPath{urn: p.urn, name: p.name, sub: "value"}
			return rt.compareRange(c)
		}
	case logicalExpr:
		if !e.or {
			if r, ok := rt.elemCandidates(p, e.left); ok {
				return r, true
			}
			return rt.elemCandidates(p, e.right)
		}
	}
	return state.IndexRange{}, false
}

// compareRange is the exact index range of one comparison, when an index
// serves it.
func (rt *resourceType) compareRange(f expr) (state.IndexRange, bool) {
	c, ok := f.(compareExpr)
	if !ok {
		return state.IndexRange{}, false
	}
	def := rt.lookupPath(c.path)
	leaf := leafDef(def, c.path.sub)
	var sp *ixSpec
	for i := range rt.ixs {
		if rt.ixs[i].def == def && rt.ixs[i].leaf == leaf && def != nil {
			sp = &rt.ixs[i]
		}
	}
	if sp == nil {
		return state.IndexRange{}, false
	}
	r := state.IndexRange{Index: sp.name}
	if c.op == "pr" {
		if sp.multi {
			return state.IndexRange{}, false
		}
		if sp.kind == "string" {
			r.Lo = "\x02" // the empty string's entries start with "\x01"
		}
		return r, true
	}
	if sp.multi && c.op != "eq" {
		return state.IndexRange{}, false
	}
	if c.value.kind == "null" {
		return state.IndexRange{}, false
	}
	var key string
	switch sp.kind {
	case "bool":
		want, ok := c.value.b, c.value.kind == "bool"
		if !ok && (c.value.kind == "string" || c.value.kind == "bare") {
			var err error
			switch strings.ToLower(c.value.str) {
			case "true", "1", "t":
				want = true
			case "false", "0", "f":
				want = false
			default:
				err = errors.New("not a boolean")
			}
			ok = err == nil
		}
		if c.op != "eq" {
			return state.IndexRange{}, false
		}
		if !ok {
			return none, true
		}
		key, _ = sp.valueKey(want)
	case "time":
		t, err := parseTime(c.value.str)
		if err != nil {
			return state.IndexRange{}, false // compared as strings: check each
		}
		key = tsKey(t)
	default:
		k, _ := sp.valueKey(c.value.str)
		if len(k) >= maxTermBytes {
			return state.IndexRange{}, false
		}
		key = k
	}
	switch c.op {
	case "eq":
		r.Lo, r.Hi = key+"\x01", key+"\x02"
	case "sw":
		if sp.kind != "string" {
			return state.IndexRange{}, false
		}
		r.Lo, r.Hi = key, key+"\xff"
	case "gt":
		r.Lo = key + "\x02"
	case "ge":
		r.Lo = key + "\x01"
	case "lt":
		r.Hi = key + "\x01"
	case "le":
		r.Hi = key + "\x02"
	default:
		return state.IndexRange{}, false
	}
	return r, true
}

// indexedQuery answers a filter from the indexes: the number of matches
// and the page [offset, offset+limit) in the plan's order.
func (s *Server) indexedQuery(ctx context.Context, rt *resourceType, f expr, base string, offset, limit int) (int, []versioned, error) {
	p := rt.queryPlan(f)
	if p.check == nil {
		total, items, err := s.ix.KVRange(ctx, s.bucket(rt), p.rng, offset, limit)
		if err != nil {
			return 0, nil, fmt.Errorf("scim %s: list %s: %w", s.name, rt.endpoint, err)
		}
		return total, s.decodeItems(rt, items), nil
	}
	ev := evalCtx{rt: rt}
	total := 0
	var page []versioned
	seen := map[string]struct{}{}
	for pos := 0; ; pos += scanBatch {
		n, items, err := s.ix.KVRange(ctx, s.bucket(rt), p.rng, pos, scanBatch)
		if err != nil {
			return 0, nil, fmt.Errorf("scim %s: list %s: %w", s.name, rt.endpoint, err)
		}
		for _, v := range s.decodeItems(rt, items) {
			if _, dup := seen[v.rec.ID]; dup {
				continue
			}
			seen[v.rec.ID] = struct{}{}
			if !ev.match(p.check, s.fullView(rt, v.rec, v.ver, base)) {
				continue
			}
			if total >= offset && len(page) < limit {
				page = append(page, v)
			}
			total++
		}
		if pos+scanBatch >= n || len(items) == 0 {
			break
		}
	}
	return total, page, nil
}

func (s *Server) decodeItems(rt *resourceType, items []state.KVItem) []versioned {
	out := make([]versioned, 0, len(items))
	for _, it := range items {
		r, err := decodeRecord(it.Val)
		if err != nil {
			s.log.Error("scim: undecodable record skipped", zapKind(rt.name), zapID(it.Key), zapErr(err))
			continue
		}
		r.ID = it.Key
		out = append(out, versioned{rec: r, ver: it.Version})
	}
	return out
}

// metaBucket holds the source's bookkeeping (the index format marker).
func (s *Server) metaBucket() string { return "scim/" + s.name + "/meta" }

// ensureStoreIndex (re)builds the store's indexes of this source when they
// were built in another format or not at all (data written before
// indexing): every index is dropped and each record's entries are added
// for the version read (a record another replica changes meanwhile gets
// its entries from that write). Runs once per store.
func (s *Server) ensureStoreIndex(ctx context.Context) error {
	if s.ix == nil {
		return nil
	}
	b, _, err := s.store.KVGet(ctx, s.metaBucket(), "index")
	if err == nil && string(b) == indexFormat {
		return nil
	}
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return fmt.Errorf("scim %s: read index marker: %w", s.name, err)
	}
	for _, rt := range []*resourceType{s.users, s.groups} {
		for _, sp := range rt.ixs {
			if err := s.ix.KVIndexDrop(ctx, s.bucket(rt), sp.name); err != nil {
				return fmt.Errorf("scim %s: reindex: %w", s.name, err)
			}
		}
		m, err := s.store.KVList(ctx, s.bucket(rt))
		if err != nil {
			return fmt.Errorf("scim %s: reindex: %w", s.name, err)
		}
		ids := slices.Sorted(maps.Keys(m))
		for _, id := range ids {
			r, ver, err := s.get(ctx, rt, id)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if _, err := s.ix.KVIndexAdd(ctx, s.bucket(rt), id, ver, s.entries(rt, r)); err != nil {
				return fmt.Errorf("scim %s: reindex: %w", s.name, err)
			}
		}
		if len(ids) > 0 {
			s.log.Info("scim: store index rebuilt", zapKind(rt.name), zapID(fmt.Sprint(len(ids))))
		}
	}
	if _, err := s.store.KVPut(ctx, s.metaBucket(), "index", []byte(indexFormat), -1); err != nil {
		return fmt.Errorf("scim %s: write index marker: %w", s.name, err)
	}
	return nil
}
