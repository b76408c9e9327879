package sync_test

import (
	"fmt"
	"testing"
)

func TestZZDeterminism(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		ev := sequenceFor(seed, 30)
		a, b := play(t, seed, ev), play(t, seed, ev)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("seed %d:\n %v\n %v", seed, a, b)
		}
	}
}
