package filesrc

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// file is a parsed file: records of fields by normalised name.
type file struct {
	path   string
	users  []record
	groups []record
	// cols maps every normalised field name seen in users to its spelling
	// in the file.
	cols map[string]string
	// csv is true for a CSV file (every column is in every record).
	csv bool
	// groupsSection is true when the file had a groups list (JSON).
	groupsSection bool
}

// record is one user or group. Values are string, []string,
// map[string]string, or kind (a value of a type no field can take).
type record struct {
	// path, line, what and i say where it is: where() is "hr.csv:5" or
	// "hr.json:12: users[3]" (made only for an error message).
	path string
	line int32
	what string // "users" or "groups" (JSON)
	i    int32
	vals map[string]any // JSON
	// row and idx hold a CSV record: its cells, and the column of each
	// normalised name (shared by every row).
	row []string
	idx map[string]int
	// attrName is the spelling of the "attributes" field (JSON only).
	attrName string
}

// where names the record in an error message.
func (r record) where() string {
	if r.what == "" {
		return r.path + ":" + strconv.Itoa(int(r.line))
	}
	return r.path + ":" + strconv.Itoa(int(r.line)) + ": " + r.what + "[" + strconv.Itoa(int(r.i)) + "]"
}

// get returns the value of a field (by normalised name), nil if absent.
func (r record) get(n string) any {
	if r.idx != nil {
		if i, ok := r.idx[n]; ok && i < len(r.row) {
			return r.row[i]
		}
		return nil
	}
	if v, ok := r.vals[n]; ok {
		return v
	}
	return nil
}

// kind marks a JSON value of an unusable type (object, nested array).
type kind string

// norm is the canonical spelling of a column or field name: lower case,
// spaces, dashes and dots as underscores ("Employee ID" → "employee_id").
func norm(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.':
			return '_'
		}
		return r
	}, s)
}

func parseCSV(path string, data []byte, comma rune) (*file, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = comma
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		return nil, csvErr(path, err)
	}
	f := &file{path: path, cols: map[string]string{}, csv: true}
	cols := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(h)
		n := norm(h)
		if n == "" {
			continue // an unnamed column (a trailing comma in the export)
		}
		if prev, ok := f.cols[n]; ok {
			return nil, fmt.Errorf("%s:1: header: column %q repeats %q", path, h, prev)
		}
		f.cols[n] = h
		cols[n] = i
	}
	var errs errList
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				line, _ := r.FieldPos(0)
				errs.add(fmt.Sprintf("%s:%d", path, line), "", "has %d columns, the header has %d", len(row), len(header))
				continue
			}
			return nil, csvErr(path, err)
		}
		line, _ := r.FieldPos(0)
		empty := true
		for i, v := range row {
			row[i] = strings.TrimSpace(v)
			if row[i] != "" {
				empty = false
			}
		}
		if empty {
			continue // a row of empty cells (common at the end of spreadsheet exports)
		}
		rec := record{path: path, line: int32(line), row: row, idx: cols}
		f.users = append(f.users, rec)
	}
	return f, errs.err()
}

