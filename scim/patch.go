package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
)

// This file applies SCIM PATCH operations (RFC 7644 §3.5.2) to a stored
// resource, including the documented Entra ID and Okta forms: capitalised
// ops, string booleans, path-less ops whose value keys are paths (dotted or
// URN-prefixed), emails[type eq "work"].value creating the element when
// missing, and "remove members" with a value list removing only those
// members.

// maxPatchOps bounds the number of operations in one request.
const maxPatchOps = 1000

// patchOp is one decoded PATCH operation.
type patchOp struct {
	Op    string
	Path  string
	Value any
}

// decodePatch parses and checks a PATCH request body.
func decodePatch(body []byte) ([]patchOp, error) {
	var req map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&req); err != nil {
		return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "the PATCH body is not a JSON object")
	}
	var schemas []string
	var rawOps []json.RawMessage
	for k, v := range req {
		switch strings.ToLower(k) {
		case "schemas":
			if err := json.Unmarshal(v, &schemas); err != nil {
				return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "schemas must be a list of strings")
			}
		case "operations":
			if err := json.Unmarshal(v, &rawOps); err != nil {
				return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, "Operations must be a list")
			}
		}
	}
	okSchema := false
	for _, s := range schemas {
		okSchema = okSchema || strings.EqualFold(s, urnPatchOp)
	}
	if !okSchema {
		return nil, errInvalid(scimerrors.ScimTypeInvalidValue, "schemas must contain "+urnPatchOp)
	}
	if len(rawOps) == 0 {
		return nil, errInvalid(scimerrors.ScimTypeInvalidValue, "Operations must contain at least one operation")
	}
	if len(rawOps) > maxPatchOps {
		return nil, errInvalid(scimerrors.ScimTypeTooMany, fmt.Sprintf("at most %d operations per request", maxPatchOps))
	}
	ops := make([]patchOp, 0, len(rawOps))
	for i, raw := range rawOps {
		var m map[string]any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&m); err != nil || m == nil {
			return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, fmt.Sprintf("operation %d is not an object", i))
		}
		var op patchOp
		for k, v := range m {
			switch strings.ToLower(k) {
			case "op":
				s, _ := v.(string)
				op.Op = strings.ToLower(strings.TrimSpace(s))
			case "path":
				s, ok := v.(string)
				if !ok && v != nil {
					return nil, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("operation %d: path must be a string", i))
				}
				op.Path = strings.TrimSpace(s)
			case "value":
				op.Value = v
			}
		}
		switch op.Op {
		case "add", "replace", "remove":
		default:
			return nil, errInvalid(scimerrors.ScimTypeInvalidSyntax, fmt.Sprintf("operation %d: op must be add, replace or remove", i))
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// patchPath is a parsed PATCH path.
type patchPath struct {
	extRoot string   // the path is an extension URN itself
	def     *attrDef // the attribute
	filter  expr     // value selection filter, or nil
	sub     string   // canonical sub-attribute name, or ""
	subDef  *attrDef
	unknown bool // names an attribute of an extension we do not keep: ignore
}

// parsePatchPath parses and resolves a PATCH path against rt.
func (rt *resourceType) parsePatchPath(path string) (patchPath, error) {
	if u := rt.extURN(path); u != "" {
		return patchPath{extRoot: u}, nil
	}
	p := &filterParser{s: path, urns: rt.urns}
	raw := p.scanPath()
	ap, err := splitPath(raw, rt.urns)
	if err != nil || raw == "" {
		return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("invalid path %q", path))
	}
	var pp patchPath
	if p.pos < len(p.s) && p.s[p.pos] == '[' {
		if ap.sub != "" {
			return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("invalid path %q", path))
		}
		p.pos++
		f, err := p.parseOr()
		if err != nil {
			return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("invalid filter in path %q: %v", path, err))
		}
		p.skipWS()
		if p.pos >= len(p.s) || p.s[p.pos] != ']' {
			return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("missing ']' in path %q", path))
		}
		p.pos++
		pp.filter = f
		if p.pos < len(p.s) && p.s[p.pos] == '.' {
			p.pos++
			ap.sub = p.scanPath()
			if ap.sub == "" || strings.ContainsAny(ap.sub, ".:") {
				return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("invalid path %q", path))
			}
		}
	}
	if p.pos != len(p.s) {
		return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("invalid path %q", path))
	}
	pp.def = rt.lookupPath(ap)
	if pp.def == nil {
		if ap.urn != "" && !strings.EqualFold(ap.urn, rt.core.ID) && rt.extURN(ap.urn) == "" {
			// An extension this server does not keep (custom IdP
			// attributes): accepted and ignored, like in POST bodies.
			return patchPath{unknown: true}, nil
		}
		return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("unknown attribute in path %q", path))
	}
	if ap.sub != "" {
		pp.subDef = pp.def.sub(ap.sub)
		if pp.subDef == nil {
			return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("unknown sub-attribute in path %q", path))
		}
		pp.sub = pp.subDef.name
	}
	if pp.filter != nil && !(pp.def.multi && pp.def.complex()) {
		return patchPath{}, errInvalid(scimerrors.ScimTypeInvalidPath, fmt.Sprintf("a value filter needs a multi-valued complex attribute: %q", path))
	}
	return pp, nil
}

