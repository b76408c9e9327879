package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dirsync/dirsync/internal/testenv"
)

// A held plan is announced to the webhook even though the receiver is down
// when the run ends: the run finishes (exit 4, held), and the notification
// is retried until the receiver is back.
func TestHeldNotificationRetriedWhileReceiverDown(t *testing.T) {
	port := testenv.FreePort(t)
	t.Setenv("TEST_WEBHOOK_URL", fmt.Sprintf("http://127.0.0.1:%d/hooks/secretPath123", port))
	e := newEnv(t, 20, `notify:
  webhooks:
    - {name: ops, type: webhook, url: "${TEST_WEBHOOK_URL}", attempts: 6}
`)
	if code, _, errb := e.run("sync"); code != exitOK {
		t.Fatalf("first sync: %d %s", code, errb)
	}
	dis := map[int]bool{}
	for i := range 12 {
		dis[i] = true
	}
	e.writeUsers(20, dis)
	hooks := &hookReceiver{}
	srv := &http.Server{Handler: hooks, ReadHeaderTimeout: time.Second}
	defer srv.Close()
	go func() {
		time.Sleep(1500 * time.Millisecond) // down for the first attempts
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Errorf("receiver: %v", err)
			return
		}
		_ = srv.Serve(ln)
	}()
	code, _, errb := e.run("sync")
	if code != exitHeld {
		t.Fatalf("sync with the receiver down: exit %d, want %d (held)\n%s", code, exitHeld, errb)
	}
	run := regexp.MustCompile(`approve ([0-9]{8}T[0-9]{6}Z-[0-9a-f]{6})`).FindStringSubmatch(errb)
	if run == nil {
		t.Fatalf("no run id in %q", errb)
	}
	got := hooks.all()
	if len(got) != 1 {
		t.Fatalf("receiver got %d notifications, want 1:\n%s", len(got), errb)
	}
	var ev struct {
		Kind  string `json:"kind"`
		RunID string `json:"run_id"`
	}
	_ = json.Unmarshal([]byte(got[0]), &ev)
	if ev.Kind != "held" || ev.RunID != run[1] {
		t.Fatalf("notification = %s, want held for run %s", got[0], run[1])
	}
	if !regexp.MustCompile(`"msg":"notification sent".*"attempt":[2-9]`).MatchString(errb) {
		t.Fatalf("the notification was not retried after the receiver came back:\n%s", grep(errb, "notif"))
	}
	if strings.Contains(errb, "secretPath123") {
		t.Fatal("the webhook URL reached the log")
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
