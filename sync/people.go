package sync

import (
	"slices"
	"sort"
	"strings"

	"github.com/dirsync/dirsync/identity"
)

// People are a run's merged people sorted by person id (Key), the order
// identity.Link gives them in. Get finds one by binary search: planning a
// million people needs no second map of them.
type People []identity.User

// NewPeople returns users as People: as they are when already sorted by
// Key, else a sorted copy.
func NewPeople(users []identity.User) People {
	byKey := func(a, b identity.User) int { return strings.Compare(a.Key, b.Key) }
	if slices.IsSortedFunc(users, byKey) {
		return People(users)
	}
	out := slices.Clone(users)
	slices.SortStableFunc(out, byKey)
	return People(out)
}

// Get returns the person whose Key is key.
func (p People) Get(key string) (*identity.User, bool) {
	i := sort.Search(len(p), func(i int) bool { return p[i].Key >= key })
	if i < len(p) && p[i].Key == key {
		return &p[i], true
	}
	return nil, false
}

// Has says whether key is a person's Key.
func (p People) Has(key string) bool {
	_, ok := p.Get(key)
	return ok
}