func csvErr(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %w (at line %d, column %d)", path, pe.StartLine, pe.Err, pe.Line, pe.Column)
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: file is empty", path)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// parseJSON reads {"users":[...],"groups":[...]} or a bare array of users,
// keeping the line each record starts on.
func parseJSON(path string, data []byte) (*file, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	f := &file{path: path, cols: map[string]string{}}
	jerr := func(err error) error {
		// The streaming decoder's offsets are not absolute: locate the
		// error by validating the whole file in one go.
		var v any
		var se *json.SyntaxError
		if uerr := json.Unmarshal(data, &v); errors.As(uerr, &se) {
			l, c := lineCol(data, int(se.Offset)-1)
			return fmt.Errorf("%s:%d:%d: invalid JSON: %s", path, l, c, se)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: invalid JSON: unexpected end of file", path)
		}
		return fmt.Errorf("%s: invalid JSON: %w", path, err)
	}
	var errs errList
	lines := &lineCounter{data: data}
	tok, err := dec.Token()
	if err != nil {
		return nil, jerr(err)
	}
	switch tok {
	case json.Delim('['):
		if err := readArray(dec, lines, path, "users", &f.users, f.cols, &errs); err != nil {
			return nil, jerr(err)
		}
	case json.Delim('{'):
		sawUsers := false
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, jerr(err)
			}
			key, _ := kt.(string)
			switch key {
			case "users", "groups":
				l, c := lines.at(skipSpace(data, int(dec.InputOffset())))
				vt, err := dec.Token()
				if err != nil {
					return nil, jerr(err)
				}
				if vt != json.Delim('[') {
					return nil, fmt.Errorf("%s:%d:%d: %s: must be an array", path, l, c, key)
				}
				dst, cols := &f.users, f.cols
				if key == "groups" {
					dst, cols, f.groupsSection = &f.groups, nil, true
				} else {
					sawUsers = true
				}
				if err := readArray(dec, lines, path, key, dst, cols, &errs); err != nil {
					return nil, jerr(err)
				}
			default:
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, jerr(err)
				}
			}
		}
		if _, err := dec.Token(); err != nil { // the closing brace
			return nil, jerr(err)
		}
		if !sawUsers {
			return nil, fmt.Errorf("%s: no \"users\" array (want {\"users\":[...],\"groups\":[...]} or an array of users)", path)
		}
	default:
		l, c := lineCol(data, 0)
		return nil, fmt.Errorf("%s:%d:%d: must be an object with \"users\" or an array of users", path, l, c)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, jerr(err)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// readArray reads the elements of an array whose '[' was just read.
//
// cols, when not nil, gets the first spelling of every field name seen.
func readArray(dec *json.Decoder, lines *lineCounter, path, what string, out *[]record, cols map[string]string, errs *errList) error {
	seen := map[string]string{} // normalised name → spelling, per record
	for i := 0; dec.More(); i++ {
		off := skipSpace(lines.data, int(dec.InputOffset()))
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		l, _ := lines.at(off)
		rec := record{path: path, line: int32(l), what: what, i: int32(i)}
		obj, ok := v.(map[string]any)
		if !ok {
			errs.add(rec.where(), "", "must be an object")
			continue
		}
		// The decoded object becomes the record's values, renamed in
		// place: no second map per record.
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		clear(seen)
		for _, k := range keys {
			n := norm(k)
			val := obj[k]
			if n != k {
				delete(obj, k)
			}
			if prev, ok := seen[n]; ok {
				errs.add(rec.where(), k, "repeats field %q", prev)
				continue
			}
			seen[n] = k
			if cols != nil {
				if _, ok := cols[n]; !ok {
					cols[n] = k
				}
			}
			if n == "attributes" {
				rec.attrName = k
			}
			if val == nil {
				delete(obj, n) // null is absent
				continue
			}
			obj[n] = jsonValue(val)
		}
		rec.vals = obj
		*out = append(*out, rec)
	}
	_, err := dec.Token() // the closing bracket
	return err
}

// jsonValue turns a decoded JSON value into a record value.
func jsonValue(v any) any {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "true"
		}
		return "false"
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := jsonValue(e).(string)
			if !ok {
				return kind("an array of non-scalar values")
			}
			out = append(out, s)
		}
		return out
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			if e == nil {
				continue
			}
			s, ok := jsonValue(e).(string)
			if !ok {
				return kind("an object with non-scalar values")
			}
			out[k] = s
		}
		return out
	}
	return kind(fmt.Sprintf("%T", v))
}

func skipSpace(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

// lineCounter turns increasing byte offsets into lines, counting each
// newline once: a reader asking for every record's line costs one pass over
// the file, not one pass per record (lineCol for each record made a first
// run from a large export quadratic).
type lineCounter struct {
	data []byte
	off  int // offset counted up to
	line int // 1-based line at off
	bol  int // offset of the first byte of that line
}

// at returns the 1-based line and column of off. Offsets before the last one
// asked for fall back to counting from the start.
func (lc *lineCounter) at(off int) (line, col int) {
	off = min(max(off, 0), len(lc.data))
	if off < lc.off || lc.line == 0 {
		lc.off, lc.line, lc.bol = 0, 1, 0
	}
	for {
		i := bytes.IndexByte(lc.data[lc.off:off], '\n')
		if i < 0 {
			break
		}
		lc.line++
		lc.off += i + 1
		lc.bol = lc.off
	}
	lc.off = off
	return lc.line, off - lc.bol + 1
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (line, col int) {
	off = min(max(off, 0), len(data))
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}
