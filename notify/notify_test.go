package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// receiver records what it is sent; fail makes the first n requests 503.
type receiver struct {
	mu     stdsync.Mutex
	bodies [][]byte
	tries  int
	fail   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.tries++
	if rc.tries <= rc.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	rc.bodies = append(rc.bodies, b)
}

func (rc *receiver) got() ([][]byte, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte(nil), rc.bodies...), rc.tries
}

func newNotifier(t *testing.T, url, kind string, log *zap.Logger) *Notifier {
	t.Helper()
	n := New(Options{Config: config.Notify{Webhooks: []config.Webhook{{Name: "ops", Type: kind, URL: config.NewSecret(url)}}},
		ConsoleURL: "https://dirsync.example/ui/", Logger: log, RetryBase: time.Millisecond})
	n.Start(context.Background())
	return n
}

func held(run, user string) state.Decision {
	return state.Decision{RunID: run, Target: "netmaker", User: user, Action: "suspend", Outcome: "held",
		Reason: "hr: active=false; held by the safety guard (12 suspensions > max 10): run `dirsync approve " + run + "`"}
}

func TestHeldPlanOneNotificationWithLink(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := newNotifier(t, srv.URL+"/hook", "webhook", nil)
	for i := range 12 {
		n.Decision(held("R1", "u"+string(rune('a'+i))))
	}
	// A later run holding the same steps points at R1: no second message.
	later := held("R1", "ua")
	later.RunID = "R7"
	n.Decision(later)
	n.Close(context.Background())
	bodies, _ := rc.got()
	if len(bodies) != 1 {
		t.Fatalf("got %d notifications for one held run, want 1", len(bodies))
	}
	var ev Event
	if err := json.Unmarshal(bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != EventHeld || ev.RunID != "R1" || ev.Link != "https://dirsync.example/ui/held/R1" {
		t.Fatalf("event = %+v", ev)
	}
	if !strings.Contains(ev.Summary, "12 suspensions > max 10") {
		t.Fatalf("summary lacks the reason: %q", ev.Summary)
	}
}

func TestSlackBodyAndRetryUntilDelivered(t *testing.T) {
	rc := &receiver{fail: 2}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := newNotifier(t, srv.URL, "slack", nil)
	n.Decision(held("R2", "jo"))
	n.Close(context.Background())
	bodies, tries := rc.got()
	if tries != 3 || len(bodies) != 1 {
		t.Fatalf("tries=%d delivered=%d, want 3 tries (two 503s, then ok) and 1 delivered", tries, len(bodies))
	}
	var m map[string]string
	_ = json.Unmarshal(bodies[0], &m)
	if !strings.Contains(m["text"], "<https://dirsync.example/ui/held/R2|Open in the dirsync console>") {
		t.Fatalf("slack text = %q", m["text"])
	}
}

// A receiver that hangs must not slow the decisions down, and its URL (a
// secret) must not appear in any log line.
func TestNeverBlocksAndNeverLogsTheURL(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	core, logs := observer.New(zapcore.DebugLevel)
	secretURL := srv.URL + "/services/T000/B000/XXXXSECRETXXXX"
	n := New(Options{Config: config.Notify{Webhooks: []config.Webhook{{Name: "ops", Type: "webhook", URL: config.NewSecret(secretURL), Timeout: config.Duration(50 * time.Millisecond), Attempts: 2}}},
		Logger: zap.New(core), RetryBase: time.Millisecond, Queue: 8})
	n.Start(context.Background())
	for i := range 5000 { // far more than the queue holds: extra ones are dropped, never waited for
		n.Decision(held("R"+string(rune('A'+i%26))+string(rune('a'+i/26%26)), "x"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n.Close(ctx)
	var all bytes.Buffer
	for _, e := range logs.All() {
		all.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			all.WriteString(k)
			all.WriteString(strings.TrimSpace(strings.ReplaceAll(toString(v), "\n", " ")))
		}
	}
	if strings.Contains(all.String(), "XXXXSECRETXXXX") {
		t.Fatalf("a log line contains the webhook URL: %s", all.String())
	}
	if logs.FilterMessage("notification not delivered").Len() == 0 && logs.FilterMessage("notify: queue full: notification dropped").Len() == 0 {
		t.Fatal("expected failed or dropped deliveries to be logged")
	}
}

func toString(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestSourceFailingAndSuspendFailing(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := newNotifier(t, srv.URL, "webhook", nil)
	for i := range 4 {
		run := "S" + string(rune('0'+i))
		for _, tgt := range []string{"a", "b"} { // two targets: one count per run
			n.Decision(state.Decision{RunID: run, Target: tgt, User: "*", Action: "run", Outcome: "skipped",
				Reason: "source corp-ad failed: nothing changed", Error: "source corp-ad: ldap: connection refused"})
		}
	}
	for range 3 {
		n.Decision(state.Decision{RunID: "x", Target: "netmaker", User: "jo", Action: "suspend", Outcome: "failed", Error: "netmaker: 500"})
	}
	n.Close(context.Background())
	bodies, _ := rc.got()
	kinds := map[string]int{}
	for _, b := range bodies {
		var ev Event
		_ = json.Unmarshal(b, &ev)
		kinds[ev.Kind]++
		if ev.Kind == EventSourceFailing && (ev.Source != "corp-ad" || !strings.Contains(ev.Summary, "3 runs in a row")) {
			t.Fatalf("source event = %+v", ev)
		}
	}
	if kinds[EventSourceFailing] != 1 || kinds[EventSuspendFailing] != 1 || len(bodies) != 2 {
		t.Fatalf("notifications by kind = %v", kinds)
	}
}

// A run that holds plans on two targets sends one notification, when it
// finishes, naming both.
func TestHeldNotificationNamesEveryTarget(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	n := newNotifier(t, srv.URL+"/hook", "webhook", nil)
	for _, tgt := range []string{"netmaker", "ezeep", "netmaker"} {
		d := held("R3", "jo")
		d.Target = tgt
		n.Decision(d)
	}
	n.RunFinished("R3")
	n.Close(context.Background())
	bodies, _ := rc.got()
	if len(bodies) != 1 {
		t.Fatalf("%d notifications, want 1", len(bodies))
	}
	var ev Event
	if err := json.Unmarshal(bodies[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Target != "ezeep, netmaker" || !strings.Contains(ev.Summary, "on ezeep, netmaker for approval") {
		t.Fatalf("event = %+v", ev)
	}
}
