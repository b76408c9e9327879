package ldapdir

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jimlambrt/gldap"
	"go.uber.org/zap"
)

// Scopes beyond gldap's three: subordinate (draft-sermersheim-ldap-subordinate-scope).
const scopeSubordinate gldap.Scope = 3

// OIDs of what the root DSE advertises.
const (
	oidPaging        = "1.2.840.113556.1.4.319" // RFC 2696 simple paged results
	oidManageDsaIT   = "2.16.840.1.113730.3.4.2"
	oidAllOpAttrs    = "1.3.6.1.4.1.4203.1.5.1" // "+" (RFC 3673)
	oidAbsoluteTrueF = "1.3.6.1.4.1.4203.1.5.3" // (&) and (|) (RFC 4526)
	subschemaDN      = "cn=Subschema"
)

// router wires gldap to the directory's handlers.
func (d *Dir) router() *gldap.Mux {
	mux, _ := gldap.NewMux() // never fails
	_ = mux.Bind(d.handleBind)
	_ = mux.Search(d.handleSearch)
	_ = mux.DefaultRoute(d.handleOther)
	return mux
}

// handleBind accepts the administrator and anonymous binds.
func (d *Dir) handleBind(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
	defer func() { d.write(w, resp) }()
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		resp.SetResultCode(gldap.ResultProtocolError)
		return
	}
	setBound := func(ndn string) {
		d.connMu.Lock()
		d.bound[r.ConnectionID()] = ndn
		d.connMu.Unlock()
	}
	setBound("") // a failed bind leaves the connection anonymous
	ndn, err := normDN(m.UserName)
	switch {
	case err != nil:
		resp.SetResultCode(gldap.ResultInvalidDNSyntax)
		resp.SetDiagnosticMessage("invalid DN")
	case ndn == "" && m.Password == "":
		resp.SetResultCode(gldap.ResultSuccess)
	case m.Password == "":
		resp.SetResultCode(gldap.ResultUnwillingToPerform)
		resp.SetDiagnosticMessage("unauthenticated bind (DN with no password) disallowed")
	case ndn == d.bindNDN && d.checkPassword(string(m.Password)):
		setBound(ndn)
		resp.SetResultCode(gldap.ResultSuccess)
	}
}

// handleOther refuses writes and unsupported extended operations.
func (d *Dir) handleOther(w *gldap.ResponseWriter, r *gldap.Request) {
	const readOnly = "this demo directory is read-only over LDAP"
	opt := []gldap.Option{gldap.WithResponseCode(gldap.ResultUnwillingToPerform), gldap.WithDiagnosticMessage(readOnly), gldap.WithMatchedDN("")}
	if _, err := r.GetModifyMessage(); err == nil {
		d.write(w, r.NewModifyResponse(opt...))
		return
	}
	if _, err := r.GetAddMessage(); err == nil {
		d.write(w, r.NewResponse(append(opt, gldap.WithApplicationCode(gldap.ApplicationAddResponse))...))
		return
	}
	if _, err := r.GetDeleteMessage(); err == nil {
		d.write(w, r.NewResponse(append(opt, gldap.WithApplicationCode(gldap.ApplicationDelResponse))...))
		return
	}
	// An extended operation (StartTLS, WhoAmI, ...): none is supported.
	resp := r.NewExtendedResponse(gldap.WithResponseCode(gldap.ResultProtocolError))
	resp.SetDiagnosticMessage("unsupported extended operation")
	resp.SetMatchedDN("")
	d.write(w, resp)
}

func (d *Dir) write(w *gldap.ResponseWriter, resp gldap.Response) {
	if err := w.Write(resp); err != nil {
		d.log.Debug("ldapdir: write a response", zap.Error(err))
	}
}

// result is the outcome of one search request.
type result struct {
	entries []Entry
	code    int
	diag    string
	matched string
	paging  *gldap.ControlPaging // the response control, when the request paged
}

func (d *Dir) handleSearch(w *gldap.ResponseWriter, r *gldap.Request) {
	m, err := r.GetSearchMessage()
	if err != nil {
		d.write(w, r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultProtocolError)))
		return
	}
	d.connMu.Lock()
	bound := d.bound[r.ConnectionID()]
	d.connMu.Unlock()
	res := d.search(bound, m)
	for _, e := range res.entries {
		re := r.NewSearchResponseEntry(e.DN)
		for _, a := range e.Attrs {
			re.AddAttribute(a.Name, a.Values)
		}
		if err := w.Write(re); err != nil {
			d.log.Debug("ldapdir: write an entry", zap.Error(err))
			return
		}
	}
	done := r.NewSearchDoneResponse(gldap.WithResponseCode(res.code))
	done.SetDiagnosticMessage(res.diag)
	done.SetMatchedDN(res.matched)
	if res.paging != nil {
		done.SetControls(res.paging)
	}
	d.write(w, done)
}

