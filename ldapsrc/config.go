package ldapsrc

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/go-ldap/ldap/v3"
)

// Flavours of directory.
const (
	FlavourAuto            = "auto"
	FlavourOpenLDAP        = "openldap"
	FlavourActiveDirectory = "active_directory"
)

// Incremental modes.
const (
	IncAuto            = "auto"             // syncrepl on OpenLDAP, usn on Active Directory
	IncSyncrepl        = "syncrepl"         // RFC 4533 refreshAndPersist (OpenLDAP syncprov)
	IncModifyTimestamp = "modify_timestamp" // poll modifyTimestamp (any LDAP server)
	IncUSN             = "usn"              // poll uSNChanged on one domain controller (AD)
	IncDirSync         = "dirsync"          // AD DirSync control (needs the replication right)
	IncNotify          = "notify"           // AD change notifications, USN catch-up and safety net
	IncNone            = "none"             // full pulls only
	scopeSub           = "sub"              //
	scopeOne           = "one"              //
	scopeBase          = "base"             //
	nestedClient       = "client"           // resolve nested groups in dirsync
	nestedInChain      = "in_chain"         // AD LDAP_MATCHING_RULE_IN_CHAIN
	nestedNone         = "none"             // direct members only
	lockoutIgnore      = "ignore"           // lockoutTime does not change Active
	lockoutInactive    = "inactive"         // a locked-out account is inactive
	defaultPageSize    = 500                //
	defaultGroupPage   = 100                //
	adMaxPageSize      = 1000               // AD's MaxPageSize
	oidADCapability    = "1.2.840.113556.1.4.800"
	oidInChain         = "1.2.840.113556.1.4.1941"
	neverFileTime      = 0x7FFFFFFFFFFFFFFF
	defaultConnTimeout = 10 * time.Second
	defaultReqTimeout  = 60 * time.Second
	defaultPollEvery   = 15 * time.Second // modify_timestamp, dirsync
	// defaultUSNPoll keeps p95 under 5 s from a change to the engine
	// (half an interval on average, 0.95 of one at p95, plus the reads).
	defaultUSNPoll = 4 * time.Second
	// defaultNotifyPoll is the safety-net USN poll under notifications.
	defaultNotifyPoll = 5 * time.Minute
)

// Settings are the type-specific settings of an ldap source (see
// sample.yaml for the documented form).
type Settings struct {
	// URLs are tried in order; the first that connects and binds is used.
	URLs []string `yaml:"urls"`
	// Flavour is openldap, active_directory or auto (from the root DSE).
	Flavour string `yaml:"flavour"`
	// StartTLS upgrades ldap:// connections before binding.
	StartTLS bool `yaml:"start_tls"`
	TLS      TLS  `yaml:"tls"`
	// BindDN and BindPassword: a simple bind; both empty binds anonymously.
	BindDN       string        `yaml:"bind_dn"`
	BindPassword config.Secret `yaml:"bind_password"`
	// ConnectTimeout bounds dialing, TLS and the bind (default 10s).
	ConnectTimeout config.Duration `yaml:"connect_timeout"`
	// RequestTimeout bounds each request, e.g. one search page (default 60s).
	RequestTimeout config.Duration `yaml:"request_timeout"`
	// PageSize of user searches (default 500; Active Directory caps it at 1000).
	PageSize int `yaml:"page_size"`
	// Parallel splits the user search into this many partitions read over
	// separate connections at once (default 1).
	Parallel int         `yaml:"parallel"`
	Users    Users       `yaml:"users"`
	Groups   Groups      `yaml:"groups"`
	Inc      Incremental `yaml:"incremental"`
}