// applyPatch applies ops in order to doc (canonical attributes, modified in
// place). The caller validates the result and discards it on error.
func (rt *resourceType) applyPatch(doc map[string]any, ops []patchOp) error {
	for i, op := range ops {
		if err := rt.applyOp(doc, op); err != nil {
			if se, ok := err.(scimerrors.ScimError); ok {
				se.Detail = fmt.Sprintf("operation %d (%s %s): %s", i, op.Op, op.Path, se.Detail)
				return se
			}
			return err
		}
	}
	return nil
}

func (rt *resourceType) applyOp(doc map[string]any, op patchOp) error {
	if op.Path == "" {
		if op.Op == "remove" {
			return errInvalid(scimerrors.ScimTypeNoTarget, "remove needs a path")
		}
		m, ok := op.Value.(map[string]any)
		if !ok {
			return errInvalid(scimerrors.ScimTypeInvalidValue, "an operation without a path needs an object value")
		}
		return rt.applyMap(doc, op.Op, m)
	}
	pp, err := rt.parsePatchPath(op.Path)
	if err != nil {
		return err
	}
	if pp.def != nil && pp.def.readOnly {
		return scimerrors.ScimError{ScimType: scimerrors.ScimTypeMutability, Status: 400,
			Detail: fmt.Sprintf("%s is read-only", pp.def.name)}
	}
	return rt.applyPath(doc, op.Op, pp, op.Value)
}

// applyMap applies a path-less add/replace: each key is a path (plain,
// dotted, URN-prefixed or an extension URN with an object value).
func (rt *resourceType) applyMap(doc map[string]any, op string, m map[string]any) error {
	for k, v := range m {
		pp, err := rt.parsePatchPath(k)
		if err != nil || pp.unknown {
			// Unknown keys are ignored, as in POST bodies.
			continue
		}
		if pp.def != nil && (pp.def.readOnly || (pp.subDef != nil && pp.subDef.readOnly)) {
			continue // e.g. the "id" Okta sends along
		}
		if err := rt.applyPath(doc, op, pp, v); err != nil {
			return err
		}
	}
	return nil
}

// container returns the map an attribute lives in (the document or its
// extension object), creating the extension object when create is set.
func container(doc map[string]any, d *attrDef, coreID string, create bool) map[string]any {
	if d.schemaID == coreID || d.schemaID == "" {
		return doc
	}
	ext, ok := doc[d.schemaID].(map[string]any)
	if !ok {
		if !create {
			return nil
		}
		ext = map[string]any{}
		doc[d.schemaID] = ext
	}
	return ext
}

