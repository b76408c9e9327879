package scim

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	scimerrors "github.com/elimity-com/scim/errors"
)

// This file holds the SCIM filter language (RFC 7644 §3.4.2.2): a tolerant
// parser and an evaluator over stored resources. It accepts what identity
// providers really send besides the RFC grammar: capitalised operators
// ("EQ", "And"), unquoted values (`externalId eq jyoung`, dates), and a
// value path followed by a sub-attribute comparison
// (`emails[type eq "work"].value eq "x"`, sent by Entra ID).

// maxFilterDepth bounds nesting so hostile filters cannot exhaust the stack.
const maxFilterDepth = 64

// expr is a parsed filter expression.
type expr interface{ isExpr() }

type logicalExpr struct {
	or          bool // false: and
	left, right expr
}

type notExpr struct{ inner expr }

// compareExpr is `path op value` or `path pr`.
type compareExpr struct {
	path  attrPath
	op    string // eq ne co sw ew gt ge lt le pr
	value compValue
}

// valuePathExpr is `path[filter]`, optionally followed by `.sub op value`.
type valuePathExpr struct {
	path   attrPath
	filter expr
	sub    *compareExpr // path holds only the sub-attribute name
}

func (logicalExpr) isExpr()   {}
func (notExpr) isExpr()       {}
func (compareExpr) isExpr()   {}
func (valuePathExpr) isExpr() {}

// attrPath is an attribute reference: an optional schema URN, a name and an
// optional sub-attribute, as written by the client (case preserved).
type attrPath struct {
	urn  string
	name string
	sub  string
}

func (p attrPath) String() string {
	s := p.name
	if p.urn != "" {
		s = p.urn + ":" + s
	}
	if p.sub != "" {
		s += "." + p.sub
	}
	return s
}

// compValue is a comparison value. kind is "string" (quoted), "bare"
// (unquoted token), "number", "bool" or "null".
type compValue struct {
	kind string
	str  string
	num  float64
	b    bool
}

// filterError is a syntax error in a filter or path.
type filterError struct {
	pos int
	msg string
}

func (e *filterError) Error() string { return fmt.Sprintf("at %d: %s", e.pos, e.msg) }

type filterParser struct {
	s     string
	pos   int
	depth int
	urns  []string // known schema URNs, for splitting prefixed paths
}

// parseFilter parses a complete filter. urns are the schema URNs a path may
// be prefixed with.
func parseFilter(s string, urns []string) (expr, error) {
	p := &filterParser{s: s, urns: urns}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos != len(p.s) {
		return nil, p.errf("unexpected %q", p.rest(10))
	}
	return e, nil
}

func (p *filterParser) errf(format string, args ...any) error {
	return &filterError{pos: p.pos, msg: fmt.Sprintf(format, args...)}
}

func (p *filterParser) rest(n int) string {
	r := p.s[p.pos:]
	if len(r) > n {
		r = r[:n]
	}
	return r
}

func (p *filterParser) skipWS() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

// keyword consumes kw (case-insensitive) when it stands as a word here.
func (p *filterParser) keyword(kw string) bool {
	p.skipWS()
	end := p.pos + len(kw)
	if end > len(p.s) || !strings.EqualFold(p.s[p.pos:end], kw) {
		return false
	}
	if end < len(p.s) {
		c := p.s[end]
		if c != ' ' && c != '\t' && c != '(' && c != ')' && c != ']' && c != '\n' && c != '\r' {
			return false
		}
	}
	p.pos = end
	return true
}

func (p *filterParser) parseOr() (expr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, p.errf("filter nested too deeply")
	}
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		left = logicalExpr{or: true, left: left, right: right}
	}
	return left, nil
}

func (p *filterParser) parseAnd() (expr, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		left = logicalExpr{left: left, right: right}
	}
	return left, nil
}

func (p *filterParser) parseUnary() (expr, error) {
	p.skipWS()
	save := p.pos
	if p.keyword("not") {
		p.skipWS()
		if p.pos < len(p.s) && p.s[p.pos] == '(' {
			inner, err := p.parseParen()
			if err != nil {
				return nil, err
			}
			return notExpr{inner: inner}, nil
		}
		// "not" may be an attribute name after all; retry as an expression.
		p.pos = save
	}
	if p.pos < len(p.s) && p.s[p.pos] == '(' {
		return p.parseParen()
	}
	return p.parseAttrExpr()
}

func (p *filterParser) parseParen() (expr, error) {
	p.pos++ // (
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos >= len(p.s) || p.s[p.pos] != ')' {
		return nil, p.errf("missing ')'")
	}
	p.pos++
	return e, nil
}

func isPathChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '$' || c == ':' || c == '.'
}