// request is a search, decoded.
type request struct {
	m        *gldap.SearchMessage
	base     string // normalised
	f        *filter
	paging   *gldap.ControlPaging
	limit    int
	sel      selection
	cookieID []byte
}

// search runs m for a connection bound as bound ("" anonymous).
func (d *Dir) search(bound string, m *gldap.SearchMessage) result {
	q := &request{m: m}
	for _, c := range m.Controls {
		switch c := c.(type) {
		case *gldap.ControlPaging:
			q.paging = c
		case *gldap.ControlManageDsaIT:
			// There are no referral objects: nothing to do.
		case *gldap.ControlString:
			if c.Criticality {
				return result{code: gldap.ResultUnavailableCriticalExtension, diag: "critical control " + c.ControlType + " is not supported"}
			}
		}
	}
	var err error
	if q.base, err = normDN(m.BaseDN); err != nil {
		return result{code: gldap.ResultInvalidDNSyntax, diag: "invalid base DN"}
	}
	if q.f, err = d.compileFilter(m.Filter); err != nil {
		if errors.Is(err, errExtensible) {
			return result{code: gldap.ResultInappropriateMatching, diag: err.Error()}
		}
		return result{code: gldap.ResultProtocolError, diag: "bad search filter"}
	}
	q.sel = selectionOf(m.Attributes)
	if q.base == "" && m.Scope == gldap.BaseObject {
		return d.rootDSE(q)
	}
	if bound == "" && !d.anon {
		return result{code: gldap.ResultInsufficientAccessRights, diag: "anonymous searches may read only the root DSE: bind first"}
	}
	q.limit = d.limit
	if m.SizeLimit > 0 && (q.limit == 0 || int(m.SizeLimit) < q.limit) {
		q.limit = int(m.SizeLimit)
	}
	return d.searchEntries(q)
}

// searchEntries answers a search below the root DSE.
func (d *Dir) searchEntries(q *request) result {
	var (
		after    uint64 // the paging cursor: the last seq returned
		returned uint32 // entries returned by earlier pages
		pageSize = -1
	)
	if q.paging != nil {
		q.cookieID = d.cookieID(q.m)
		if len(q.paging.Cookie) > 0 {
			c := q.paging.Cookie
			if len(c) != len(q.cookieID)+12 || string(c[:len(q.cookieID)]) != string(q.cookieID) {
				return result{code: gldap.ResultUnwillingToPerform, diag: "paged results cookie is invalid"}
			}
			after = binary.BigEndian.Uint64(c[len(q.cookieID):])
			returned = binary.BigEndian.Uint32(c[len(q.cookieID)+8:])
		}
		pageSize = int(q.paging.PagingSize)
		if pageSize == 0 {
			// RFC 2696: a size of zero abandons the paged search.
			return result{code: gldap.ResultSuccess, paging: &gldap.ControlPaging{}}
		}
	}
	d.mu.RLock()
	base, ok := d.byDN[q.base]
	if !ok {
		matched := ""
		for p := parentDN(q.base); p != ""; p = parentDN(p) {
			if e, ok := d.byDN[p]; ok {
				matched = e.dn
				break
			}
		}
		d.mu.RUnlock()
		return result{code: gldap.ResultNoSuchObject, matched: matched}
	}
	type hit struct {
		e       *entry
		hasSubs bool
	}
	var hits []hit
	more := false
	last := after
	over := false
	for _, e := range d.entries {
		if e.seq <= after || !inScope(e, base, q.m.Scope) {
			continue
		}
		hasSubs := d.children[e.ndn] > 0
		if q.f.match(virtualGet(e, hasSubs)) != isTrue {
			continue
		}
		if pageSize >= 0 && len(hits) == pageSize {
			more = true
			break
		}
		if q.limit > 0 && int(returned)+len(hits) >= q.limit {
			over = true
			break
		}
		hits = append(hits, hit{e, hasSubs})
		last = e.seq
	}
	d.mu.RUnlock()
	res := result{code: gldap.ResultSuccess}
	for _, h := range hits {
		res.entries = append(res.entries, q.sel.apply(h.e.dn, h.e.attrs, virtualAttrs(h.e, h.hasSubs), q.m.TypesOnly, d.operational))
	}
	switch {
	case over:
		res.code = gldap.ResultSizeLimitExceeded
		if q.paging != nil {
			res.paging = &gldap.ControlPaging{}
		}
	case q.paging != nil:
		res.paging = &gldap.ControlPaging{}
		if more {
			c := append([]byte(nil), q.cookieID...)
			c = binary.BigEndian.AppendUint64(c, last)
			c = binary.BigEndian.AppendUint32(c, returned+uint32(len(hits)))
			res.paging.Cookie = c
		}
	}
	return res
}

