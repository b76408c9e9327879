package sync_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/dirsync/dirsync/connector/memtarget"
	"github.com/dirsync/dirsync/identity"
	"github.com/dirsync/dirsync/state"
	dsync "github.com/dirsync/dirsync/sync"
	"github.com/dirsync/dirsync/sync/synctest"
	"go.uber.org/zap/zapcore"
)

// Every decision is one log line and one journal record: nothing sampled.
func TestEveryDecisionIsLogged(t *testing.T) {
	var buf bytes.Buffer
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{MessageKey: "msg", TimeKey: "time", EncodeTime: zapcore.RFC3339TimeEncoder})
	log := dsync.UnsampledLogger(enc, zapcore.Lock(zapcore.AddSync(&buf)), zapcore.InfoLevel)
	mt := memtarget.New("app")
	c := synctest.Common()
	c.Concurrency = 8
	h := synctest.New(t, []dsync.TargetSpec{synctest.Spec(mt, c)}, synctest.Options{Logger: log})
	users := make([]identity.User, 10000)
	for i := range users {
		users[i] = synctest.User(fmt.Sprintf("u%05d", i))
	}
	h.Source.Set(users...)
	res := h.Run(dsync.RunOptions{})
	if res.Counts["applied"] != 10000 {
		t.Fatalf("counts = %v", res.Counts)
	}
	lines := 0
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		for _, k := range []string{"run_id", "trigger", "target", "user", "action", "reason", "outcome", "attempt", "duration_ms"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line lacks %q: %s", k, sc.Text())
			}
		}
		lines++
	}
	if lines != 10000 {
		t.Fatalf("%d log lines for 10000 decisions", lines)
	}
	ds, err := h.Store.Decisions(context.Background(), state.DecisionQuery{RunID: res.RunID})
	if err != nil || len(ds) != 10000 {
		t.Fatalf("journal has %d records (%v), want 10000", len(ds), err)
	}
}