// scanPath reads a raw attribute path token.
func (p *filterParser) scanPath() string {
	p.skipWS()
	start := p.pos
	for p.pos < len(p.s) && isPathChar(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *filterParser) parseAttrExpr() (expr, error) {
	raw := p.scanPath()
	if raw == "" {
		return nil, p.errf("expected an attribute name, got %q", p.rest(10))
	}
	path, err := splitPath(raw, p.urns)
	if err != nil {
		return nil, p.errf("%v", err)
	}
	if p.pos < len(p.s) && p.s[p.pos] == '[' {
		if path.sub != "" {
			return nil, p.errf("a value filter cannot follow a sub-attribute")
		}
		p.pos++
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		p.skipWS()
		if p.pos >= len(p.s) || p.s[p.pos] != ']' {
			return nil, p.errf("missing ']'")
		}
		p.pos++
		vp := valuePathExpr{path: path, filter: inner}
		if p.pos < len(p.s) && p.s[p.pos] == '.' {
			p.pos++
			sub := p.scanPath()
			if sub == "" || strings.ContainsAny(sub, ".:") {
				return nil, p.errf("invalid sub-attribute after ']'")
			}
			c, err := p.parseComparison(attrPath{name: sub})
			if err != nil {
				return nil, err
			}
			vp.sub = &c
		}
		return vp, nil
	}
	c, err := p.parseComparison(path)
	if err != nil {
		return nil, err
	}
	return c, nil
}

var compareOps = []string{"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"}

func (p *filterParser) parseComparison(path attrPath) (compareExpr, error) {
	if p.keyword("pr") {
		return compareExpr{path: path, op: "pr"}, nil
	}
	for _, op := range compareOps {
		if p.keyword(op) {
			v, err := p.parseValue()
			if err != nil {
				return compareExpr{}, err
			}
			return compareExpr{path: path, op: op, value: v}, nil
		}
	}
	return compareExpr{}, p.errf("expected an operator after %q, got %q", path.String(), p.rest(10))
}

func (p *filterParser) parseValue() (compValue, error) {
	p.skipWS()
	if p.pos >= len(p.s) {
		return compValue{}, p.errf("missing comparison value")
	}
	if p.s[p.pos] == '"' {
		// A JSON string: find its end honouring escapes.
		i := p.pos + 1
		for i < len(p.s) && p.s[i] != '"' {
			if p.s[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(p.s) {
			return compValue{}, p.errf("unterminated string")
		}
		var out string
		if err := json.Unmarshal([]byte(p.s[p.pos:i+1]), &out); err != nil {
			// Not valid JSON escapes: take the text between quotes as is.
			out = p.s[p.pos+1 : i]
		}
		p.pos = i + 1
		return compValue{kind: "string", str: out}, nil
	}
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == ' ' || c == '\t' || c == ')' || c == ']' || c == '\n' || c == '\r' {
			break
		}
		p.pos++
	}
	tok := p.s[start:p.pos]
	if tok == "" {
		return compValue{}, p.errf("missing comparison value")
	}
	switch strings.ToLower(tok) {
	case "true":
		return compValue{kind: "bool", b: true, str: tok}, nil
	case "false":
		return compValue{kind: "bool", b: false, str: tok}, nil
	case "null":
		return compValue{kind: "null", str: tok}, nil
	}
	if n, err := strconv.ParseFloat(tok, 64); err == nil && !math.IsInf(n, 0) && !math.IsNaN(n) {
		return compValue{kind: "number", num: n, str: tok}, nil
	}
	return compValue{kind: "bare", str: tok}, nil
}

// splitPath splits "urn:...:User:name.givenName" into its parts. A URN
// prefix is recognised when it is one of urns (case-insensitive), or else
// when the path starts with "urn:" (the last ':' separates it).
func splitPath(raw string, urns []string) (attrPath, error) {
	var p attrPath
	rest := raw
	if len(raw) > 4 && strings.EqualFold(raw[:4], "urn:") {
		found := false
		for _, u := range urns {
			if len(rest) > len(u) && strings.EqualFold(rest[:len(u)], u) && rest[len(u)] == ':' {
				p.urn, rest, found = u, rest[len(u)+1:], true
				break
			}
		}
		if !found {
			i := strings.LastIndexByte(raw, ':')
			p.urn, rest = raw[:i], raw[i+1:]
		}
	}
	if strings.ContainsRune(rest, ':') {
		return p, fmt.Errorf("invalid attribute path %q", raw)
	}
	name, sub, _ := strings.Cut(rest, ".")
	if name == "" || strings.ContainsRune(sub, '.') {
		return p, fmt.Errorf("invalid attribute path %q", raw)
	}
	if strings.Contains(rest, ".") && sub == "" {
		return p, fmt.Errorf("invalid attribute path %q", raw)
	}
	p.name, p.sub = name, sub
	return p, nil
}

// evalCtx tells the evaluator about attribute types.
type evalCtx struct {
	rt *resourceType
}

// match reports whether doc (a resource view with id, externalId and meta)
// passes e.
func (c evalCtx) match(e expr, doc map[string]any) bool {
	switch e := e.(type) {
	case logicalExpr:
		if e.or {
			return c.match(e.left, doc) || c.match(e.right, doc)
		}
		return c.match(e.left, doc) && c.match(e.right, doc)
	case notExpr:
		return !c.match(e.inner, doc)
	case compareExpr:
		def := c.rt.lookupPath(e.path)
		vals := collect(doc, e.path, def, c.rt)
		return c.compareAny(vals, e, leafDef(def, e.path.sub))
	case valuePathExpr:
		def := c.rt.lookupPath(e.path)
		raw := lookupAttr(doc, e.path, def, c.rt)
		elems := asList(raw)
		for _, el := range elems {
			m, ok := el.(map[string]any)
			if !ok {
				continue
			}
			if !c.matchElem(e.filter, m, def) {
				continue
			}
			if e.sub == nil {
				return true
			}
			var subDef *attrDef
			if def != nil {
				subDef = def.sub(e.sub.path.name)
			}
			v, _ := getFold(m, e.sub.path.name)
			if c.compareAny(asList(v), *e.sub, subDef) {
				return true
			}
		}
		return false
	}
	return false
}

// matchElem evaluates a value filter against one element of a multi-valued
// complex attribute; paths in it name sub-attributes.
func (c evalCtx) matchElem(e expr, elem map[string]any, parent *attrDef) bool {
	switch e := e.(type) {
	case logicalExpr:
		if e.or {
			return c.matchElem(e.left, elem, parent) || c.matchElem(e.right, elem, parent)
		}
		return c.matchElem(e.left, elem, parent) && c.matchElem(e.right, elem, parent)
	case notExpr:
		return !c.matchElem(e.inner, elem, parent)
	case compareExpr:
		var def *attrDef
		if parent != nil {
			def = parent.sub(e.path.name)
		}
		v, _ := getFold(elem, e.path.name)
		if e.path.sub != "" {
			m, _ := v.(map[string]any)
			v, _ = getFold(m, e.path.sub)
			def = def.sub(e.path.sub)
		}
		return c.compareAny(asList(v), e, def)
	}
	return false
}

// leafDef is the definition of the values a path compares: the
// sub-attribute's, or for a multi-valued complex attribute its "value".
func leafDef(def *attrDef, sub string) *attrDef {
	switch {
	case def == nil:
		return nil
	case sub != "":
		return def.sub(sub)
	case def.complex():
		return def.sub("value")
	}
	return def
}

// lookupAttr returns the raw value a path's attribute has in doc (without
// the sub-attribute step).
func lookupAttr(doc map[string]any, p attrPath, def *attrDef, rt *resourceType) any {
	if def != nil && def.schemaID != "" && def.schemaID != rt.core.ID {
		ext, _ := doc[def.schemaID].(map[string]any)
		v, _ := getFold(ext, def.name)
		return v
	}
	if def != nil {
		v, _ := getFold(doc, def.name)
		return v
	}
	v, _ := getFold(doc, p.name)
	return v
}

// collect returns the leaf values a path designates in doc: for a
// multi-valued complex attribute without a sub-attribute, the "value"
// sub-attribute of each element.
func collect(doc map[string]any, p attrPath, def *attrDef, rt *resourceType) []any {
	v := lookupAttr(doc, p, def, rt)
	var out []any
	for _, el := range asList(v) {
		m, isMap := el.(map[string]any)
		switch {
		case p.sub != "" && isMap:
			sv, _ := getFold(m, p.sub)
			out = append(out, asList(sv)...)
		case p.sub != "":
			// a sub-attribute of a simple value: nothing
		case isMap:
			if sv, ok := getFold(m, "value"); ok {
				out = append(out, sv)
			} else {
				out = append(out, el)
			}
		default:
			out = append(out, el)
		}
	}
	return out
}

func asList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	default:
		return []any{v}
	}
}

