package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is one configuration error, located by its key path
// ("targets[2].rate_limit").
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) Error() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Problems is every problem found at once.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.Error()
	}
	return strings.Join(s, "\n")
}

// Add appends a problem.
func (ps *Problems) Add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Under reports whether every problem's key is path or below it: the
// errors already name their full key, and callers need not add path.
func (ps Problems) Under(path string) bool {
	for _, p := range ps {
		if p.Path != path && !strings.HasPrefix(p.Path, path+".") && !strings.HasPrefix(p.Path, path+"[") {
			return false
		}
	}
	return len(ps) > 0
}

// NamesKeysUnder reports whether err is (or wraps) Problems whose keys are
// all under path.
func NamesKeysUnder(err error, path string) bool {
	var ps Problems
	return errors.As(err, &ps) && ps.Under(path)
}

// Err returns ps as an error, or nil when empty.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

var envRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar of n, in
// place. Expanding on the parsed tree (not the raw text) means a value with
// YAML syntax in it stays one string. Unset variables without a default are
// reported.
func expandEnv(n *yaml.Node, path string, ps *Problems) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			expandEnv(c, p, ps)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expandEnv(n.Content[i+1], join(path, n.Content[i].Value), ps)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := envRe.FindStringSubmatch(m)
			if v, ok := os.LookupEnv(sub[1]); ok {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			ps.Add(path, "environment variable %s is not set", sub[1])
			return ""
		})
		// Quoted scalars stay strings. A plain one is typed again from its
		// new text, so "db: ${REDIS_DB}" fills an int, while a string field
		// still gets the text as is ("0123" stays "0123"); only a value that
		// would read as null ("", "null", "~") is forced to be a string so
		// that it is not dropped.
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
			n.Tag = n.ShortTag()
			if n.Tag == "!!null" {
				n.Tag = "!!str"
			}
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// DecodeStrict decodes n into out (a pointer to struct) and reports, with
// their key paths under path, every key out does not know and every value of
// the wrong type. allow lists extra keys to accept at the top level of n
// (the common keys a plugin's settings sit beside).
func DecodeStrict(n *yaml.Node, out any, path string, allow ...string) Problems {
	return decodeStrict(n, out, path, nil, allow)
}

// decodeStrict is DecodeStrict where the keys of the struct type common are
// also known at the top level (and checked inside).
func decodeStrict(n *yaml.Node, out any, path string, common reflect.Type, allow []string) Problems {
	var ps Problems
	if n == nil {
		return nil
	}
	unknownKeys(n, reflect.TypeOf(out), path, allow, common, &ps)
	var typeProblems Problems
	checkTypes(n, reflect.TypeOf(out), path, common, &typeProblems)
	ps = append(ps, typeProblems...)
	if err := n.Decode(out); err != nil && len(typeProblems) == 0 {
		// checkTypes located every error it knows of; this is a fallback.
		if te, ok := err.(*yaml.TypeError); ok {
			for _, e := range te.Errors {
				ps.Add(path, "%s", e)
			}
		} else {
			ps.Add(path, "%v", err)
		}
	}
	return ps
}

var (
	targetType   = reflect.TypeOf(Target{})
	sourceType   = reflect.TypeOf(Source{})
	pluginType   = reflect.TypeOf(Plugin{})
	durationType = reflect.TypeOf(Duration(0))
)

// checkTypes reports, at its key path, every value of n that cannot be
// decoded into the matching field of t, and every error a field's own
// UnmarshalYAML returns (bad durations, unreadable secret files). Messages
// name the expected type and never echo the value (it may be a secret).
// Unknown keys are skipped (unknownKeys reports them).
func checkTypes(n *yaml.Node, t reflect.Type, path string, common reflect.Type, ps *Problems) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case targetType:
		// Common keys are ours; the rest belong to the plugin.
		checkTypes(n, pluginType, path, reflect.TypeOf(TargetCommon{}), ps)
		return
	case sourceType:
		checkTypes(n, pluginType, path, nil, ps)
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if t == durationType && n.Kind != yaml.ScalarNode {
			ps.Add(path, "must be a duration (90s, 15m, 30d), not %s", nodeKind(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			ps.Add(path, "%s", cleanYAMLError(err, t))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			ps.Add(path, "must be a mapping (key: value), not %s", nodeKind(n))
			return
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		if common != nil {
			collectFields(common, fields)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if ft, ok := fields[k]; ok && ft != nil {
				checkTypes(n.Content[i+1], ft, join(path, k), nil, ps)
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			ps.Add(path, "must be a list, not %s", nodeKind(n))
			return
		}
		for i, c := range n.Content {
			checkTypes(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), nil, ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			ps.Add(path, "must be a mapping (key: value), not %s", nodeKind(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkTypes(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), nil, ps)
		}
	case reflect.Interface:
	default:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			ps.Add(path, "must be %s, not %s", typeName(t), nodeKind(n))
		}
	}
}

// nodeKind describes a node for an error message without its value.
func nodeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!str":
		return "a string"
	}
	return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	}
	return "a " + t.String()
}

// cleanYAMLError turns an error from a field's UnmarshalYAML into a message
// without yaml's "line N: cannot unmarshal !!x `value`" form.
func cleanYAMLError(err error, t reflect.Type) string {
	if _, ok := err.(*yaml.TypeError); ok {
		switch t {
		case reflect.TypeOf(Secret{}):
			return "must be a string (a literal, ${ENV_VAR} or file:/path)"
		case durationType:
			return "must be a duration (90s, 15m, 30d)"
		}
		return "must be a " + t.Name() + " value"
	}
	return err.Error()
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func unknownKeys(n *yaml.Node, t reflect.Type, path string, allow []string, common reflect.Type, ps *Problems) {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		collectFields(t, fields)
		if common != nil {
			collectFields(common, fields)
		}
		for _, a := range allow {
			fields[a] = nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				ps.Add(join(path, k), "unknown key%s", suggest(k, fields))
				continue
			}
			if ft != nil {
				unknownKeys(n.Content[i+1], ft, join(path, k), nil, nil, ps)
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			unknownKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), nil, nil, ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			unknownKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), nil, nil, ps)
		}
	}
}

func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, out)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
}

func suggest(k string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for f := range fields {
		if d := distance(k, f); d < bestD {
			best, bestD = f, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev = cur
	}
	return prev[len(b)]
}
