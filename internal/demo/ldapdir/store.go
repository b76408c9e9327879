package ldapdir

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Attr is one attribute of an Entry.
type Attr struct {
	Name   string
	Values []string
}

// Entry is a directory entry: its DN and its attributes, in order.
type Entry struct {
	DN    string
	Attrs []Attr
}

// Get returns the values of attribute name (any case), or nil.
func (e Entry) Get(name string) []string {
	for _, a := range e.Attrs {
		if strings.EqualFold(a.Name, name) {
			return a.Values
		}
	}
	return nil
}

// First returns the first value of attribute name, or "".
func (e Entry) First(name string) string {
	if v := e.Get(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// entry is a stored entry. Published entries are never changed: a
// mutation stores a modified copy, so a search can read entries after
// releasing the lock.
type entry struct {
	dn     string
	ndn    string
	parent string // normalised
	seq    uint64 // creation order: the paging cursor
	attrs  []Attr
}

func (e *entry) get(name string) []string {
	for _, a := range e.attrs {
		if strings.EqualFold(a.Name, name) {
			return a.Values
		}
	}
	return nil
}

func (e *entry) clone() *entry {
	c := *e
	c.attrs = make([]Attr, len(e.attrs))
	for i, a := range e.attrs {
		c.attrs[i] = Attr{Name: a.Name, Values: slices.Clone(a.Values)}
	}
	return &c
}

// set replaces (or, with no values, removes) an attribute.
func (e *entry) set(name string, vals []string) {
	for i, a := range e.attrs {
		if strings.EqualFold(a.Name, name) {
			if len(vals) == 0 {
				e.attrs = slices.Delete(e.attrs, i, i+1)
			} else {
				e.attrs[i].Values = vals
			}
			return
		}
	}
	if len(vals) > 0 {
		e.attrs = append(e.attrs, Attr{Name: name, Values: vals})
	}
}

func (e *entry) hasClass(oc string) bool {
	for _, v := range e.get("objectClass") {
		if strings.EqualFold(v, oc) {
			return true
		}
	}
	return false
}

func (e *entry) public() Entry {
	c := e.clone()
	return Entry{DN: c.dn, Attrs: c.attrs}
}

// load adds the seed entries, parents first.
func (d *Dir) load(in []Entry) error {
	if len(in) == 0 {
		return fmt.Errorf("ldapdir: no entries to serve")
	}
	type item struct {
		e     Entry
		depth int
	}
	items := make([]item, 0, len(in))
	for _, e := range in {
		dn, err := parseDN(e.DN)
		if err != nil || len(dn.RDNs) == 0 {
			return fmt.Errorf("ldapdir: seed: invalid DN %q", e.DN)
		}
		items = append(items, item{e, len(dn.RDNs)})
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].depth < items[j].depth })
	d.mu.Lock()
	defer d.mu.Unlock()
	d.suffixDN = items[0].e.DN
	d.suffix = mustNormDN(d.suffixDN)
	for _, it := range items {
		if _, err := d.add(it.e, false); err != nil {
			return fmt.Errorf("ldapdir: seed: %w", err)
		}
	}
	d.refreshMemberOf(false)
	return nil
}

