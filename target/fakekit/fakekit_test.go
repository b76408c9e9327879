package fakekit

import (
	"io"
	"net/http"
	"slices"
	"testing"
)

// fake is the smallest application: POST /n adds one.
type fake struct {
	n      int
	faults *Faults
	rec    Recorder[string]
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.faults.Serve(w, r, Exchange{
		Apply: func() int { f.n++; return 200 },
		Record: func(status int, fault Fault) {
			f.rec.Add(func(int) string { return r.Method + " " + string(fault) }, "")
		},
		Write: func() { _, _ = io.WriteString(w, "ok") },
	})
}

func do(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Post(url+"/n", "text/plain", nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The same seed gives the same faults; before-apply faults change nothing,
// after-apply ones change the state and lose the answer.
func TestFaultModel(t *testing.T) {
	seq := func(after bool) ([]int, int) {
		f := &fake{faults: NewFaults(FaultOptions{FaultRate: 0.5, Faults: []Fault{Fault429, Fault500, FaultDrop}, Seed: 7, FaultAfterApply: after})}
		url := TestServer(t, f)
		var got []int
		for range 20 {
			got = append(got, do(t, url))
		}
		return got, f.n
	}
	a, n := seq(false)
	b, _ := seq(false)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different faults: %v %v", a, b)
	}
	ok := 0
	for _, s := range a {
		if s == 200 {
			ok++
		}
	}
	if ok == 0 || ok == 20 || n != ok {
		t.Fatalf("before apply: %d ok answers, %d applied (%v)", ok, n, a)
	}
	if _, n := seq(true); n != 20 {
		t.Fatalf("after apply: %d applied, want 20", n)
	}
}

func TestFailNextAndAnswerNext(t *testing.T) {
	f := &fake{faults: NewFaults(FaultOptions{})}
	url := TestServer(t, f)
	f.faults.FailNext(http.MethodPost, "/n", Fault429, false)
	f.faults.AnswerNext("", "/n", Answer{Status: 409, Body: `{"detail":"conflict"}`})
	got := []int{do(t, url), do(t, url), do(t, url)}
	if !slices.Equal(got, []int{429, 409, 200}) || f.n != 1 {
		t.Fatalf("answers %v, applied %d", got, f.n)
	}
	if c := f.rec.Calls(); !slices.Equal(c, []string{"POST 429", "POST answer", "POST "}) {
		t.Fatalf("calls %q", c)
	}
	f.rec.Edit("n: set by hand")
	if e := f.rec.Edits(); len(e) != 1 {
		t.Fatalf("edits %q", e)
	}
	f.rec.Reset()
	if len(f.rec.Calls())+len(f.rec.Edits()) != 0 {
		t.Fatal("not reset")
	}
}

func TestListener(t *testing.T) {
	var l Listener
	url, err := l.Start("fake", "127.0.0.1:0", &fake{faults: NewFaults(FaultOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	if do(t, url) != 200 {
		t.Fatal("not serving")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if do(t, url) != 0 {
		t.Fatal("still serving after Close")
	}
}
