package scim

import (
	"encoding/json"
	"net/http"
	"strings"

	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
)

// Schema URNs used on the wire.
const (
	URNUser             = "urn:ietf:params:scim:schemas:core:2.0:User"
	URNGroup            = "urn:ietf:params:scim:schemas:core:2.0:Group"
	URNEnterpriseUser   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	urnListResponse     = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	urnPatchOp          = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	urnSearchRequest    = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	urnError            = "urn:ietf:params:scim:api:messages:2.0:Error"
	urnSPConfig         = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	urnResourceTypeDesc = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	urnSchemaDesc       = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// attrDef describes one attribute of a resource schema, derived from the
// elimity-com/scim schema definitions.
type attrDef struct {
	name      string // canonical name
	schemaID  string // the schema it belongs to
	typ       string // string, boolean, complex, dateTime, reference, ...
	multi     bool
	caseExact bool
	readOnly  bool
	immutable bool
	subs      map[string]*attrDef // lower-cased name → sub-attribute
}

func (d *attrDef) sub(name string) *attrDef {
	if d == nil || d.subs == nil {
		return nil
	}
	return d.subs[strings.ToLower(name)]
}

func (d *attrDef) complex() bool { return d != nil && d.typ == "complex" }

func newAttrDef(a schema.CoreAttribute, schemaID string) *attrDef {
	d := &attrDef{
		name:      a.Name(),
		schemaID:  schemaID,
		typ:       a.AttributeType(),
		multi:     a.MultiValued(),
		caseExact: a.CaseExact(),
		readOnly:  a.Mutability() == "readOnly",
		immutable: a.Mutability() == "immutable",
	}
	if a.HasSubAttributes() {
		d.subs = make(map[string]*attrDef)
		for _, s := range a.SubAttributes() {
			d.subs[strings.ToLower(s.Name())] = newAttrDef(s, schemaID)
		}
	}
	return d
}

// resourceType is one SCIM resource type served (User, Group).
type resourceType struct {
	name     string // "User"
	endpoint string // "Users"
	bucket   string // state bucket suffix: "users"
	core     schema.Schema
	exts     []schema.Schema
	// attrs maps lower-cased core attribute names (plus externalId, id and
	// meta) to their definitions; extAttrs the same per extension URN.
	attrs    map[string]*attrDef
	extAttrs map[string]map[string]*attrDef
	urns     []string
	ixs      []ixSpec // attributes kept in the store's indexes (index.go)
}

func newResourceType(name, endpoint, bucket string, core schema.Schema, exts ...schema.Schema) *resourceType {
	rt := &resourceType{name: name, endpoint: endpoint, bucket: bucket, core: core, exts: exts,
		attrs: map[string]*attrDef{}, extAttrs: map[string]map[string]*attrDef{}}
	for _, a := range core.Attributes {
		rt.attrs[strings.ToLower(a.Name())] = newAttrDef(a, core.ID)
	}
	for _, a := range schema.CommonAttributes() {
		if a.Name() == "schemas" {
			continue
		}
		rt.attrs[strings.ToLower(a.Name())] = newAttrDef(a, core.ID)
	}
	rt.urns = []string{core.ID}
	for _, e := range exts {
		m := map[string]*attrDef{}
		for _, a := range e.Attributes {
			m[strings.ToLower(a.Name())] = newAttrDef(a, e.ID)
		}
		rt.extAttrs[e.ID] = m
		rt.urns = append(rt.urns, e.ID)
	}
	return rt
}

func userType() *resourceType {
	rt := newResourceType("User", "Users", "users", schema.CoreUserSchema(), schema.ExtensionEnterpriseUser())
	rt.ixs = userSpecs(rt)
	return rt
}

func groupType() *resourceType {
	rt := newResourceType("Group", "Groups", "groups", schema.CoreGroupSchema())
	rt.ixs = groupSpecs(rt)
	return rt
}

// extURN returns the canonical extension URN equal (case-insensitively) to
// s, or "".
func (rt *resourceType) extURN(s string) string {
	for _, e := range rt.exts {
		if strings.EqualFold(e.ID, s) {
			return e.ID
		}
	}
	return ""
}

// lookupPath resolves a path's attribute (not its sub-attribute): by URN
// when given, else in the core schema, else in the extensions (Entra sends
// bare "manager"). nil when unknown.
func (rt *resourceType) lookupPath(p attrPath) *attrDef {
	name := strings.ToLower(p.name)
	if p.urn != "" {
		if strings.EqualFold(p.urn, rt.core.ID) {
			return rt.attrs[name]
		}
		if u := rt.extURN(p.urn); u != "" {
			return rt.extAttrs[u][name]
		}
		return nil
	}
	if d, ok := rt.attrs[name]; ok {
		return d
	}
	for _, e := range rt.exts {
		if d, ok := rt.extAttrs[e.ID][name]; ok {
			return d
		}
	}
	return nil
}

// errInvalid builds a 400 SCIM error of the given type.
func errInvalid(t scimerrors.ScimType, detail string) scimerrors.ScimError {
	return scimerrors.ScimError{ScimType: t, Detail: detail, Status: http.StatusBadRequest}
}

// validate checks a resource body (POST, PUT, or the result of a PATCH)
// against the schemas and returns its canonical attributes: known
// attributes only, canonical names, string booleans converted, read-only
// attributes and the password dropped, extension attributes under their
// URN.
func (rt *resourceType) validate(body map[string]any) (map[string]any, error) {
	in := make(map[string]any, len(body))
	for k, v := range body {
		in[k] = v
	}
	rt.normalizeShapes(in, rt.attrs)
	attrs, serr := rt.core.Validate(in)
	if serr != nil {
		return nil, *serr
	}
	// externalId is a common attribute the core schema does not list.
	if v, ok := getFold(in, "externalId"); ok && v != nil {
		s, isStr := v.(string)
		if !isStr {
			return nil, errInvalid(scimerrors.ScimTypeInvalidValue, "externalId must be a string")
		}
		if s != "" {
			attrs["externalId"] = s
		}
	}
	delete(attrs, "password")
	for _, e := range rt.exts {
		raw, _ := getFold(body, e.ID)
		m, isMap := raw.(map[string]any)
		if raw != nil && !isMap {
			return nil, errInvalid(scimerrors.ScimTypeInvalidValue, "extension "+e.ID+" must be an object")
		}
		cp := make(map[string]any, len(m))
		for k, v := range m {
			cp[k] = v
		}
		// Extension attributes sent at the top level (older Entra
		// examples send "department" beside userName) count when the
		// extension object does not carry them.
		for k, v := range body {
			d := rt.extAttrs[e.ID][strings.ToLower(k)]
			if d == nil || v == nil || rt.attrs[strings.ToLower(k)] != nil {
				continue
			}
			if _, has := getFold(cp, d.name); !has {
				cp[d.name] = v
			}
		}
		if len(cp) == 0 {
			continue
		}
		rt.normalizeShapes(cp, rt.extAttrs[e.ID])
		ext, serr := e.Validate(cp)
		if serr != nil {
			return nil, *serr
		}
		if len(ext) > 0 {
			attrs[e.ID] = ext
		}
	}
	dropEmpty(attrs)
	return attrs, nil
}

// normalizeShapes fixes the shapes identity providers get wrong before
// validation: a single object for a multi-valued attribute is wrapped in a
// list, a one-element list for a single-valued complex attribute is
// unwrapped, and plain strings in a multi-valued complex attribute with a
// "value" sub-attribute become {"value": s}.
func (rt *resourceType) normalizeShapes(m map[string]any, defs map[string]*attrDef) {
	for k, v := range m {
		d := defs[strings.ToLower(k)]
		if d == nil || v == nil {
			continue
		}
		m[k] = normalizeValue(d, v)
	}
}

func normalizeValue(d *attrDef, v any) any {
	switch {
	case d.multi:
		list := asList(v)
		if d.complex() && d.sub("value") != nil {
			out := make([]any, 0, len(list))
			for _, el := range list {
				if s, ok := el.(string); ok {
					el = map[string]any{"value": s}
				}
				out = append(out, aliasDisplay(d, el))
			}
			return out
		}
		return list
	case d.complex():
		if l, ok := v.([]any); ok && len(l) == 1 {
			v = l[0]
		}
		if s, ok := v.(string); ok && d.sub("value") != nil {
			return map[string]any{"value": s}
		}
		return aliasDisplay(d, v)
	}
	return v
}

// aliasDisplay renames "displayName" to "display" in a complex value whose
// attribute has only the latter (Microsoft's test collection adds group
// members as {"displayName": ..., "value": ...}).
func aliasDisplay(d *attrDef, v any) any {
	m, ok := v.(map[string]any)
	if !ok || d.sub("display") == nil || d.sub("displayName") != nil {
		return v
	}
	dn, has := getFold(m, "displayName")
	if !has {
		return v
	}
	if _, exists := getFold(m, "display"); exists {
		return v
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		if !strings.EqualFold(k, "displayName") {
			out[k] = x
		}
	}
	out["display"] = dn
	return out
}

// dropEmpty removes empty complex values and empty lists, so that "absent"
// has one representation.
func dropEmpty(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			dropEmpty(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case []any:
			out := x[:0]
			for _, el := range x {
				if em, ok := el.(map[string]any); ok {
					dropEmpty(em)
					if len(em) == 0 {
						continue
					}
				}
				if el == nil {
					continue
				}
				out = append(out, el)
			}
			if len(out) == 0 {
				delete(m, k)
			} else {
				m[k] = out
			}
		}
	}
}

