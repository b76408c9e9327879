// Package notify tells people what needs them: a plan held for approval, a
// source that keeps failing, a target whose circuit breaker opened, a leaver
// who could not be suspended after several attempts. It watches decisions
// (no engine hook), and delivers to generic JSON webhooks and
// Slack-compatible incoming webhooks from a queue of its own, with retries
// and backoff, so a slow or dead receiver never blocks a run. Webhook URLs
// are secrets: they are never logged, and errors are scrubbed of them.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/config"
	"github.com/dirsync/dirsync/state"
	"go.uber.org/zap"
)

// Event kinds.
const (
	EventHeld           = "held"
	EventSourceFailing  = "source_failing"
	EventBreakerOpen    = "breaker_open"
	EventSuspendFailing = "suspend_failing"
)

// Event is one notification. The generic webhook receives it as JSON.
type Event struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Summary string    `json:"summary"`
	RunID   string    `json:"run_id,omitempty"`
	Target  string    `json:"target,omitempty"`
	Source  string    `json:"source,omitempty"`
	User    string    `json:"user,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	// Link is the console page to act on (when the console is configured).
	Link string `json:"link,omitempty"`
}

// Options build a Notifier.
type Options struct {
	Config config.Notify
	// ConsoleURL is the console's base URL for links (may be empty).
	ConsoleURL string
	Logger     *zap.Logger
	Client     *http.Client
	// Sleep waits between retries (default: a timer honouring ctx).
	Sleep func(ctx context.Context, d time.Duration) error
	// RetryBase is the first retry delay (default 1s), doubled each time.
	RetryBase time.Duration
	Now       func() time.Time
	// Queue bounds undelivered notifications (default 1000); past it the
	// oldest are dropped with a log line.
	Queue int
}

// Notifier watches decisions and delivers notifications.
type Notifier struct {
	o     Options
	hooks []config.Webhook

	mu stdsync.Mutex
	// per-run dedup of held notifications, counters of failures
	heldSent map[string]bool
	// heldWait gathers a run's held plans until the run finishes, so one
	// notification names every target the run held (by the run that made
	// the decisions).
	heldWait   map[string]*pendingHeld
	srcFails   map[string]int
	srcRun     map[string]string
	srcSent    map[string]bool
	suspFails  map[string]int
	suspSent   map[string]bool
	breakerRun map[string]string

	queue  chan delivery
	closed bool
	wg     stdsync.WaitGroup
	cancel context.CancelFunc
}

type delivery struct {
	hook config.Webhook
	ev   Event
}

// New returns a Notifier; call Start to begin delivering, Close to stop.
func New(o Options) *Notifier {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if o.RetryBase == 0 {
		o.RetryBase = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Queue == 0 {
		o.Queue = 1000
	}
	if o.Config.SourceFailures == 0 {
		o.Config.SourceFailures = 3
	}
	if o.Config.SuspendAttempts == 0 {
		o.Config.SuspendAttempts = 3
	}
	return &Notifier{o: o, hooks: o.Config.Webhooks, heldSent: map[string]bool{}, heldWait: map[string]*pendingHeld{}, srcFails: map[string]int{}, srcRun: map[string]string{},
		srcSent: map[string]bool{}, suspFails: map[string]int{}, suspSent: map[string]bool{}, breakerRun: map[string]string{},
		queue: make(chan delivery, o.Queue)}
}

// Start delivers queued notifications until Close. Each webhook gets its
// own worker, so one slow receiver does not delay the others.
func (n *Notifier) Start(ctx context.Context) {
	ctx, n.cancel = context.WithCancel(ctx)
	per := map[string]chan delivery{}
	for _, h := range n.hooks {
		ch := make(chan delivery, n.o.Queue)
		per[h.Name] = ch
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			for d := range ch {
				if ctx.Err() != nil {
					continue // abandoned: drain without sending
				}
				n.deliver(ctx, d)
			}
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			for _, ch := range per {
				close(ch)
			}
		}()
		for d := range n.queue {
			select {
			case per[d.hook.Name] <- d:
			default:
				n.o.Logger.Warn("notify: queue full: notification dropped", zap.String("webhook", d.hook.Name), zap.String("kind", d.ev.Kind))
			}
		}
	}()
}

// Close stops accepting notifications and waits until the queued ones are
// delivered (or have used their attempts), or ctx ends: then the rest are
// abandoned. One-shot commands call it so a held plan's notification goes
// out before the process exits.
func (n *Notifier) Close(ctx context.Context) {
	n.mu.Lock()
	var held []Event
	for id := range n.heldWait {
		if ev, ok := n.heldEventLocked(id); ok {
			held = append(held, ev)
		}
	}
	n.mu.Unlock()
	for _, ev := range held {
		n.Send(ev)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.queue)
	n.mu.Unlock()
	if n.cancel == nil {
		return
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.cancel()
		<-done
	}
	n.cancel()
}

// Send queues ev for every webhook that wants its kind. It never blocks.
func (n *Notifier) Send(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = n.o.Now().UTC()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for _, h := range n.hooks {
		if len(h.Events) > 0 && !slices.Contains(h.Events, ev.Kind) {
			continue
		}
		select {
		case n.queue <- delivery{hook: h, ev: ev}:
		default:
			n.o.Logger.Warn("notify: queue full: notification dropped", zap.String("webhook", h.Name), zap.String("kind", ev.Kind))
		}
	}
}

func (n *Notifier) link(parts ...string) string {
	if n.o.ConsoleURL == "" {
		return ""
	}
	u, err := url.Parse(n.o.ConsoleURL)
	if err != nil {
		return ""
	}
	return u.JoinPath(parts...).String()
}

// Decision sees every decision (the Recorder's callback) and turns the ones
// people must act on into notifications: the first held decision of a run,
// a breaker opening, a source failing SourceFailures runs in a row, a
// suspension or deletion failing SuspendAttempts times for one account.
// It is cheap and never blocks.
func (n *Notifier) Decision(d state.Decision) {
	var evs []Event
	n.mu.Lock()
	switch {
	case d.Outcome == "held" && !n.heldSent[heldRun(d)]:
		// A later run that holds the same steps points at the first held
		// run: one notification per held plan, not per run. It goes out
		// when the run finishes (RunFinished), naming every target held.
		run := heldRun(d)
		reason := d.Reason
		if i := strings.Index(reason, "held by the safety guard"); i >= 0 {
			reason = strings.TrimSuffix(strings.SplitN(reason[i:], ": run", 2)[0], ")") + ")"
		}
		p := n.heldWait[d.RunID]
		if p == nil {
			p = &pendingHeld{held: run, since: time.Now()}
			n.heldWait[d.RunID] = p
		}
		if !slices.Contains(p.targets, d.Target) {
			p.targets = append(p.targets, d.Target)
			p.reasons = append(p.reasons, d.Target+": "+reason)
		}
	case d.Action == "circuit_open" && n.breakerRun[d.Target] != d.RunID:
		n.breakerRun[d.Target] = d.RunID
		evs = append(evs, Event{Kind: EventBreakerOpen, RunID: d.RunID, Target: d.Target, Reason: d.Reason, Link: n.link("runs", d.RunID),
			Summary: fmt.Sprintf("dirsync paused %s: %s", d.Target, d.Reason)})
	case d.User == "*" && d.Action == "run" && (d.Outcome == "failed" || d.Outcome == "skipped") && strings.Contains(d.Error, "source "):
		for _, src := range sourcesIn(d.Error) {
			if n.srcRun[src] == d.RunID {
				continue // one count per run, whatever the number of targets
			}
			n.srcRun[src] = d.RunID
			n.srcFails[src]++
			if n.srcFails[src] >= n.o.Config.SourceFailures && !n.srcSent[src] {
				n.srcSent[src] = true
				evs = append(evs, Event{Kind: EventSourceFailing, RunID: d.RunID, Source: src, Reason: d.Error, Link: n.link(),
					Summary: fmt.Sprintf("dirsync: source %s failed in %d runs in a row; nothing that uses it is changed: %s", src, n.srcFails[src], d.Error)})
			}
		}
	case (d.Action == "suspend" || d.Action == "delete") && d.Outcome == "failed":
		k := d.Target + "\x00" + d.User + "\x00" + d.Action
		n.suspFails[k]++
		if n.suspFails[k] >= n.o.Config.SuspendAttempts && !n.suspSent[k] {
			n.suspSent[k] = true
			evs = append(evs, Event{Kind: EventSuspendFailing, RunID: d.RunID, Target: d.Target, User: d.User, Reason: d.Error, Link: n.link("person") + "?q=" + url.QueryEscape(d.User),
				Summary: fmt.Sprintf("dirsync could not %s %s in %s after %d attempts: %s", d.Action, d.User, d.Target, n.suspFails[k], d.Error)})
		}
	case (d.Action == "suspend" || d.Action == "delete") && d.Outcome == "applied":
		k := d.Target + "\x00" + d.User + "\x00" + d.Action
		delete(n.suspFails, k)
		delete(n.suspSent, k)
	}
	// A run whose end is never reported (an approval's own hold) still
	// announces its plans, a minute later.
	for id, p := range n.heldWait {
		if id != d.RunID && time.Since(p.since) > time.Minute {
			if ev, ok := n.heldEventLocked(id); ok {
				evs = append(evs, ev)
			}
		}
	}
	n.mu.Unlock()
	for _, ev := range evs {
		n.Send(ev)
	}
}

// pendingHeld is a run's held plans waiting for the run to finish.
type pendingHeld struct {
	held    string // the run whose plan the decisions point at
	targets []string
	reasons []string
	since   time.Time
}

// RunFinished sends the held notification of a run that held plans: one,
// naming every target it held.
func (n *Notifier) RunFinished(runID string) {
	n.mu.Lock()
	var evs []Event
	if ev, ok := n.heldEventLocked(runID); ok {
		evs = append(evs, ev)
	}
	n.mu.Unlock()
	for _, ev := range evs {
		n.Send(ev)
	}
}

// heldEventLocked takes a run's pending held plans out as one event; false
// when there are none, or their plan was announced already.
func (n *Notifier) heldEventLocked(runID string) (Event, bool) {
	p := n.heldWait[runID]
	delete(n.heldWait, runID)
	if p == nil || n.heldSent[p.held] {
		return Event{}, false
	}
	n.heldSent[p.held] = true
	slices.Sort(p.targets)
	slices.Sort(p.reasons)
	targets := strings.Join(p.targets, ", ")
	return Event{Kind: EventHeld, RunID: p.held, Target: targets, Reason: strings.Join(p.reasons, "; "), Link: n.link("held", p.held),
		Summary: fmt.Sprintf("dirsync held a plan on %s for approval (run %s): %s", targets, p.held, strings.Join(p.reasons, "; "))}, true
}

// SourceOK resets a source's failure count (a run read it completely).
func (n *Notifier) SourceOK(src string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.srcFails, src)
	delete(n.srcSent, src)
}

var approveRe = regexp.MustCompile("dirsync approve ([^`\\s]+)`")

// heldRun is the run whose held plan a held decision points at.
func heldRun(d state.Decision) string {
	if m := approveRe.FindStringSubmatch(d.Reason); m != nil {
		return m[1]
	}
	return d.RunID
}

// sourcesIn extracts the source names from "source NAME: ..." errors.
func sourcesIn(s string) []string {
	var out []string
	for _, part := range strings.Split(s, "source ")[1:] {
		name, _, ok := strings.Cut(part, ": ")
		if ok && name != "" && !strings.ContainsAny(name, " \t") && name != "guard" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// deliver sends one notification, retrying with exponential backoff on
// network errors, 429 and 5xx; other statuses are final.
func (n *Notifier) deliver(ctx context.Context, d delivery) {
	attempts := d.hook.Attempts
	if attempts == 0 {
		attempts = 5
	}
	timeout := d.hook.Timeout.D()
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	body, err := encode(d.hook.Type, d.ev)
	if err != nil {
		n.o.Logger.Error("notify: encode", zap.String("webhook", d.hook.Name), zap.Error(err))
		return
	}
	wait := n.o.RetryBase
	for attempt := 1; ; attempt++ {
		retry, err := n.post(ctx, d.hook, body, timeout)
		if err == nil {
			n.o.Logger.Info("notification sent", zap.String("webhook", d.hook.Name), zap.String("kind", d.ev.Kind), zap.Int("attempt", attempt))
			return
		}
		if !retry || attempt >= attempts {
			n.o.Logger.Warn("notification not delivered", zap.String("webhook", d.hook.Name), zap.String("kind", d.ev.Kind), zap.Int("attempts", attempt), zap.Error(err))
			return
		}
		n.o.Logger.Debug("notification failed: retrying", zap.String("webhook", d.hook.Name), zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
		if n.o.Sleep(ctx, wait) != nil {
			return
		}
		wait *= 2
	}
}

func (n *Notifier) post(ctx context.Context, h config.Webhook, body []byte, timeout time.Duration) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL.Value(), bytes.NewReader(body))
	if err != nil {
		return false, errors.New("bad webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dirsync-notify")
	resp, err := n.o.Client.Do(req)
	if err != nil {
		return true, scrub(err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("receiver answered %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
	default:
		return false, fmt.Errorf("receiver answered %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
	}
}

// scrub drops the URL (which carries the webhook's credential) from a
// transport error, keeping the cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s [webhook URL redacted]: %w", ue.Op, ue.Err)
	}
	return err
}

// encode renders ev for the webhook's type.
func encode(kind string, ev Event) ([]byte, error) {
	if kind == "slack" {
		text := ev.Summary
		if ev.Link != "" {
			text += "\n<" + ev.Link + "|Open in the dirsync console>"
		}
		return json.Marshal(map[string]string{"text": text})
	}
	return json.Marshal(ev)
}