// add stores a new entry; d.mu is held. touch stamps it with the current
// time even when the entry brings its own timestamps.
func (d *Dir) add(in Entry, touch bool) (*entry, error) {
	ndn, err := normDN(in.DN)
	if err != nil {
		return nil, err
	}
	if ndn == "" {
		return nil, fmt.Errorf("add: the root DSE cannot be added")
	}
	if _, dup := d.byDN[ndn]; dup {
		return nil, fmt.Errorf("add %q: an entry with that DN exists", in.DN)
	}
	e := &entry{dn: in.DN, ndn: ndn, parent: parentDN(ndn)}
	if ndn != d.suffix {
		if !under(ndn, d.suffix) {
			return nil, fmt.Errorf("add %q: not under the naming context %q", in.DN, d.suffixDN)
		}
		if _, ok := d.byDN[e.parent]; !ok {
			return nil, fmt.Errorf("add %q: the parent entry does not exist", in.DN)
		}
	}
	for _, a := range in.Attrs {
		ai := d.info(a.Name)
		if err := d.checkValues(ai, a.Values); err != nil {
			return nil, fmt.Errorf("add %q: %w", in.DN, err)
		}
		if ai.computed && !strings.EqualFold(a.Name, "entryUUID") && !strings.EqualFold(a.Name, "createTimestamp") &&
			!strings.EqualFold(a.Name, "modifyTimestamp") {
			continue // maintained below
		}
		if len(a.Values) == 0 {
			continue
		}
		if e.get(ai.name) != nil {
			return nil, fmt.Errorf("add %q: attribute %s given twice", in.DN, a.Name)
		}
		e.attrs = append(e.attrs, Attr{Name: ai.name, Values: slices.Clone(a.Values)})
	}
	if len(e.get("objectClass")) == 0 {
		return nil, fmt.Errorf("add %q: no objectClass", in.DN)
	}
	if err := d.checkRDN(e); err != nil {
		return nil, err
	}
	soc := e.get("objectClass")[len(e.get("objectClass"))-1]
	// The first of these the entry has names its structural class.
	for _, c := range []string{"inetOrgPerson", "organizationalPerson", "person", "groupOfNames", "groupOfUniqueNames",
		"posixGroup", "organizationalUnit", "organization", "organizationalRole", "account"} {
		if e.hasClass(c) {
			soc = c
			break
		}
	}
	e.set("structuralObjectClass", []string{soc})
	if e.get("entryUUID") == nil {
		e.set("entryUUID", []string{nameUUID(ndn)})
	}
	now := d.now()
	if touch || e.get("createTimestamp") == nil {
		e.set("createTimestamp", []string{generalizedTime(now)})
	}
	e.set("creatorsName", []string{d.bindDN})
	d.stamp(e, now, touch || e.get("modifyTimestamp") == nil)
	d.seq++
	e.seq = d.seq
	d.entries = append(d.entries, e)
	d.byDN[ndn] = e
	d.children[e.parent]++
	return e, nil
}

// checkValues refuses values a client could not have stored.
func (d *Dir) checkValues(ai attrInfo, vals []string) error {
	if strings.EqualFold(ai.name, "userPassword") {
		return fmt.Errorf("userPassword is not stored by this directory (only the administrator binds)")
	}
	for _, v := range vals {
		if _, ok := normalize(ai.syn, v); !ok {
			return fmt.Errorf("attribute %s: invalid value %q", ai.name, v)
		}
	}
	return nil
}

