// Package progress shows how far a run is: a live bar per target (done /
// total, rate, ETA) when stderr is a terminal, and a plain structured log
// line per target every few seconds when it is not. Steps are counted from
// the run's decisions; totals come from the engine (sync.Progress) or from
// the plan being applied. Log lines written while bars are drawn go through
// Writer, which prints whole lines above the bars, so bars and the JSON
// decision lines never mix.
package progress

import (
	"bytes"
	"io"
	"slices"
	stdsync "sync"
	"time"

	"github.com/dirsync/dirsync/state"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"go.uber.org/zap"
)

// Options build a Reporter.
type Options struct {
	// Out is the terminal (stderr).
	Out io.Writer
	// Terminal draws bars; otherwise Log gets a line per target every Interval.
	Terminal bool
	Log      *zap.Logger
	Interval time.Duration // default 5s
	Now      func() time.Time
}

type counter struct {
	name         string
	done, total  int
	known        bool // total came from a plan
	start, last  time.Time
	bar          *mpb.Bar
	reportedDone int
}

// Reporter counts steps per target. Safe for concurrent use.
type Reporter struct {
	o   Options
	p   *mpb.Progress
	buf *lineBuffer

	mu      stdsync.Mutex
	targets map[string]*counter
	order   []string
	stop    chan struct{}
	wg      stdsync.WaitGroup
	closed  bool
}

// New starts a Reporter; Close it when the command ends.
func New(o Options) *Reporter {
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	r := &Reporter{o: o, targets: map[string]*counter{}, stop: make(chan struct{})}
	if o.Terminal {
		r.p = mpb.New(mpb.WithOutput(o.Out), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond), mpb.WithAutoRefresh())
		r.buf = &lineBuffer{}
		r.wg.Add(1)
		go r.pump()
	} else {
		r.wg.Add(1)
		go r.lines()
	}
	return r
}

// SetLogger sets the logger of the plain progress lines (the app's, once
// it exists).
func (r *Reporter) SetLogger(l *zap.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.o.Log = l
}

// Writer is where log lines must go while the Reporter runs: above the bars
// on a terminal (whole lines, never blocking the engine), else Out as is.
func (r *Reporter) Writer() io.Writer {
	if r.buf != nil {
		return r.buf
	}
	return r.o.Out
}

func (r *Reporter) get(target string) *counter {
	c := r.targets[target]
	if c == nil {
		now := r.o.Now()
		c = &counter{name: target, start: now, last: now}
		r.targets[target] = c
		r.order = append(r.order, target)
		slices.Sort(r.order)
		if r.p != nil {
			c.bar = r.p.AddBar(0,
				mpb.PrependDecorators(decor.Name(target, decor.WCSyncSpaceR), decor.CountersNoUnit("%d / %d", decor.WCSyncWidth)),
				mpb.AppendDecorators(decor.AverageSpeed(nil, "%.1f/s", decor.WCSyncSpace), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO)))
		}
	}
	return c
}

// Planned sets how many steps target will apply (sync.Progress).
func (r *Reporter) Planned(target string, steps int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.get(target)
	c.total, c.known = c.done+steps, true
	if c.bar != nil {
		c.bar.SetTotal(int64(c.total), c.total == c.done)
	}
}

// Decision counts a decision about one account as one step done. Run-level
// decisions (user "*") are not steps.
func (r *Reporter) Decision(d state.Decision) {
	if d.User == "*" || d.Target == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	c := r.get(d.Target)
	c.done++
	c.last = r.o.Now()
	if !c.known && c.done > c.total {
		c.total = c.done // unknown total: the bar grows with the work
	}
	if c.bar != nil {
		if !c.known {
			c.bar.SetTotal(int64(c.total)+1, false)
		}
		c.bar.IncrBy(1)
	}
}

// Close completes the bars (or prints the last lines) and waits for them.
func (r *Reporter) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	for _, n := range r.order {
		if c := r.targets[n]; c.bar != nil {
			c.bar.SetTotal(int64(c.done), true)
		}
	}
	r.mu.Unlock()
	close(r.stop)
	r.wg.Wait()
	if r.p != nil {
		r.p.Wait()
		_, _ = r.o.Out.Write(r.buf.take()) // lines logged after the last refresh
	} else {
		r.report(true)
	}
}

// pump moves buffered log lines above the bars once per refresh, so a
// burst of decision lines costs one write, not one refresh each.
func (r *Reporter) pump() {
	defer r.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return // Close writes what is left once the bars are done
		case <-t.C:
			if b := r.buf.take(); len(b) > 0 {
				_, _ = r.p.Write(b)
			}
		}
	}
}

func (r *Reporter) lines() {
	defer r.wg.Done()
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.report(false)
		}
	}
}

// report logs one line per target that moved since the last line (all of
// them at the end).
func (r *Reporter) report(final bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.order {
		c := r.targets[n]
		if c.done == c.reportedDone && !final {
			continue
		}
		c.reportedDone = c.done
		el := c.last.Sub(c.start).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(c.done) / el
		}
		fields := []zap.Field{zap.String("target", n), zap.Int("done", c.done), zap.Float64("per_second", float64(int(rate*10))/10)}
		if c.known {
			fields = append(fields, zap.Int("total", c.total))
			if rate > 0 && c.total > c.done {
				fields = append(fields, zap.Duration("eta", time.Duration(float64(c.total-c.done)/rate*float64(time.Second)).Round(time.Second)))
			}
		}
		msg := "progress"
		if final {
			msg = "progress: done"
		}
		r.o.Log.Info(msg, fields...)
	}
}

// lineBuffer collects whole lines written by the loggers.
type lineBuffer struct {
	mu  stdsync.Mutex
	buf bytes.Buffer
}

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// take returns the complete lines buffered so far.
func (l *lineBuffer) take() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		return nil
	}
	out := bytes.Clone(b[:i+1])
	l.buf.Next(i + 1)
	return out
}