// TLS configures certificate verification.
type TLS struct {
	// CAFile is a PEM bundle of the CAs to trust (default: the system pool).
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile: a client certificate, when the server asks.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify turns certificate verification off. Every
	// connection made this way logs a warning.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Users configures where people are read and how their attributes map.
type Users struct {
	// BaseDN defaults to the directory's naming context.
	BaseDN string `yaml:"base_dn"`
	// Filter selects people (per-flavour default).
	Filter string `yaml:"filter"`
	// Scope is sub (default), one or base.
	Scope      string  `yaml:"scope"`
	Attributes Mapping `yaml:"attributes"`
	// ExtraAttributes are copied into User.Attributes under their own
	// names; multiple values are joined with ",". Binary values are hex.
	ExtraAttributes []string `yaml:"extra_attributes"`
	// Lockout (Active Directory): ignore (default) or inactive, which makes
	// an account with a non-zero lockoutTime inactive.
	Lockout string `yaml:"lockout"`
}

// Mapping names the directory attribute behind each user field. Empty
// entries take the flavour's default; "-" means none.
type Mapping struct {
	Key         string `yaml:"key"`
	Username    string `yaml:"username"`
	Email       string `yaml:"email"`
	GivenName   string `yaml:"given_name"`
	FamilyName  string `yaml:"family_name"`
	DisplayName string `yaml:"display_name"`
}

// Groups configures where groups are read.
type Groups struct {
	// Disabled skips groups entirely (users get no Groups).
	Disabled bool `yaml:"disabled"`
	// BaseDN defaults to the users' base DN.
	BaseDN string `yaml:"base_dn"`
	// Filter selects groups (per-flavour default).
	Filter string `yaml:"filter"`
	Scope  string `yaml:"scope"`
	// NameAttribute is the group name users get in Groups (default cn).
	NameAttribute string `yaml:"name_attribute"`
	// Nested: client (default; resolved by dirsync, with cycle detection),
	// in_chain (Active Directory's matching rule; slow on large domains), or
	// none (direct members only).
	Nested string `yaml:"nested"`
	// PageSize of group searches (default 100: groups can be big).
	PageSize int `yaml:"page_size"`
}

// Incremental configures change detection between full pulls.
type Incremental struct {
	// Mode is auto (default: syncrepl on OpenLDAP; notify on Active
	// Directory when it offers change notifications, else usn), syncrepl,
	// modify_timestamp, usn, notify, dirsync or none.
	Mode string `yaml:"mode"`
	// PollInterval for the polling modes (default 4s for usn, 15s for
	// modify_timestamp and dirsync) and the safety-net poll of notify
	// (default 5m).
	PollInterval config.Duration `yaml:"poll_interval"`
}

// validate checks the settings and returns every problem, located under path.
func (s *Settings) validate(path string) config.Problems {
	var ps config.Problems
	at := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if len(s.URLs) == 0 {
		ps.Add(at("urls"), "at least one ldap:// or ldaps:// URL is required")
	}
	for i, raw := range s.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			ps.Add(fmt.Sprintf("%s[%d]", at("urls"), i), "invalid URL: %v", err)
		case u.Scheme != "ldap" && u.Scheme != "ldaps":
			ps.Add(fmt.Sprintf("%s[%d]", at("urls"), i), "scheme must be ldap or ldaps (got %q)", u.Scheme)
		case u.Host == "":
			ps.Add(fmt.Sprintf("%s[%d]", at("urls"), i), "host is missing")
		case u.Scheme == "ldaps" && s.StartTLS:
			ps.Add(at("start_tls"), "cannot be combined with the ldaps:// URL %q", raw)
		}
	}
	if !slices.Contains([]string{"", FlavourAuto, FlavourOpenLDAP, FlavourActiveDirectory}, s.Flavour) {
		ps.Add(at("flavour"), "must be openldap, active_directory or auto (got %q)", s.Flavour)
	}
	if s.BindDN == "" && !s.BindPassword.IsZero() {
		ps.Add(at("bind_dn"), "is required when bind_password is set")
	}
	if s.BindDN != "" {
		if _, err := ldap.ParseDN(s.BindDN); err != nil {
			ps.Add(at("bind_dn"), "invalid DN: %v", err)
		}
		if s.BindPassword.IsZero() {
			ps.Add(at("bind_password"), "is required with bind_dn (an empty password would be an unauthenticated bind)")
		}
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		ps.Add(at("tls"), "cert_file and key_file go together")
	}
	if s.ConnectTimeout < 0 {
		ps.Add(at("connect_timeout"), "must be >= 0")
	}
	if s.RequestTimeout < 0 {
		ps.Add(at("request_timeout"), "must be >= 0")
	}
	if s.PageSize < 0 {
		ps.Add(at("page_size"), "must be >= 0")
	}
	if s.Flavour == FlavourActiveDirectory && s.PageSize > adMaxPageSize {
		ps.Add(at("page_size"), "Active Directory returns at most %d entries per page (got %d)", adMaxPageSize, s.PageSize)
	}
	if s.Parallel < 0 || s.Parallel > 64 {
		ps.Add(at("parallel"), "must be between 1 and 64")
	}
	for k, dn := range map[string]string{"users.base_dn": s.Users.BaseDN, "groups.base_dn": s.Groups.BaseDN} {
		if dn != "" {
			if _, err := ldap.ParseDN(dn); err != nil {
				ps.Add(at(k), "invalid DN: %v", err)
			}
		}
	}
	for k, f := range map[string]string{"users.filter": s.Users.Filter, "groups.filter": s.Groups.Filter} {
		if f != "" {
			if _, err := ldap.CompileFilter(f); err != nil {
				ps.Add(at(k), "invalid filter: %v", err)
			}
		}
	}
	for k, sc := range map[string]string{"users.scope": s.Users.Scope, "groups.scope": s.Groups.Scope} {
		if !slices.Contains([]string{"", scopeSub, scopeOne, scopeBase}, sc) {
			ps.Add(at(k), "must be sub, one or base (got %q)", sc)
		}
	}
	if !slices.Contains([]string{"", lockoutIgnore, lockoutInactive}, s.Users.Lockout) {
		ps.Add(at("users.lockout"), "must be ignore or inactive (got %q)", s.Users.Lockout)
	}
	if s.Users.Attributes.Key == "-" {
		ps.Add(at("users.attributes.key"), "a stable key attribute is required")
	}
	for i, a := range s.Users.ExtraAttributes {
		if !validAttr(a) {
			ps.Add(fmt.Sprintf("%s[%d]", at("users.extra_attributes"), i), "invalid attribute name %q", a)
		}
	}
	m := s.Users.Attributes
	for k, a := range map[string]string{"key": m.Key, "username": m.Username, "email": m.Email, "given_name": m.GivenName, "family_name": m.FamilyName, "display_name": m.DisplayName} {
		if a != "" && a != "-" && !validAttr(a) {
			ps.Add(at("users.attributes."+k), "invalid attribute name %q", a)
		}
	}
	if !slices.Contains([]string{"", nestedClient, nestedInChain, nestedNone}, s.Groups.Nested) {
		ps.Add(at("groups.nested"), "must be client, in_chain or none (got %q)", s.Groups.Nested)
	}
	if s.Groups.Nested == nestedInChain && s.Flavour == FlavourOpenLDAP {
		ps.Add(at("groups.nested"), "in_chain needs Active Directory")
	}
	if s.Groups.NameAttribute != "" && !validAttr(s.Groups.NameAttribute) {
		ps.Add(at("groups.name_attribute"), "invalid attribute name %q", s.Groups.NameAttribute)
	}
	if s.Groups.PageSize < 0 {
		ps.Add(at("groups.page_size"), "must be >= 0")
	}
	if !slices.Contains([]string{"", IncAuto, IncSyncrepl, IncModifyTimestamp, IncUSN, IncNotify, IncDirSync, IncNone}, s.Inc.Mode) {
		ps.Add(at("incremental.mode"), "must be auto, syncrepl, modify_timestamp, usn, notify, dirsync or none (got %q)", s.Inc.Mode)
	}
	switch {
	case s.Flavour == FlavourOpenLDAP && (s.Inc.Mode == IncUSN || s.Inc.Mode == IncDirSync || s.Inc.Mode == IncNotify):
		ps.Add(at("incremental.mode"), "%s needs Active Directory", s.Inc.Mode)
	case s.Flavour == FlavourActiveDirectory && s.Inc.Mode == IncSyncrepl:
		ps.Add(at("incremental.mode"), "syncrepl needs OpenLDAP (use notify, usn or dirsync)")
	}
	if s.Inc.PollInterval < 0 {
		ps.Add(at("incremental.poll_interval"), "must be >= 0")
	}
	for _, f := range []struct{ k, p string }{{"tls.ca_file", s.TLS.CAFile}, {"tls.cert_file", s.TLS.CertFile}, {"tls.key_file", s.TLS.KeyFile}} {
		if f.p == "" {
			continue
		}
		if _, err := os.Stat(f.p); err != nil {
			ps.Add(at(f.k), "%v", err)
		}
	}
	return ps
}