func (rt *resourceType) applyPath(doc map[string]any, op string, pp patchPath, value any) error {
	if pp.unknown {
		return nil
	}
	if pp.extRoot != "" {
		if op == "remove" {
			delete(doc, pp.extRoot)
			return nil
		}
		m, ok := value.(map[string]any)
		if !ok {
			return errInvalid(scimerrors.ScimTypeInvalidValue, "an extension path needs an object value")
		}
		for k, v := range m {
			d := rt.extAttrs[pp.extRoot][strings.ToLower(k)]
			if d == nil || d.readOnly {
				continue
			}
			if err := rt.applyPath(doc, op, patchPath{def: d}, v); err != nil {
				return err
			}
		}
		return nil
	}
	d := pp.def
	if value == nil && op != "remove" {
		// "replace with null" clears the target (Entra sends nulls).
		op = "remove"
	}
	c := container(doc, d, rt.core.ID, op != "remove")
	if c == nil {
		return nil // removing from an absent extension
	}
	defer func() {
		if d.schemaID != rt.core.ID && len(c) == 0 {
			delete(doc, d.schemaID)
		}
	}()
	cur := c[d.name]
	switch {
	case pp.filter != nil:
		return rt.applyFiltered(c, op, pp, value)
	case pp.sub != "" && d.multi:
		list := asList(cur)
		if op == "remove" {
			for _, el := range list {
				if m, ok := el.(map[string]any); ok {
					delete(m, pp.sub)
				}
			}
			return nil
		}
		if len(list) == 0 {
			c[d.name] = []any{map[string]any{pp.sub: value}}
			return nil
		}
		for _, el := range list {
			if m, ok := el.(map[string]any); ok {
				m[pp.sub] = value
			}
		}
		if pp.sub == "primary" && value == true {
			// more than one primary: keep the first
			keepFirstPrimary(list)
		}
		return nil
	case pp.sub != "":
		m, _ := cur.(map[string]any)
		if op == "remove" {
			if m != nil {
				delete(m, pp.sub)
				if len(m) == 0 {
					delete(c, d.name)
				}
			}
			return nil
		}
		if m == nil {
			m = map[string]any{}
			c[d.name] = m
		}
		m[pp.sub] = value
		return nil
	case d.multi:
		switch op {
		case "remove":
			if value == nil {
				delete(c, d.name)
				return nil
			}
			// Entra: remove members with a value list removes those only.
			drop := newElemSet(asList(normalizeValue(d, value)), d)
			var keep []any
			for _, el := range asList(cur) {
				if drop.find(el) < 0 {
					keep = append(keep, el)
				}
			}
			setList(c, d.name, keep)
			return nil
		case "replace":
			list := asList(normalizeValue(d, value))
			setList(c, d.name, append([]any(nil), list...))
			keepFirstPrimary(asList(c[d.name]))
			return nil
		default: // add
			set := newElemSet(asList(cur), d)
			for _, nv := range asList(normalizeValue(d, value)) {
				nm, isMap := nv.(map[string]any)
				if i := set.find(nv); i >= 0 {
					if em, ok := set.list[i].(map[string]any); ok && isMap {
						for k, v := range nm {
							em[k] = v
						}
						if isTrue(em["primary"]) {
							solePrimary(set.list, i) // RFC 7644 §3.5.2
						}
					}
					continue
				}
				if isMap && isTrue(nm["primary"]) {
					clearPrimary(set.list)
				}
				set.add(nv)
			}
			setList(c, d.name, set.list)
			return nil
		}
	case d.complex():
		if op == "remove" {
			delete(c, d.name)
			return nil
		}
		nv := normalizeValue(d, value)
		nm, ok := nv.(map[string]any)
		if !ok {
			return errInvalid(scimerrors.ScimTypeInvalidValue, fmt.Sprintf("%s needs an object value", d.name))
		}
		m, _ := cur.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		for k, v := range nm {
			if v == nil {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		c[d.name] = m
		return nil
	default:
		if op == "remove" {
			delete(c, d.name)
			return nil
		}
		if l, ok := value.([]any); ok && len(l) == 1 {
			value = l[0] // a single value sent as a one-element list
		}
		c[d.name] = value
		return nil
	}
}

// applyFiltered handles paths with a value selection filter.
func (rt *resourceType) applyFiltered(c map[string]any, op string, pp patchPath, value any) error {
	d := pp.def
	list := asList(c[d.name])
	ev := evalCtx{rt: rt}
	var matched []int
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && ev.matchElem(pp.filter, m, d) {
			matched = append(matched, i)
		}
	}
	if op == "remove" {
		if pp.sub != "" {
			for _, i := range matched {
				delete(list[i].(map[string]any), pp.sub)
			}
			return nil
		}
		var keep []any
		mi := 0
		for i, el := range list {
			if mi < len(matched) && matched[mi] == i {
				mi++
				continue
			}
			keep = append(keep, el)
		}
		setList(c, d.name, keep)
		return nil
	}
	if len(matched) == 0 {
		// Entra: replace emails[type eq "work"].value on a user without a
		// work email creates it. Build the element from the filter.
		elem, ok := elemFromFilter(pp.filter, d)
		if !ok {
			return errInvalid(scimerrors.ScimTypeNoTarget, "the filter matches no value")
		}
		if pp.sub != "" {
			elem[pp.sub] = value
		} else {
			nm, ok := normalizeValue(&attrDef{typ: "complex", subs: d.subs}, value).(map[string]any)
			if !ok {
				return errInvalid(scimerrors.ScimTypeInvalidValue, "a value filter without a sub-attribute needs an object value")
			}
			for k, v := range nm {
				elem[k] = v
			}
		}
		if isTrue(elem["primary"]) {
			clearPrimary(list)
		}
		c[d.name] = append(list, elem)
		return nil
	}
	primary := -1 // the element made primary, if any
	for _, i := range matched {
		m := list[i].(map[string]any)
		if pp.sub != "" {
			m[pp.sub] = value
		} else {
			nm, ok := normalizeValue(&attrDef{typ: "complex", subs: d.subs}, value).(map[string]any)
			if !ok {
				return errInvalid(scimerrors.ScimTypeInvalidValue, "a value filter without a sub-attribute needs an object value")
			}
			if op == "replace" {
				list[i] = nm
				m = nm
			} else {
				for k, v := range nm {
					m[k] = v
				}
			}
		}
		if primary < 0 && isTrue(m["primary"]) {
			primary = i
		}
	}
	if primary >= 0 {
		// RFC 7644 §3.5.2: making one value primary makes the others not.
		solePrimary(list, primary)
	}
	return nil
}

// elemFromFilter builds a new element from a filter made only of `eq`
// comparisons joined by `and` (type eq "work" → {"type": "work"}).
func elemFromFilter(e expr, parent *attrDef) (map[string]any, bool) {
	out := map[string]any{}
	var walk func(e expr) bool
	walk = func(e expr) bool {
		switch e := e.(type) {
		case logicalExpr:
			return !e.or && walk(e.left) && walk(e.right)
		case compareExpr:
			if e.op != "eq" || e.path.sub != "" {
				return false
			}
			sd := parent.sub(e.path.name)
			if sd == nil {
				return false
			}
			switch e.value.kind {
			case "bool":
				out[sd.name] = e.value.b
			case "null":
				return false
			default:
				out[sd.name] = e.value.str
			}
			return true
		}
		return false
	}
	if !walk(e) {
		return nil, false
	}
	return out, true
}

func setList(c map[string]any, name string, l []any) {
	if len(l) == 0 {
		delete(c, name)
		return
	}
	c[name] = l
}

func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

func clearPrimary(list []any) {
	for _, el := range list {
		if m, ok := el.(map[string]any); ok {
			if _, has := m["primary"]; has {
				m["primary"] = false
			}
		}
	}
}

// solePrimary leaves list[keep] the only element with primary true.
func solePrimary(list []any, keep int) {
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && i != keep && isTrue(m["primary"]) {
			m["primary"] = false
		}
	}
}