// getFold returns m[k] matching k case-insensitively (exact match first).
func getFold(m map[string]any, k string) (any, bool) {
	if m == nil {
		return nil, false
	}
	if v, ok := m[k]; ok {
		return v, true
	}
	for mk, v := range m {
		if strings.EqualFold(mk, k) {
			return v, true
		}
	}
	return nil, false
}

func (c evalCtx) compareAny(vals []any, e compareExpr, def *attrDef) bool {
	if e.op == "pr" {
		for _, v := range vals {
			if present(v) {
				return true
			}
		}
		return false
	}
	if e.op == "ne" {
		// ne holds when no value equals (including when absent).
		eq := e
		eq.op = "eq"
		return !c.compareAny(vals, eq, def)
	}
	for _, v := range vals {
		if compareOne(v, e.op, e.value, def) {
			return true
		}
	}
	return false
}

func present(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case map[string]any:
		return len(v) > 0
	}
	return true
}

func compareOne(v any, op string, cv compValue, def *attrDef) bool {
	if cv.kind == "null" {
		return op == "eq" && v == nil
	}
	switch v := v.(type) {
	case bool:
		want, ok := cv.b, cv.kind == "bool"
		if !ok && (cv.kind == "string" || cv.kind == "bare") {
			b, err := strconv.ParseBool(cv.str)
			want, ok = b, err == nil
		}
		return ok && op == "eq" && v == want
	case json.Number:
		f, err := v.Float64()
		return err == nil && compareNum(f, op, cv)
	case float64:
		return compareNum(v, op, cv)
	case int64:
		return compareNum(float64(v), op, cv)
	case string:
		want := cv.str
		if def != nil && def.typ == "dateTime" {
			if t1, err1 := parseTime(v); err1 == nil {
				if t2, err2 := parseTime(want); err2 == nil {
					return compareOrdered(t1.Compare(t2), op)
				}
			}
		}
		exact := def != nil && def.caseExact
		return compareString(v, op, want, exact)
	}
	return false
}