// cookieID identifies a paged search: its cookies are refused for any
// other search (or by another server).
func (d *Dir) cookieID(m *gldap.SearchMessage) []byte {
	h := sha256.New()
	h.Write(d.nonce)
	fmt.Fprintf(h, "\x00%s\x00%d\x00%s\x00%t\x00%d", m.BaseDN, m.Scope, m.Filter, m.TypesOnly, m.SizeLimit)
	for _, a := range m.Attributes {
		h.Write([]byte("\x00" + a))
	}
	return h.Sum(nil)[:8]
}

func inScope(e, base *entry, scope gldap.Scope) bool {
	switch scope {
	case gldap.BaseObject:
		return e == base
	case gldap.SingleLevel:
		return e.parent == base.ndn
	case scopeSubordinate:
		return e != base && under(e.ndn, base.ndn)
	default:
		return under(e.ndn, base.ndn)
	}
}

// virtualAttrs are the operational attributes computed at read time.
func virtualAttrs(e *entry, hasSubs bool) []Attr {
	return []Attr{
		{Name: "entryDN", Values: []string{e.dn}},
		{Name: "subschemaSubentry", Values: []string{subschemaDN}},
		{Name: "hasSubordinates", Values: []string{strings.ToUpper(strconv.FormatBool(hasSubs))}},
	}
}

func virtualGet(e *entry, hasSubs bool) func(string) []string {
	return func(name string) []string {
		if v := e.get(name); v != nil {
			return v
		}
		for _, a := range virtualAttrs(e, hasSubs) {
			if strings.EqualFold(a.Name, name) {
				return a.Values
			}
		}
		return nil
	}
}

// rootDSE answers a base search of "": the server's description, as
// slapd gives it (operational attributes only on request, no Active
// Directory markers).
func (d *Dir) rootDSE(q *request) result {
	d.mu.RLock()
	suffix := d.suffixDN
	d.mu.RUnlock()
	user := []Attr{{Name: "objectClass", Values: []string{"top", "OpenLDAProotDSE"}}}
	op := []Attr{
		{Name: "structuralObjectClass", Values: []string{"OpenLDAProotDSE"}},
		{Name: "namingContexts", Values: []string{suffix}},
		{Name: "supportedControl", Values: []string{oidManageDsaIT, oidPaging}},
		{Name: "supportedFeatures", Values: []string{oidAllOpAttrs, oidAbsoluteTrueF}},
		{Name: "supportedLDAPVersion", Values: []string{"3"}},
		{Name: "entryDN", Values: []string{""}},
		{Name: "subschemaSubentry", Values: []string{subschemaDN}},
	}
	get := func(name string) []string {
		for _, a := range append(user, op...) {
			if strings.EqualFold(a.Name, name) {
				return a.Values
			}
		}
		return nil
	}
	res := result{code: gldap.ResultSuccess}
	if q.f.match(get) == isTrue {
		e := q.sel.apply("", user, op, q.m.TypesOnly, d.operational)
		res.entries = []Entry{e}
	}
	if q.paging != nil {
		res.paging = &gldap.ControlPaging{}
	}
	return res
}

// selection is the attribute list of a search request.
type selection struct {
	allUser bool
	allOp   bool
	names   map[string]bool // lower-cased
}

func selectionOf(attrs []string) selection {
	s := selection{names: map[string]bool{}}
	if len(attrs) == 0 {
		s.allUser = true
	}
	for _, a := range attrs {
		switch a {
		case "*":
			s.allUser = true
		case "+":
			s.allOp = true
		case "1.1": // no attributes
		default:
			s.names[strings.ToLower(a)] = true
		}
	}
	return s
}

// apply builds the entry a client receives: the selected stored
// attributes, then the selected computed ones.
func (s selection) apply(dn string, stored, virtual []Attr, typesOnly bool, operational func(string) bool) Entry {
	out := Entry{DN: dn}
	add := func(a Attr) {
		if typesOnly {
			a.Values = nil
		}
		out.Attrs = append(out.Attrs, a)
	}
	for _, a := range stored {
		op := operational(a.Name)
		if s.names[strings.ToLower(a.Name)] || (op && s.allOp) || (!op && s.allUser) {
			add(a)
		}
	}
	for _, a := range virtual {
		if s.allOp || s.names[strings.ToLower(a.Name)] {
			add(a)
		}
	}
	return out
}

// operational reports whether an attribute is returned only for "+" or
// by name.
func (d *Dir) operational(name string) bool { return d.info(name).operational }