// keepFirstPrimary leaves at most one element with primary true.
func keepFirstPrimary(list []any) {
	seen := false
	for _, el := range list {
		if m, ok := el.(map[string]any); ok && isTrue(m["primary"]) {
			if seen {
				m["primary"] = false
			}
			seen = true
		}
	}
}

// sameElem reports whether two values of a multi-valued attribute designate
// the same value: same "value" (case-insensitively unless case-exact) and,
// when both have one, the same "type".
func sameElem(a, b any, d *attrDef) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		if aok || bok {
			return false
		}
		return jsonEqual(a, b)
	}
	av, ahas := getFold(am, "value")
	bv, bhas := getFold(bm, "value")
	if !ahas || !bhas {
		return jsonEqual(a, b)
	}
	as, _ := av.(string)
	bs, _ := bv.(string)
	exact := d.sub("value") != nil && d.sub("value").caseExact
	if exact && as != bs || !exact && foldLower(as) != foldLower(bs) {
		return false
	}
	at, ahasT := getFold(am, "type")
	bt, bhasT := getFold(bm, "type")
	if ahasT && bhasT && at != nil && bt != nil {
		ats, _ := at.(string)
		bts, _ := bt.(string)
		return strings.EqualFold(ats, bts)
	}
	return true
}

// elemSet finds the values of a multi-valued attribute that sameElem
// equates with a given one, through a map keyed by "value" (folded unless
// case-exact), so adding or removing m members of an n-member group costs
// O(n + m), not O(n·m).
type elemSet struct {
	d     *attrDef
	exact bool
	list  []any
	byVal map[string][]int // value key → positions in list
	other []int            // elements without a value: compared one by one
}

func newElemSet(list []any, d *attrDef) *elemSet {
	s := &elemSet{d: d, exact: d.sub("value") != nil && d.sub("value").caseExact,
		byVal: make(map[string][]int, len(list))}
	for _, el := range list {
		s.add(el)
	}
	return s
}

// key is the value key of el, or false when el has no "value".
func (s *elemSet) key(el any) (string, bool) {
	m, ok := el.(map[string]any)
	if !ok {
		return "", false
	}
	v, has := getFold(m, "value")
	if !has {
		return "", false
	}
	str, _ := v.(string)
	if !s.exact {
		str = foldLower(str)
	}
	return str, true
}

func (s *elemSet) add(el any) {
	s.list = append(s.list, el)
	if k, ok := s.key(el); ok {
		s.byVal[k] = append(s.byVal[k], len(s.list)-1)
	} else {
		s.other = append(s.other, len(s.list)-1)
	}
}

// find returns the position of an element sameElem equates with v, or -1.
func (s *elemSet) find(v any) int {
	cands := s.other
	if k, ok := s.key(v); ok {
		cands = s.byVal[k]
	}
	for _, i := range cands {
		if sameElem(s.list[i], v, s.d) {
			return i
		}
	}
	return -1
}
