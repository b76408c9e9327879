// Package filesrc is a directory source that reads people and groups from a
// JSON or CSV file, the shape HR systems export, re-reading it on every Pull.
package filesrc

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/source"
	"go.uber.org/zap"
)

// Sample is the documented YAML of a file source, for config.example.yaml.
//
//go:embed sample.yaml
var Sample string

// Type is the config type name of this source.
const Type = "file"

// Formats a file can have.
const (
	FormatAuto = "auto"
	FormatJSON = "json"
	FormatCSV  = "csv"
)

// Day boundaries for expiry dates without a time of day.
const (
	EndOfDay   = "end_of_day"
	StartOfDay = "start_of_day"
)

// Settings are the type-specific settings of a file source.
type Settings struct {
	// Path of the file. Required.
	Path string `yaml:"path"`
	// Format is json, csv or auto (default: from the extension; .json, .csv,
	// .tsv).
	Format string `yaml:"format"`
	// Key names the column or field holding the stable key. Default: the
	// first of id, employee_id, employee_number, key present in the file.
	Key string `yaml:"key"`
	// Fields overrides which column or field holds each user field.
	Fields Fields `yaml:"fields"`
	// Attributes lists columns or fields copied into User.Attributes, under
	// the name given here. A JSON "attributes" object is always copied.
	Attributes []string `yaml:"attributes"`
	// DateFormat is the Go layout of expiry dates (default 2006-01-02).
	// RFC 3339 timestamps are accepted too.
	DateFormat string `yaml:"date_format"`
	// Timezone is the IANA zone of dates without an offset (default UTC).
	Timezone string `yaml:"timezone"`
	// ExpiresAt says which end of a date-only expiry day the account expires
	// at: end_of_day (default; 23:59:59, the last day is still a working
	// day) or start_of_day.
	ExpiresAt string `yaml:"expires_at"`
	// GroupsSeparator splits a groups cell (default ";").
	GroupsSeparator string `yaml:"groups_separator"`
	// Delimiter separates CSV columns (default ",", or tab for .tsv); "tab"
	// or "\t" means a tab.
	Delimiter string `yaml:"delimiter"`
	// ActiveValues and InactiveValues are the status (or active) values,
	// case-insensitive, that mean active and inactive. Setting one replaces
	// its default list; a value in neither list fails the Pull.
	ActiveValues   []string `yaml:"active_values"`
	InactiveValues []string `yaml:"inactive_values"`
}

// Fields names the column or field holding each user field; an empty entry
// means the usual names (listed in sample.yaml), "-" means none.
type Fields struct {
	Username           string `yaml:"username"`
	Email              string `yaml:"email"`
	GivenName          string `yaml:"given_name"`
	FamilyName         string `yaml:"family_name"`
	DisplayName        string `yaml:"display_name"`
	Active             string `yaml:"active"`
	Status             string `yaml:"status"`
	Expires            string `yaml:"expires"`
	MustChangePassword string `yaml:"must_change_password"`
	Groups             string `yaml:"groups"`
}

var (
	defaultActive   = []string{"active", "enabled", "employed", "true", "yes", "y", "1"}
	defaultInactive = []string{"inactive", "disabled", "terminated", "suspended", "deactivated", "left", "false", "no", "n", "0"}
)

// Options are what New needs besides the settings.
type Options struct {
	Logger *zap.Logger
	// Now is the clock for Snapshot.TakenAt (default time.Now).
	Now func() time.Time
}

// Source is a file source. It is safe for concurrent use: it keeps nothing
// between Pulls.
type Source struct {
	name   string
	s      Settings
	loc    *time.Location
	comma  rune
	active map[string]bool // lower-cased status value → active
	log    *zap.Logger
	now    func() time.Time
}

var _ source.Source = (*Source)(nil)

// Factory builds a file source from its config (type "file"). It validates the
// settings; the file is not read until Pull.
func Factory(cfg config.Source, deps source.Deps) (source.Source, error) {
	var s Settings
	if err := cfg.Decode(&s); err != nil {
		return nil, err
	}
	if ps := s.validate(cfg.Path()); len(ps) > 0 {
		return nil, ps
	}
	return New(cfg.Name, s, Options{Logger: deps.Logger})
}

// New returns a file source named name.
func New(name string, s Settings, o Options) (*Source, error) {
	if ps := s.validate(""); len(ps) > 0 {
		return nil, fmt.Errorf("filesrc: %s: %w", name, ps)
	}
	s.fillDefaults()
	loc, _ := time.LoadLocation(s.Timezone) // checked by validate
	src := &Source{name: name, s: s, loc: loc, log: o.Logger, now: o.Now, active: map[string]bool{}}
	if src.log == nil {
		src.log = zap.NewNop()
	}
	if src.now == nil {
		src.now = time.Now
	}
	src.comma = ','
	switch s.Delimiter {
	case "", ",":
		if s.Delimiter == "" && strings.EqualFold(filepath.Ext(s.Path), ".tsv") {
			src.comma = '\t'
		}
	case "tab", `\t`, "\t":
		src.comma = '\t'
	default:
		src.comma = []rune(s.Delimiter)[0]
	}
	for _, v := range s.ActiveValues {
		src.active[strings.ToLower(strings.TrimSpace(v))] = true
	}
	for _, v := range s.InactiveValues {
		src.active[strings.ToLower(strings.TrimSpace(v))] = false
	}
	return src, nil
}

