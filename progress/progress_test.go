package progress

import (
	"bytes"
	"fmt"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type safeBuf struct {
	mu stdsync.Mutex
	b  bytes.Buffer
}

func (s *safeBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func step(target, user string) state.Decision {
	return state.Decision{Target: target, User: user, Action: "create", Outcome: "applied"}
}

// Not a terminal: structured lines with done, total and rate; run-level
// decisions are not counted as steps.
func TestPlainLines(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	r := New(Options{Out: &safeBuf{}, Log: zap.New(core), Interval: 10 * time.Millisecond})
	r.Planned("app", 3)
	r.Decision(step("app", "a"))
	r.Decision(state.Decision{Target: "app", User: "*", Action: "run", Outcome: "skipped"})
	time.Sleep(50 * time.Millisecond) // let one periodic line out
	r.Decision(step("app", "b"))
	r.Decision(step("app", "c"))
	r.Close()
	done := logs.FilterMessage("progress: done").All()
	if len(done) != 1 {
		t.Fatalf("final lines: %v", logs.All())
	}
	f := done[0].ContextMap()
	if f["target"] != "app" || f["done"] != int64(3) || f["total"] != int64(3) {
		t.Fatalf("final line fields = %v", f)
	}
	if logs.FilterMessage("progress").Len() == 0 {
		t.Fatal("no periodic line")
	}
}

// A terminal: bars with done/total, and log lines written meanwhile come
// out whole, never cut by a bar.
func TestBarsKeepLogLinesWhole(t *testing.T) {
	out := &safeBuf{}
	r := New(Options{Out: out, Terminal: true})
	r.Planned("netmaker", 200)
	w := r.Writer()
	for i := range 200 {
		r.Decision(step("netmaker", fmt.Sprint(i)))
		fmt.Fprintf(w, `{"msg":"decision","user":"u%03d","outcome":"applied"}`+"\n", i)
	}
	r.Close()
	s := out.String()
	if !strings.Contains(s, "netmaker") || !strings.Contains(s, "200 / 200") {
		t.Fatalf("no finished bar in output:\n%q", s[max(0, len(s)-400):])
	}
	re := 0
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, `{"msg":"decision"`); i >= 0 {
			re++
			if !strings.HasSuffix(line, `"outcome":"applied"}`) {
				t.Fatalf("a decision line was cut or mixed with a bar: %q", line)
			}
		}
	}
	if re != 200 {
		t.Fatalf("%d decision lines in the output, want 200", re)
	}
}