// checkRDN verifies the entry holds the values its RDN names.
func (d *Dir) checkRDN(e *entry) error {
	n, err := parseDN(e.dn)
	if err != nil {
		return err
	}
	if len(n.RDNs) == 0 {
		return fmt.Errorf("entry %q has no RDN", e.dn)
	}
	for _, ava := range n.RDNs[0].Attributes {
		ai := d.info(ava.Type)
		want, ok := normalize(ai.syn, ava.Value)
		found := false
		for _, v := range e.get(ava.Type) {
			if vn, vok := normalize(ai.syn, v); ok && vok && equal(ai.syn, vn, want) {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("entry %q: attribute %s must hold the RDN value %q", e.dn, ava.Type, ava.Value)
		}
	}
	return nil
}

// stamp records a modification of e (a copy being built) at now: the
// entryCSN always, modifyTimestamp and modifiersName when touch.
func (d *Dir) stamp(e *entry, now time.Time, touch bool) {
	d.csn++
	e.set("entryCSN", []string{now.UTC().Format("20060102150405.000000Z") + "#" + fmt.Sprintf("%06x", d.csn%0x1000000) + "#000#000000"})
	if touch {
		e.set("modifyTimestamp", []string{generalizedTime(now)})
		e.set("modifiersName", []string{d.bindDN})
	}
}

// replace publishes a modified copy of an entry; d.mu is held.
func (d *Dir) replace(old, e *entry) {
	i := sort.Search(len(d.entries), func(i int) bool { return d.entries[i].seq >= old.seq })
	d.entries[i] = e
	d.byDN[e.ndn] = e
}

// refreshMemberOf recomputes every entry's memberOf from the groups'
// member and uniqueMember values (direct membership only, as the
// memberof overlay keeps it); d.mu is held. touch stamps changed entries.
func (d *Dir) refreshMemberOf(touch bool) {
	want := map[string][]string{}
	for _, g := range d.entries {
		for _, attr := range []string{"member", "uniqueMember"} {
			for _, v := range g.get(attr) {
				n, ok := normalize(synNameUID, v)
				if !ok {
					continue
				}
				ndn, _, _ := strings.Cut(n.s, "#")
				if _, exists := d.byDN[ndn]; exists && !slices.Contains(want[ndn], g.dn) {
					want[ndn] = append(want[ndn], g.dn)
				}
			}
		}
	}
	now := d.now()
	for _, e := range slices.Clone(d.entries) {
		if slices.Equal(e.get("memberOf"), want[e.ndn]) {
			continue
		}
		c := e.clone()
		c.set("memberOf", want[e.ndn])
		if touch {
			d.stamp(c, now, true)
		}
		d.replace(e, c)
	}
}

// SetAttr replaces attribute attr of the entry dn with values (none
// removes it), as an LDAP modify/replace by the administrator would:
// modifyTimestamp, modifiersName and entryCSN are updated, and a change of
// a group's members updates the members' memberOf. Attributes the
// directory maintains (entryUUID, memberOf, timestamps ...) are refused.
func (d *Dir) SetAttr(dn, attr string, values []string) error {
	ndn, err := normDN(dn)
	if err != nil {
		return fmt.Errorf("ldapdir: set %s on %q: %w", attr, dn, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.byDN[ndn]
	if !ok {
		return fmt.Errorf("ldapdir: set %s on %q: no such entry", attr, dn)
	}
	if err := d.setLocked(e, attr, values); err != nil {
		return fmt.Errorf("ldapdir: set %s on %q: %w", attr, dn, err)
	}
	return nil
}

func (d *Dir) setLocked(e *entry, attr string, values []string) error {
	ai := d.info(attr)
	if ai.computed {
		return fmt.Errorf("%s is maintained by the directory", ai.name)
	}
	if strings.EqualFold(ai.name, "objectClass") && len(values) == 0 {
		return fmt.Errorf("objectClass cannot be removed")
	}
	if err := d.checkValues(ai, values); err != nil {
		return err
	}
	if slices.Equal(e.get(ai.name), values) {
		return nil
	}
	c := e.clone()
	c.set(ai.name, slices.Clone(values))
	if err := d.checkRDN(c); err != nil {
		return err
	}
	d.stamp(c, d.now(), true)
	d.replace(e, c)
	if ai.syn == synDN || ai.syn == synNameUID {
		d.refreshMemberOf(true)
	}
	return nil
}

// SetDisabled locks (pwdAccountLockedTime: LockedTime) or unlocks the
// person whose uid is uid. Setting the state it already has changes
// nothing.
func (d *Dir) SetDisabled(uid string, disabled bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, err := d.personLocked(uid)
	if err != nil {
		return fmt.Errorf("ldapdir: disable %q: %w", uid, err)
	}
	if (e.get("pwdAccountLockedTime") != nil) == disabled {
		return nil
	}
	var v []string
	if disabled {
		v = []string{LockedTime}
	}
	if err := d.setLocked(e, "pwdAccountLockedTime", v); err != nil {
		return fmt.Errorf("ldapdir: disable %q: %w", uid, err)
	}
	return nil
}

// personLocked finds the one person with that uid; d.mu is held.
func (d *Dir) personLocked(uid string) (*entry, error) {
	var found *entry
	want := foldString(uid)
	for _, e := range d.entries {
		if !isPerson(e) {
			continue
		}
		for _, v := range e.get("uid") {
			if foldString(v) == want {
				if found != nil {
					return nil, fmt.Errorf("two entries have this uid: %q and %q", found.dn, e.dn)
				}
				found = e
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no person has this uid")
	}
	return found, nil
}

func isPerson(e *entry) bool {
	return e.hasClass("inetOrgPerson") || e.hasClass("posixAccount") || e.hasClass("person")
}

// Add stores a new entry (its parent must exist), stamped with the
// current time; group entries it names as members gain memberOf values.
func (d *Dir) Add(e Entry) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.add(e, true); err != nil {
		return fmt.Errorf("ldapdir: %w", err)
	}
	d.refreshMemberOf(true)
	return nil
}

// Delete removes an entry without children. Like slapd's refint overlay,
// it removes the entry from the groups that listed it.
func (d *Dir) Delete(dn string) error {
	ndn, err := normDN(dn)
	if err != nil {
		return fmt.Errorf("ldapdir: delete %q: %w", dn, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.byDN[ndn]
	if !ok {
		return fmt.Errorf("ldapdir: delete %q: no such entry", dn)
	}
	if d.children[ndn] > 0 {
		return fmt.Errorf("ldapdir: delete %q: the entry has children", dn)
	}
	i := sort.Search(len(d.entries), func(i int) bool { return d.entries[i].seq >= e.seq })
	d.entries = slices.Delete(d.entries, i, i+1)
	delete(d.byDN, ndn)
	if d.children[e.parent]--; d.children[e.parent] == 0 {
		delete(d.children, e.parent)
	}
	now := d.now()
	for _, g := range slices.Clone(d.entries) {
		var c *entry
		for _, attr := range []string{"member", "uniqueMember"} {
			vals := g.get(attr)
			keep := vals[:0:0]
			for _, v := range vals {
				n, ok := normalize(synNameUID, v)
				if dn, _, _ := strings.Cut(n.s, "#"); ok && dn == ndn {
					continue
				}
				keep = append(keep, v)
			}
			if len(keep) != len(vals) {
				if c == nil {
					c = g.clone()
				}
				c.set(attr, keep)
			}
		}
		if c != nil {
			d.stamp(c, now, true)
			d.replace(g, c)
		}
	}
	d.refreshMemberOf(true)
	return nil
}

// Entry returns a copy of the entry dn, with its operational attributes.
func (d *Dir) Entry(dn string) (Entry, bool) {
	ndn, err := normDN(dn)
	if err != nil {
		return Entry{}, false
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	e, ok := d.byDN[ndn]
	if !ok {
		return Entry{}, false
	}
	return e.public(), true
}

// Person is one person of the directory, as the demo shows them.
type Person struct {
	DN  string
	UID string
	// Key is the entryUUID: what ldapsrc uses as identity.User.Key.
	Key         string
	DisplayName string
	Email       string
	// Disabled: pwdAccountLockedTime is set.
	Disabled bool
	// Expires is the day shadowExpire names (UTC midnight), or nil.
	Expires *time.Time
	// MustChangePassword: pwdReset is TRUE.
	MustChangePassword bool
	// Groups are the names (cn) of the groups listing the person directly.
	Groups []string
}

// Users returns every person (inetOrgPerson, posixAccount or person with
// a uid), sorted by uid.
func (d *Dir) Users() []Person {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []Person
	for _, e := range d.entries {
		if !isPerson(e) || e.get("uid") == nil {
			continue
		}
		p := Person{DN: e.dn, UID: e.get("uid")[0], Key: first(e.get("entryUUID")), DisplayName: first(e.get("cn")),
			Email: first(e.get("mail")), Disabled: e.get("pwdAccountLockedTime") != nil,
			MustChangePassword: strings.EqualFold(first(e.get("pwdReset")), "TRUE")}
		if days, err := strconv.ParseInt(first(e.get("shadowExpire")), 10, 64); err == nil && days >= 0 {
			t := time.Unix(days*86400, 0).UTC()
			p.Expires = &t
		}
		for _, g := range e.get("memberOf") {
			if ge, ok := d.byDN[mustNormDN(g)]; ok {
				p.Groups = append(p.Groups, first(ge.get("cn")))
			}
		}
		sort.Strings(p.Groups)
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UID < out[j].UID })
	return out
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}
