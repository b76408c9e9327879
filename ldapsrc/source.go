// Package ldapsrc is dirsync's LDAP and Active Directory source: a streaming
// paged read of people and groups (nested membership and AD range retrieval
// resolved) into the canonical model, and incremental change detection
// (RFC 4533 syncrepl on OpenLDAP; change notifications, uSNChanged or
// DirSync on Active Directory; modifyTimestamp polling elsewhere). A
// partial read is always an error, never a short snapshot.
//
// What each Active Directory mode costs the domain controller, and buys:
//
//   - notify (the default when the DC offers LDAP_SERVER_NOTIFICATION_OID,
//     1.2.840.113556.1.4.528): one registered asynchronous search per
//     naming context, held open; per change, one entry sent to us and our
//     re-read of that object (a base search by GUID, plus the user's group
//     lookups). Idle, no searches at all, except the safety-net USN poll
//     (default every 5 minutes) and a catch-up poll on each reconnect.
//     A change reaches the engine in tens of milliseconds.
//   - usn (when notifications are not allowed): every poll_interval
//     (default 4 s) two base-object reads (root DSE, invocationId); when
//     something changed, four searches on the indexed uSNChanged
//     (changed and deleted users and groups) and the group lookups of
//     each changed user. A change waits up to one interval: p95 about 4 s.
//     At 1 s, p95 is under 1 s for four times the idle reads.
//   - dirsync: one DirSync search per poll; needs the replication right.
//
// Group membership changes are resolved to the members added and removed
// (source.Change.GroupChanges, with those members' complete records in
// Upserts) in every incremental mode, against a member index read once per
// Watch start and kept across reconnects; what it cannot resolve (changes
// from before the index, a rename, more than 500 users) asks for a full
// pull.
package ldapsrc

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/ldapsrc/internal/wire"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
)

// Sample is the documented YAML of an ldap source, for config.example.yaml.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name of this source.
const Type = "ldap"

// Options are what New needs besides the settings.
type Options struct {
	Logger *zap.Logger
	// Cursors keep incremental cursors (syncrepl cookie, USN) across
	// restarts. Without them Watch starts from scratch each time.
	Cursors source.Cursors
	// Now is the clock (default time.Now).
	Now func() time.Time
	// WatchHealth hears each watch connection's outcome (source.Deps).
	WatchHealth func(err error)
}

// Source reads one LDAP directory. It is safe for concurrent use: Pull
// opens its own connections and keeps nothing between calls.
type Source struct {
	name    string
	s       Settings
	tls     *tls.Config
	log     *zap.Logger
	cursors source.Cursors
	now     func() time.Time
	// afterPage, when set (tests), runs after each page of a search.
	afterPage func(what string, page int)
	// watchHook, when set (tests), hears Watch milestones ("ready:...",
	// "poll").
	watchHook func(event string)
	health    func(err error)
}

var (
	_ source.Source  = (*Source)(nil)
	_ source.Watcher = (*Source)(nil)
)

// Factory builds an ldap source from its config (type "ldap"). It decodes
// and validates the settings and reads the TLS files; there is no network
// until Pull or Watch.
func Factory(cfg config.Source, deps source.Deps) (source.Source, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	if ps := s.validate(cfg.Path()); len(ps) > 0 {
		return nil, ps
	}
	return New(cfg.Name, s, Options{Logger: deps.Logger, Cursors: deps.Cursors, WatchHealth: deps.WatchHealth})
}

// New returns an ldap source named name.
func New(name string, s Settings, o Options) (*Source, error) {
	if ps := s.validate(""); len(ps) > 0 {
		return nil, fmt.Errorf("ldapsrc: %s: %w", name, ps)
	}
	s.fillDefaults()
	tc, err := s.tlsConfig()
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: %s: %w", name, err)
	}
	src := &Source{name: name, s: s, tls: tc, log: o.Logger, cursors: o.Cursors, now: o.Now, health: o.WatchHealth}
	if src.log == nil {
		src.log = zap.NewNop()
	}
	src.log = src.log.With(zap.String("source", name))
	if src.now == nil {
		src.now = time.Now
	}
	if s.TLS.InsecureSkipVerify {
		src.log.Warn("ldap: TLS certificate verification is OFF (tls.insecure_skip_verify): connections can be intercepted")
	}
	return src, nil
}

// Name is the configured source name.
func (s *Source) Name() string { return s.name }

