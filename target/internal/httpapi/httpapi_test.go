package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dirsync/dirsync/target"
)

func TestClassify(t *testing.T) {
	c := &Client{Rules: Rules{
		Denied:   func(_ int, msg string) bool { return strings.Contains(msg, "admin cannot") },
		NotFound: func(status int, msg string) bool { return status == 500 && msg == "record not found" },
	}}
	for _, tc := range []struct {
		status int
		body   string
		idem   bool
		want   target.Kind
	}{
		{500, "admin cannot delete another admin user, including oneself", true, target.KindPermanent},
		{500, "admin cannot delete another admin user, including oneself", false, target.KindPermanent},
		{500, "record not found", true, target.KindNotFound},
		{500, "boom", true, target.KindRetryable},
		{500, "boom", false, target.KindUncertain},
		{408, "", false, target.KindRetryable},
		{404, "", true, target.KindPermanent},
		{429, "", false, target.KindRateLimited},
		{400, "bad", true, target.KindPermanent},
	} {
		err := c.Classify("x", tc.status, http.Header{}, []byte(tc.body), tc.idem)
		if got := target.KindOf(err); got != tc.want {
			t.Errorf("%d %q idempotent=%v: %s, want %s (%v)", tc.status, tc.body, tc.idem, got, tc.want, err)
		}
		if StatusOf(err) != tc.status {
			t.Errorf("%d: StatusOf %d", tc.status, StatusOf(err))
		}
	}
}

// A process without the lease sends nothing, and says so.
func TestNoLeaseNoRequest(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits++ }))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Leading: func() bool { return false }}
	_, err := c.Do(context.Background(), Request{Method: http.MethodPut, URL: srv.URL, Body: []byte("{}"), Idempotent: true, Subject: "x"})
	if !errors.Is(err, target.ErrNotLeading) || target.KindOf(err) != target.KindRetryable || hits != 0 {
		t.Fatalf("err %v (kind %s), %d requests", err, target.KindOf(err), hits)
	}
}

// Secrets never reach an error text, even when the server echoes them.
func TestScrubbed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_, _ = w.Write([]byte("bad token " + r.Header.Get("Authorization")))
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client(), Secrets: NewSecrets("s3cr3t-token"), Authorize: func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer s3cr3t-token")
		return nil
	}}
	_, err := c.Do(context.Background(), Request{Method: http.MethodGet, URL: srv.URL, Idempotent: true, Subject: "x"})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v", err)
	}
}