// schemaDoc renders a schema for /Schemas with its meta.
func schemaDoc(s schema.Schema, base string) map[string]any {
	m := s.ToMap()
	m["meta"] = map[string]any{"resourceType": "Schema", "location": base + "/Schemas/" + s.ID}
	return m
}

func (rt *resourceType) descriptor(base string) map[string]any {
	exts := make([]map[string]any, 0, len(rt.exts))
	for _, e := range rt.exts {
		exts = append(exts, map[string]any{"schema": e.ID, "required": false})
	}
	return map[string]any{
		"schemas":          []string{urnResourceTypeDesc},
		"id":               rt.name,
		"name":             rt.name,
		"description":      rt.core.Description.Value(),
		"endpoint":         "/" + rt.endpoint,
		"schema":           rt.core.ID,
		"schemaExtensions": exts,
		"meta":             map[string]any{"resourceType": "ResourceType", "location": base + "/ResourceTypes/" + rt.name},
	}
}

// spConfig is the ServiceProviderConfig document. It says what this server
// really does: patch, filter and ETags yes; bulk, sort, changePassword no.
func spConfig(base string, maxResults int) map[string]any {
	return map[string]any{
		"schemas":          []string{urnSPConfig},
		"documentationUri": "https://github.com/dirsync/dirsync/blob/main/scim/README.md",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": maxResults},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []map[string]any{{
			"type":             "oauthbearertoken",
			"name":             "OAuth Bearer Token",
			"description":      "A bearer token configured for this SCIM source (Authorization: Bearer <token>).",
			"specUri":          "https://www.rfc-editor.org/rfc/rfc6750",
			"documentationUri": "https://github.com/dirsync/dirsync/blob/main/scim/README.md",
			"primary":          true,
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": base + "/ServiceProviderConfig"},
	}
}