func validAttr(a string) bool {
	if a == "" {
		return false
	}
	for _, c := range a {
		if !(c == '-' || c == '.' || c == ';' || ('0' <= c && c <= '9') || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')) {
			return false
		}
	}
	return true
}

// fillDefaults sets what does not depend on the flavour.
func (s *Settings) fillDefaults() {
	if s.Flavour == "" {
		s.Flavour = FlavourAuto
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = config.Duration(defaultConnTimeout)
	}
	if s.RequestTimeout == 0 {
		s.RequestTimeout = config.Duration(defaultReqTimeout)
	}
	if s.PageSize == 0 {
		s.PageSize = defaultPageSize
	}
	if s.Parallel == 0 {
		s.Parallel = 1
	}
	if s.Users.Scope == "" {
		s.Users.Scope = scopeSub
	}
	if s.Users.Lockout == "" {
		s.Users.Lockout = lockoutIgnore
	}
	if s.Groups.Scope == "" {
		s.Groups.Scope = scopeSub
	}
	if s.Groups.Nested == "" {
		s.Groups.Nested = nestedClient
	}
	if s.Groups.NameAttribute == "" {
		s.Groups.NameAttribute = "cn"
	}
	if s.Groups.PageSize == 0 {
		s.Groups.PageSize = defaultGroupPage
	}
	if s.Inc.Mode == "" {
		s.Inc.Mode = IncAuto
	}
}

