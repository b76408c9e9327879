package scim

import (
	"strings"
)

// projection is the `attributes` / `excludedAttributes` selection of a
// request (RFC 7644 §3.4.2.5). id and schemas are always returned.
type projection struct {
	include []string
	exclude []string
}

func newProjection(attrs, excluded string) projection {
	return projection{include: splitAttrList(attrs), exclude: splitAttrList(excluded)}
}

// splitAttrList splits a comma-separated attribute list. A value filter in
// an item (`emails[type eq "work"]`, which some clients send) is dropped:
// the whole attribute is selected.
func splitAttrList(s string) []string {
	var out []string
	depth := 0
	start := 0
	var b strings.Builder
	flush := func(end int) {
		item := strings.TrimSpace(s[start:end])
		b.Reset()
		d := 0
		for i := 0; i < len(item); i++ {
			switch c := item[i]; {
			case c == '[':
				d++
			case c == ']':
				d--
			case d == 0:
				b.WriteByte(c)
			}
		}
		if t := strings.TrimSpace(b.String()); t != "" {
			out = append(out, t)
		}
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth <= 0 {
				flush(i)
				start = i + 1
			}
		}
	}
	flush(len(s))
	return out
}

// ref is a resolved attribute reference of a projection.
type ref struct {
	ext  string // a whole extension
	def  *attrDef
	sub  string
	name string // meta's and unknown names
}

func (rt *resourceType) resolveRef(s string) (ref, bool) {
	if u := rt.extURN(s); u != "" {
		return ref{ext: u}, true
	}
	p, err := splitPath(s, rt.urns)
	if err != nil {
		return ref{}, false
	}
	d := rt.lookupPath(p)
	if d == nil {
		return ref{}, false
	}
	r := ref{def: d}
	if p.sub != "" {
		sd := d.sub(p.sub)
		if sd == nil {
			return ref{}, false
		}
		r.sub = sd.name
	}
	return r, true
}

// apply returns doc reduced by the projection; doc is not modified.
func (p projection) apply(rt *resourceType, doc map[string]any) map[string]any {
	if len(p.include) == 0 && len(p.exclude) == 0 {
		return doc
	}
	if len(p.include) > 0 {
		out := map[string]any{"schemas": doc["schemas"], "id": doc["id"]}
		for _, s := range p.include {
			r, ok := rt.resolveRef(s)
			if !ok {
				continue
			}
			if r.ext != "" {
				if v, ok := doc[r.ext]; ok {
					out[r.ext] = v
				}
				continue
			}
			src, dst := doc, out
			if r.def.schemaID != rt.core.ID {
				ext, _ := doc[r.def.schemaID].(map[string]any)
				if ext == nil {
					continue
				}
				dm, _ := out[r.def.schemaID].(map[string]any)
				if dm == nil {
					dm = map[string]any{}
					out[r.def.schemaID] = dm
				}
				src, dst = ext, dm
			}
			v, ok := src[r.def.name]
			if !ok {
				continue
			}
			if r.sub == "" {
				dst[r.def.name] = v
				continue
			}
			dst[r.def.name] = mergeSub(dst[r.def.name], v, r.sub)
		}
		return out
	}
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		out[k] = v
	}
	for _, s := range p.exclude {
		r, ok := rt.resolveRef(s)
		if !ok {
			continue
		}
		if r.ext != "" {
			delete(out, r.ext)
			continue
		}
		if r.def.name == "id" {
			continue
		}
		dst := out
		if r.def.schemaID != rt.core.ID {
			ext, _ := out[r.def.schemaID].(map[string]any)
			if ext == nil {
				continue
			}
			cp := make(map[string]any, len(ext))
			for k, v := range ext {
				cp[k] = v
			}
			out[r.def.schemaID] = cp
			dst = cp
		}
		if r.sub == "" {
			delete(dst, r.def.name)
			continue
		}
		v, ok := dst[r.def.name]
		if !ok {
			continue
		}
		cv := jsonClone(v)
		for _, el := range asList(cv) {
			if m, ok := el.(map[string]any); ok {
				delete(m, r.sub)
			}
		}
		dst[r.def.name] = cv
	}
	return out
}

// mergeSub adds sub-attribute sub of v (a complex value or a list of them)
// to the partial value already selected (prev).
func mergeSub(prev, v any, sub string) any {
	switch x := v.(type) {
	case map[string]any:
		m, _ := prev.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		if sv, ok := x[sub]; ok {
			m[sub] = sv
		}
		return m
	case []any:
		pl, _ := prev.([]any)
		out := make([]any, len(x))
		for i, el := range x {
			m := map[string]any{}
			if i < len(pl) {
				if pm, ok := pl[i].(map[string]any); ok {
					m = pm
				}
			}
			if em, ok := el.(map[string]any); ok {
				if sv, ok := em[sub]; ok {
					m[sub] = sv
				}
			}
			out[i] = m
		}
		return out
	}
	return prev
}