// jsonClone deep-copies a JSON-shaped value.
func jsonClone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = jsonClone(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = jsonClone(e)
		}
		return l
	}
	return v
}

// jsonEqual compares two JSON-shaped values by their encoding.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

// metaAttr describes one attribute of a discovery schema (RFC 7643 §7).
func metaAttr(name, typ string, multi, required bool, subs ...map[string]any) map[string]any {
	a := map[string]any{"name": name, "type": typ, "multiValued": multi, "required": required,
		"caseExact": false, "mutability": "readOnly", "returned": "default", "uniqueness": "none",
		"description": name}
	if typ == "reference" {
		a["referenceTypes"] = []string{"uri"}
	}
	if len(subs) > 0 {
		a["subAttributes"] = subs
	}
	return a
}

// metaSchemaDocs are the schemas of the ServiceProviderConfig, ResourceType
// and Schema resources (RFC 7643 §5, §6, §7), listed by /Schemas with the
// resource schemas.
func metaSchemaDocs(base string) []map[string]any {
	supported := func(name string, extra ...map[string]any) map[string]any {
		return metaAttr(name, "complex", false, true, append([]map[string]any{metaAttr("supported", "boolean", false, true)}, extra...)...)
	}
	doc := func(id, name, desc string, attrs ...map[string]any) map[string]any {
		return map[string]any{
			"schemas": []string{urnSchemaDesc}, "id": id, "name": name, "description": desc, "attributes": attrs,
			"meta": map[string]any{"resourceType": "Schema", "location": base + "/Schemas/" + id},
		}
	}
	attrSubs := []map[string]any{
		metaAttr("name", "string", false, true), metaAttr("type", "string", false, true),
		metaAttr("multiValued", "boolean", false, true), metaAttr("description", "string", false, false),
		metaAttr("required", "boolean", false, false), metaAttr("canonicalValues", "string", true, false),
		metaAttr("caseExact", "boolean", false, false), metaAttr("mutability", "string", false, false),
		metaAttr("returned", "string", false, false), metaAttr("uniqueness", "string", false, false),
		metaAttr("referenceTypes", "string", true, false),
	}
	return []map[string]any{
		doc(urnSPConfig, "Service Provider Configuration", "Schema for representing the service provider's configuration",
			metaAttr("documentationUri", "reference", false, false),
			supported("patch"),
			supported("bulk", metaAttr("maxOperations", "integer", false, true), metaAttr("maxPayloadSize", "integer", false, true)),
			supported("filter", metaAttr("maxResults", "integer", false, true)),
			supported("changePassword"), supported("sort"), supported("etag"),
			metaAttr("authenticationSchemes", "complex", true, true,
				metaAttr("type", "string", false, true), metaAttr("name", "string", false, true),
				metaAttr("description", "string", false, true), metaAttr("specUri", "reference", false, false),
				metaAttr("documentationUri", "reference", false, false))),
		doc(urnResourceTypeDesc, "ResourceType", "Specifies the schema that describes a SCIM resource type",
			metaAttr("id", "string", false, false), metaAttr("name", "string", false, true),
			metaAttr("description", "string", false, false), metaAttr("endpoint", "reference", false, true),
			metaAttr("schema", "reference", false, true),
			metaAttr("schemaExtensions", "complex", true, false,
				metaAttr("schema", "reference", false, true), metaAttr("required", "boolean", false, true))),
		doc(urnSchemaDesc, "Schema", "Specifies the schema attributes of a resource",
			metaAttr("id", "string", false, true), metaAttr("name", "string", false, false),
			metaAttr("description", "string", false, false),
			metaAttr("attributes", "complex", true, true, append(attrSubs,
				metaAttr("subAttributes", "complex", true, false, attrSubs...))...)),
	}
}