// connect dials the URLs in order and binds on the first that answers.
func (s *Source) connect(ctx context.Context, urls []string) (*wire.Conn, string, error) {
	var errs []error
	for _, u := range urls {
		c, err := s.dialOne(ctx, u)
		if err == nil {
			return c, u, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		s.log.Warn("ldap: server unavailable, trying the next URL", zap.String("url", redactURL(u)), zap.Error(err))
		errs = append(errs, fmt.Errorf("%s: %w", redactURL(u), err))
	}
	return nil, "", errors.Join(errs...)
}

func (s *Source) dialOne(ctx context.Context, u string) (*wire.Conn, error) {
	c, err := wire.Dial(ctx, u, wire.DialOptions{TLS: s.tls, StartTLS: s.s.StartTLS, Timeout: s.s.ConnectTimeout.D()})
	if err != nil {
		return nil, err
	}
	if c.TLS && s.s.TLS.InsecureSkipVerify {
		s.log.Warn("ldap: connected WITHOUT certificate verification (tls.insecure_skip_verify)", zap.String("url", redactURL(u)))
	}
	if !c.TLS && s.s.BindDN != "" {
		s.log.Debug("ldap: binding over an unencrypted connection", zap.String("url", redactURL(u)))
	}
	c.Timeout = s.s.ConnectTimeout.D()
	bctx := ctx
	if err := c.Bind(bctx, s.s.BindDN, s.s.BindPassword.Value()); err != nil {
		c.Close()
		return nil, fmt.Errorf("bind as %q: %w", s.s.BindDN, err)
	}
	c.Timeout = s.s.RequestTimeout.D()
	return c, nil
}

// rootDSE is what the source reads from the server's root entry.
type rootDSE struct {
	ad             bool
	openLDAP       bool
	namingContexts []string
	defaultNC      string
	dsServiceName  string
	highestUSN     int64
	controls       map[string]bool
}

func readRootDSE(ctx context.Context, c *wire.Conn) (*rootDSE, error) {
	d := &rootDSE{controls: map[string]bool{}}
	_, err := c.Search(ctx, &wire.SearchRequest{Scope: wire.ScopeBase, Filter: "(objectClass=*)",
		Attributes: []string{"namingContexts", "defaultNamingContext", "supportedCapabilities", "supportedControl",
			"dsServiceName", "highestCommittedUSN", "objectClass"}},
		wire.Handlers{Entry: func(e *wire.Entry) error {
			for _, v := range e.Get("namingContexts") {
				d.namingContexts = append(d.namingContexts, string(v))
			}
			d.defaultNC = string(e.First("defaultNamingContext"))
			for _, v := range e.Get("supportedCapabilities") {
				if string(v) == oidADCapability {
					d.ad = true
				}
			}
			for _, v := range e.Get("supportedControl") {
				d.controls[string(v)] = true
			}
			for _, v := range e.Get("objectClass") {
				if strings.EqualFold(string(v), "OpenLDAProotDSE") {
					d.openLDAP = true
				}
			}
			d.dsServiceName = string(e.First("dsServiceName"))
			d.highestUSN, _ = strconv.ParseInt(string(e.First("highestCommittedUSN")), 10, 64)
			return nil
		}})
	if err != nil {
		return nil, fmt.Errorf("read root DSE: %w", err)
	}
	if d.defaultNC == "" && len(d.namingContexts) > 0 {
		d.defaultNC = d.namingContexts[0]
	}
	return d, nil
}

// profile resolves the flavour and the defaults against a server.
func (s *Source) profile(d *rootDSE) (profile, error) {
	fl := s.s.Flavour
	if fl == FlavourAuto {
		fl = FlavourOpenLDAP
		if d.ad {
			fl = FlavourActiveDirectory
		}
	}
	p := s.s.resolve(fl, d.defaultNC)
	if s.s.Groups.Nested == nestedInChain && fl != FlavourActiveDirectory {
		return p, errors.New("groups.nested: in_chain needs Active Directory, and this server is not one")
	}
	if p.userBase == "" {
		return p, errors.New("users.base_dn is not set and the server advertises no naming context")
	}
	return p, nil
}

// Pull reads every user and group. A network failure part way is retried
// once on fresh connections; any other failure (size or time limit,
// referral, missing base DN) is returned as is.
func (s *Source) Pull(ctx context.Context) (*identity.Snapshot, error) {
	snap, err := s.pull(ctx)
	if err != nil && wire.IsNetwork(err) && ctx.Err() == nil {
		s.log.Warn("ldap: connection failed during the pull: redialing and starting over", zap.Error(err))
		first := err
		if snap, err = s.pull(ctx); err != nil {
			err = fmt.Errorf("%w (retried after: %v)", err, first)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ldapsrc: %s: pull: %w", s.name, err)
	}
	return snap, nil
}

func (s *Source) pull(ctx context.Context) (*identity.Snapshot, error) {
	start := s.now()
	c, u, err := s.connect(ctx, s.s.URLs)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dse, err := readRootDSE(ctx, c)
	if err != nil {
		return nil, err
	}
	p, err := s.profile(dse)
	if err != nil {
		return nil, err
	}
	r := &reader{src: s, p: p, url: u, dse: dse}
	// Groups are read at the same time as users, over a second connection;
	// members are matched to users once both are complete.
	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var gerr error
	var groupsRead time.Time
	if !s.s.Groups.Disabled {
		gc, err := s.dialOne(ctx, u)
		if err != nil {
			return nil, err
		}
		defer gc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if gerr = r.readGroups(gctx, gc); gerr != nil {
				cancel()
			}
			groupsRead = s.now()
		}()
	}
	uerr := r.readUsers(gctx, c)
	if uerr != nil {
		cancel()
	}
	usersRead := s.now()
	wg.Wait()
	switch {
	case uerr != nil && (gerr == nil || !errors.Is(uerr, context.Canceled)):
		return nil, uerr
	case gerr != nil:
		return nil, gerr
	}
	if !s.s.Groups.Disabled {
		if err := r.resolve(ctx, c); err != nil {
			return nil, err
		}
	}
	snap := &identity.Snapshot{Source: s.name, TakenAt: start.UTC(), Users: r.users, Groups: r.snapGroups}
	s.log.Info("ldap: pulled", zap.String("url", redactURL(u)), zap.String("flavour", p.flavour),
		zap.Int("users", len(snap.Users)), zap.Int("groups", len(snap.Groups)), zap.Duration("took", s.now().Sub(start)),
		zap.Duration("users_read_after", usersRead.Sub(start)), zap.Duration("groups_read_after", groupsRead.Sub(start)))
	return snap, nil
}

// reader is the state of one pull.
type reader struct {
	src *Source
	p   profile
	url string
	dse *rootDSE

	users  []identity.User
	dns    []string // normalized DN of users[i]
	pgids  []uint32 // AD primaryGroupID of users[i]
	byDN   map[string]int32
	groups []*groupRec

	snapGroups []identity.Group
}

// references returns the handler for continuation references: Active
// Directory's referrals to its other partitions (Configuration, DNS zones)
// are expected from a search at the domain root and ignored; any other
// referral fails the read, since following it is not supported and
// skipping it would lose entries.
func (r *reader) references() func(urls []string) error {
	return func(urls []string) error {
		for _, raw := range urls {
			if r.p.flavour == FlavourActiveDirectory && adOtherPartition(raw) {
				r.src.log.Debug("ldap: ignoring referral to another AD partition", zap.String("referral", raw))
				continue
			}
			return &wire.ErrReference{URLs: urls}
		}
		return nil
	}
}

func adOtherPartition(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	dn := strings.ToLower(strings.TrimPrefix(u.Path, "/"))
	for _, p := range []string{"cn=configuration,", "cn=schema,", "dc=domaindnszones,", "dc=forestdnszones,"} {
		if strings.HasPrefix(dn, p) {
			return true
		}
	}
	return false
}

// paged runs req page by page on c, streaming entries to fn. A server
// without the paged results control (it refuses the critical control, or
// answers without it) gets one unpaged search: its SearchResultDone still
// says whether the result is complete.
func (r *reader) paged(ctx context.Context, c *wire.Conn, what string, req wire.SearchRequest, size int, fn func(*wire.Entry) error) error {
	var cookie []byte
	base := req.Controls
	for page := 1; ; page++ {
		req.Controls = append(base[:len(base):len(base)], wire.Paging(size, cookie))
		d, err := c.Search(ctx, &req, wire.Handlers{Entry: fn, Reference: r.references()})
		if page == 1 && wire.IsCode(err, wire.ResultUnavailableCritical) {
			r.src.log.Warn("ldap: the server does not page results: reading in one search", zap.String("search", what))
			req.Controls = base
			d, err = c.Search(ctx, &req, wire.Handlers{Entry: fn, Reference: r.references()})
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if r.src.afterPage != nil {
			r.src.afterPage(what, page)
		}
		if d.Control(wire.OIDPaging) == nil {
			// Answered in full, without paging: complete.
			return nil
		}
		if cookie, err = wire.PagingCookie(d); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if len(cookie) == 0 {
			return nil
		}
		cookie = append([]byte(nil), cookie...)
	}
}

// partFilters splits the user filter into disjoint partitions that cover
// it: entryUUID ranges on OpenLDAP, uSNCreated ranges on Active Directory.
func (r *reader) partFilters() []string {
	n := r.src.s.Parallel
	f := r.p.userFilter
	if n <= 1 {
		return []string{f}
	}
	if !r.dse.ad && !r.dse.openLDAP {
		// Partitions rely on OpenLDAP's entryUUID ordering rule or AD's
		// uSNCreated; elsewhere a filter the server cannot evaluate would
		// silently match nothing.
		r.src.log.Warn("ldap: parallel partitions need OpenLDAP or Active Directory: reading in one search")
		return []string{f}
	}
	bounds := make([]string, 0, n-1)
	attr := ""
	if r.p.flavour == FlavourActiveDirectory && r.dse.ad {
		if r.dse.highestUSN <= int64(n) {
			return []string{f}
		}
		attr = "uSNCreated"
		for i := 1; i < n; i++ {
			bounds = append(bounds, strconv.FormatInt(r.dse.highestUSN*int64(i)/int64(n), 10))
		}
	} else {
		attr = "entryUUID"
		for i := 1; i < n; i++ {
			bounds = append(bounds, fmt.Sprintf("%02x000000-0000-0000-0000-000000000000", 256*i/n))
		}
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		var part string
		switch {
		case i == 0:
			part = fmt.Sprintf("(!(%s>=%s))", attr, bounds[0])
		case i == n-1:
			part = fmt.Sprintf("(%s>=%s)", attr, bounds[n-2])
		default:
			part = fmt.Sprintf("(&(%s>=%s)(!(%s>=%s)))", attr, bounds[i-1], attr, bounds[i])
		}
		out = append(out, "(&"+f+part+")")
	}
	return out
}

// userPart is what one partition read. Users are kept in fixed-size
// chunks so that growing the list never copies what was read.
type userPart struct {
	chunks [][]identity.User
	dns    []string
	pgids  []uint32
	n      int
}

const userChunk = 4096

func (p *userPart) add(u identity.User) {
	if len(p.chunks) == 0 || len(p.chunks[len(p.chunks)-1]) == userChunk {
		p.chunks = append(p.chunks, make([]identity.User, 0, userChunk))
	}
	last := &p.chunks[len(p.chunks)-1]
	*last = append(*last, u)
	p.n++
}

// readUsers streams every user into r.users, in parallel partitions when
// configured (each over its own connection to the same server).
func (r *reader) readUsers(ctx context.Context, c *wire.Conn) error {
	filters := r.partFilters()
	parts := make([]userPart, len(filters))
	if len(filters) == 1 {
		if err := r.readUserPart(ctx, c, filters[0], &parts[0]); err != nil {
			return err
		}
	} else {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, len(filters))
		for i, f := range filters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn := c
				if i > 0 {
					var err error
					if conn, err = r.src.dialOne(ctx, r.url); err != nil {
						errs[i] = err
						cancel()
						return
					}
					defer conn.Close()
				}
				if err := r.readUserPart(ctx, conn, f, &parts[i]); err != nil {
					errs[i] = err
					cancel()
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	n := 0
	for _, p := range parts {
		n += p.n
	}
	r.users = make([]identity.User, 0, n)
	r.dns = make([]string, 0, n)
	for i := range parts {
		for j, c := range parts[i].chunks {
			r.users = append(r.users, c...)
			parts[i].chunks[j] = nil
		}
		r.dns = append(r.dns, parts[i].dns...)
		r.pgids = append(r.pgids, parts[i].pgids...)
		parts[i] = userPart{}
	}
	r.byDN = make(map[string]int32, n)
	keys := make(map[string]struct{}, n)
	for i, d := range r.dns {
		r.byDN[d] = int32(i)
		k := r.users[i].Key
		if _, dup := keys[k]; dup {
			return fmt.Errorf("users: two entries have the key %q (key attribute %s)", k, r.p.m.Key)
		}
		keys[k] = struct{}{}
	}
	return nil
}

func (r *reader) readUserPart(ctx context.Context, c *wire.Conn, filter string, out *userPart) error {
	m := newMapper(r.src.name, r.p, r.src.s.Users.ExtraAttributes, r.src.s.Users.Lockout == lockoutInactive)
	var dnBuf []byte
	req := wire.SearchRequest{BaseDN: r.p.userBase, Scope: wire.Scope(r.p.userScope), Filter: filter, Attributes: m.attrs}
	ad := r.p.flavour == FlavourActiveDirectory
	err := r.paged(ctx, c, "users", req, r.src.s.PageSize, func(e *wire.Entry) error {
		u, err := m.user(e)
		if err != nil {
			return err
		}
		out.add(u)
		dnBuf = appendNormDN(dnBuf[:0], e.DN)
		out.dns = append(out.dns, string(dnBuf))
		if ad {
			out.pgids = append(out.pgids, m.primaryGroup())
		}
		return nil
	})
	return err
}