func (s *Settings) fillDefaults() {
	if s.Format == "" || s.Format == FormatAuto {
		s.Format = formatFromExt(s.Path)
	}
	if s.DateFormat == "" {
		s.DateFormat = time.DateOnly
	}
	if s.Timezone == "" {
		s.Timezone = "UTC"
	}
	if s.ExpiresAt == "" {
		s.ExpiresAt = EndOfDay
	}
	if s.GroupsSeparator == "" {
		s.GroupsSeparator = ";"
	}
	if s.ActiveValues == nil {
		s.ActiveValues = defaultActive
	}
	if s.InactiveValues == nil {
		s.InactiveValues = defaultInactive
	}
}

func formatFromExt(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return FormatJSON
	case ".csv", ".tsv":
		return FormatCSV
	}
	return ""
}

// validate reports every problem with the settings, with key paths under path.
func (s Settings) validate(path string) config.Problems {
	var ps config.Problems
	at := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if strings.TrimSpace(s.Path) == "" {
		ps.Add(at("path"), "is required")
	}
	switch s.Format {
	case FormatJSON, FormatCSV:
	case "", FormatAuto:
		if s.Path != "" && formatFromExt(s.Path) == "" {
			ps.Add(at("format"), "cannot tell the format from the extension of %q: set json or csv", s.Path)
		}
	default:
		ps.Add(at("format"), "must be json, csv or auto (got %q)", s.Format)
	}
	if s.Timezone != "" {
		if _, err := time.LoadLocation(s.Timezone); err != nil {
			ps.Add(at("timezone"), "unknown time zone %q", s.Timezone)
		}
	}
	switch s.ExpiresAt {
	case "", EndOfDay, StartOfDay:
	default:
		ps.Add(at("expires_at"), "must be end_of_day or start_of_day (got %q)", s.ExpiresAt)
	}
	if s.DateFormat != "" {
		ref := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		if got, err := time.Parse(s.DateFormat, ref.Format(s.DateFormat)); err != nil || !got.Equal(ref) {
			ps.Add(at("date_format"), "%q is not a Go date layout that keeps the date (write 2006-01-02, 02.01.2006, 01/02/2006 ...)", s.DateFormat)
		}
	}
	switch d := s.Delimiter; {
	case d == "", d == "tab", d == `\t`:
	case len([]rune(d)) != 1 || d == "\"" || d == "\n" || d == "\r":
		ps.Add(at("delimiter"), "must be one character or tab (got %q)", d)
	}
	seen := map[string]string{}
	for i, v := range s.ActiveValues {
		seen[strings.ToLower(strings.TrimSpace(v))] = fmt.Sprintf("active_values[%d]", i)
	}
	for i, v := range s.InactiveValues {
		if where, ok := seen[strings.ToLower(strings.TrimSpace(v))]; ok {
			ps.Add(at(fmt.Sprintf("inactive_values[%d]", i)), "%q is also in %s", v, where)
		}
	}
	for i, a := range s.Attributes {
		if strings.TrimSpace(a) == "" {
			ps.Add(at(fmt.Sprintf("attributes[%d]", i)), "must not be empty")
		}
	}
	return ps
}

// Name implements source.Source.
func (s *Source) Name() string { return s.name }

// Pull reads the whole file and returns a complete snapshot, or an error that
// names the file, the line or record, and the field.
func (s *Source) Pull(ctx context.Context) (*identity.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filesrc: %s: %w", s.name, err)
	}
	data, err := os.ReadFile(s.s.Path)
	if err != nil {
		return nil, fmt.Errorf("filesrc: %s: %w", s.name, err)
	}
	data = trimBOM(data)
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil, fmt.Errorf("filesrc: %s: %s: file is empty", s.name, s.s.Path)
	}
	var f *file
	switch s.s.Format {
	case FormatJSON:
		f, err = parseJSON(s.s.Path, data)
	default:
		f, err = parseCSV(s.s.Path, data, s.comma)
	}
	if err != nil {
		return nil, fmt.Errorf("filesrc: %s: %w", s.name, err)
	}
	if len(f.users) == 0 {
		return nil, fmt.Errorf("filesrc: %s: %s: file has no users", s.name, s.s.Path)
	}
	users, groups, err := s.build(f)
	if err != nil {
		return nil, fmt.Errorf("filesrc: %s: %w", s.name, err)
	}
	return &identity.Snapshot{Source: s.name, TakenAt: s.now().UTC(), Users: users, Groups: groups}, nil
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

// errList collects record errors so one Pull reports several at once.
type errList struct {
	errs []error
	more int
}

const maxErrs = 20

func (l *errList) add(where, field, format string, args ...any) {
	if len(l.errs) >= maxErrs {
		l.more++
		return
	}
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	l.errs = append(l.errs, fmt.Errorf("%s: %s", where, msg))
}

func (l *errList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	if l.more > 0 {
		l.errs = append(l.errs, fmt.Errorf("... and %d more", l.more))
	}
	if len(l.errs) == 1 {
		return l.errs[0]
	}
	return errors.Join(l.errs...)
}