// tlsConfig builds the one TLS config every connection uses.
func (s *Settings) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLS.ServerName, InsecureSkipVerify: s.TLS.InsecureSkipVerify} //nolint:gosec // explicit, loudly logged option
	if s.TLS.CAFile != "" {
		pem, err := os.ReadFile(s.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: no PEM certificate in %s", s.TLS.CAFile)
		}
		c.RootCAs = pool
	}
	if s.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLS.CertFile, s.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// profile is the flavour-resolved view of the settings a pull works with.
type profile struct {
	flavour     string
	userBase    string
	userFilter  string
	userScope   int
	groupBase   string
	groupFilter string
	groupScope  int
	m           Mapping
}

func scopeOf(s string) int {
	switch s {
	case scopeBase:
		return 0
	case scopeOne:
		return 1
	}
	return 2
}

// resolve fills the flavour's defaults into a profile. namingContext is
// the directory's default naming context (for empty base DNs).
func (s *Settings) resolve(flavour, namingContext string) profile {
	p := profile{flavour: flavour, m: s.Users.Attributes}
	p.userBase = s.Users.BaseDN
	if p.userBase == "" {
		p.userBase = namingContext
	}
	p.groupBase = s.Groups.BaseDN
	if p.groupBase == "" {
		p.groupBase = p.userBase
	}
	p.userScope, p.groupScope = scopeOf(s.Users.Scope), scopeOf(s.Groups.Scope)
	p.userFilter, p.groupFilter = s.Users.Filter, s.Groups.Filter
	def := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
		if *dst == "-" {
			*dst = ""
		}
	}
	if flavour == FlavourActiveDirectory {
		def(&p.userFilter, "(&(objectCategory=person)(objectClass=user))")
		def(&p.groupFilter, "(objectClass=group)")
		def(&p.m.Key, "objectGUID")
		def(&p.m.Username, "sAMAccountName")
		def(&p.m.DisplayName, "displayName")
	} else {
		def(&p.userFilter, "(|(objectClass=inetOrgPerson)(objectClass=posixAccount))")
		def(&p.groupFilter, "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))")
		def(&p.m.Key, "entryUUID")
		def(&p.m.Username, "uid")
		def(&p.m.DisplayName, "cn")
	}
	def(&p.m.Email, "mail")
	def(&p.m.GivenName, "givenName")
	def(&p.m.FamilyName, "sn")
	return p
}

// redactURL strips any userinfo from a URL before it is logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