func compareNum(f float64, op string, cv compValue) bool {
	want := cv.num
	if cv.kind != "number" {
		n, err := strconv.ParseFloat(cv.str, 64)
		if err != nil {
			return false
		}
		want = n
	}
	switch {
	case f < want:
		return compareOrdered(-1, op)
	case f > want:
		return compareOrdered(1, op)
	}
	return compareOrdered(0, op)
}

func compareOrdered(c int, op string) bool {
	switch op {
	case "eq":
		return c == 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	return false
}

func compareString(v, op, want string, exact bool) bool {
	if !exact {
		v, want = foldLower(v), foldLower(want)
	}
	switch op {
	case "eq":
		return v == want
	case "co":
		return strings.Contains(v, want)
	case "sw":
		return strings.HasPrefix(v, want)
	case "ew":
		return strings.HasSuffix(v, want)
	}
	return compareOrdered(strings.Compare(v, want), op)
}

// foldLower lower-cases s for case-insensitive comparison.
func foldLower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || (c >= 'A' && c <= 'Z') {
			return strings.ToLower(s)
		}
	}
	return s
}

// parseTime parses an RFC 3339 / xsd:dateTime value.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// xsd:dateTime without a zone
	return time.Parse("2006-01-02T15:04:05.999999999", s)
}

// checkFilter rejects comparisons an attribute's type does not define: RFC
// 7644 §3.4.2.2 says gt, ge, lt and le on a boolean or binary attribute
// are a 400 invalidFilter, not an empty result.
func (rt *resourceType) checkFilter(e expr) error {
	var walk func(e expr, parent *attrDef) error
	check := func(c compareExpr, leaf *attrDef) error {
		switch c.op {
		case "gt", "ge", "lt", "le":
			if leaf != nil && (leaf.typ == "boolean" || leaf.typ == "binary") {
				return scimerrors.ScimError{ScimType: scimerrors.ScimTypeInvalidFilter, Status: http.StatusBadRequest,
					Detail: fmt.Sprintf("invalid filter: %s is %s; %q compares only ordered values", c.path, leaf.typ, c.op)}
			}
		}
		return nil
	}
	walk = func(e expr, parent *attrDef) error {
		switch e := e.(type) {
		case logicalExpr:
			if err := walk(e.left, parent); err != nil {
				return err
			}
			return walk(e.right, parent)
		case notExpr:
			return walk(e.inner, parent)
		case compareExpr:
			if parent != nil {
				d := parent.sub(e.path.name)
				if e.path.sub != "" {
					d = d.sub(e.path.sub)
				}
				return check(e, d)
			}
			return check(e, leafDef(rt.lookupPath(e.path), e.path.sub))
		case valuePathExpr:
			def := rt.lookupPath(e.path)
			if def == nil {
				return nil
			}
			if err := walk(e.filter, def); err != nil {
				return err
			}
			if e.sub != nil {
				return check(*e.sub, def.sub(e.sub.path.name))
			}
		}
		return nil
	}
	return walk(e, nil)
}
